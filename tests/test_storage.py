"""Schema and migrations: Alembic's scripts, the models and SCHEMA_HEAD agree."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from click.testing import CliRunner
from sqlalchemy import text

from stemma.cli.main import cli
from stemma.storage.database import (
    SCHEMA_HEAD,
    alembic_config,
    create_store_engine,
    current_revision,
    ensure_schema,
    sqlite_url,
)
from stemma.storage.models import metadata


def test_schema_head_matches_alembic(tmp_path: Path) -> None:
    engine = create_store_engine(sqlite_url(tmp_path))
    script = ScriptDirectory.from_config(alembic_config(engine))
    assert script.get_current_head() == SCHEMA_HEAD


def test_migrations_create_exactly_the_models(tmp_path: Path) -> None:
    engine = create_store_engine(sqlite_url(tmp_path))
    ensure_schema(engine)
    assert current_revision(engine) == SCHEMA_HEAD
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []


def test_sqlite_pragmas(tmp_path: Path) -> None:
    engine = create_store_engine(sqlite_url(tmp_path))
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 60000


def test_db_upgrade_command(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    first = CliRunner().invoke(cli, ["db", "upgrade", "--database-url", url])
    assert first.exit_code == 0, first.output
    assert f"upgraded empty -> {SCHEMA_HEAD}" in first.output
    second = CliRunner().invoke(cli, ["db", "upgrade", "--database-url", url])
    assert "already at revision" in second.output


def test_alembic_migrations_equal_the_fast_create(tmp_path: Path) -> None:
    """A fresh store is created from the models and stamped; running every Alembic
    migration instead must give exactly the same schema."""
    from stemma.storage.database import upgrade

    migrated = create_store_engine(sqlite_url(tmp_path / "a"))
    upgrade(migrated)  # Alembic, script by script
    assert current_revision(migrated) == SCHEMA_HEAD
    with migrated.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), metadata) == []
    fresh = create_store_engine(sqlite_url(tmp_path / "b"))
    ensure_schema(fresh)  # create_all + stamp
    assert current_revision(fresh) == SCHEMA_HEAD
    with fresh.connect() as a, migrated.connect() as b:
        tables = "SELECT name, sql FROM sqlite_master WHERE type IN ('table','index') ORDER BY name"
        names_a = [r[0] for r in a.execute(text(tables))]
        names_b = [r[0] for r in b.execute(text(tables))]
    assert names_a == names_b

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

"""Schema and migrations: Alembic's scripts, the models and SCHEMA_HEAD agree."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from click.testing import CliRunner
from sqlalchemy import Engine, func, insert, inspect, select, text

from stemma.cli.main import cli
from stemma.service.runs import utcnow
from stemma.storage.database import (
    SCHEMA_HEAD,
    alembic_config,
    create_store_engine,
    current_revision,
    ensure_schema,
    sqlite_url,
    upgrade,
)
from stemma.storage.models import metadata

pytestmark = pytest.mark.embedded_only  # the schema and engine of the embedded store


def test_schema_head_matches_alembic(new_database: Callable[[str], str]) -> None:
    engine = create_store_engine(new_database("head"))
    script = ScriptDirectory.from_config(alembic_config(engine))
    assert script.get_current_head() == SCHEMA_HEAD
    engine.dispose()


def _schema(engine: Engine) -> dict[str, Any]:
    """Tables with their columns, indexes, unique and foreign keys, as the database
    reports them (comparable between two databases of one kind)."""
    insp = inspect(engine)
    out: dict[str, Any] = {}
    for table in sorted(insp.get_table_names()):
        out[table] = {
            "columns": [
                (c["name"], str(c["type"]), c["nullable"]) for c in insp.get_columns(table)
            ],
            "pk": insp.get_pk_constraint(table),
            "indexes": sorted(
                (i["name"] or "", tuple(i["column_names"])) for i in insp.get_indexes(table)
            ),
            "unique": sorted(
                (u["name"] or "", tuple(u["column_names"]))
                for u in insp.get_unique_constraints(table)
            ),
            "fks": sorted(
                (
                    f["name"] or "",
                    tuple(f["constrained_columns"]),
                    f["referred_table"],
                    str(f.get("options")),
                )
                for f in insp.get_foreign_keys(table)
            ),
        }
    return out


def test_migrations_create_exactly_the_models(new_database: Callable[[str], str]) -> None:
    """Alembic's scripts, run one by one from an empty database, give exactly the models."""
    engine = create_store_engine(new_database("migrated"))
    assert current_revision(engine) is None
    upgrade(engine)  # Alembic, script by script (never the create_all fast path)
    assert current_revision(engine) == SCHEMA_HEAD
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []
    engine.dispose()


def test_fast_create_gives_exactly_the_models(new_database: Callable[[str], str]) -> None:
    """ensure_schema on an empty database (create_all + stamp) gives the models too."""
    engine = create_store_engine(new_database("fresh"))
    ensure_schema(engine)
    assert current_revision(engine) == SCHEMA_HEAD
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), metadata) == []
    ensure_schema(engine)  # idempotent once at head
    assert current_revision(engine) == SCHEMA_HEAD
    engine.dispose()


@pytest.mark.sqlite_only
def test_sqlite_pragmas(tmp_path: Path) -> None:
    engine = create_store_engine(sqlite_url(tmp_path))
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 60000


def test_db_upgrade_command(new_database: Callable[[str], str]) -> None:
    url = new_database("cli")
    first = CliRunner().invoke(cli, ["db", "upgrade", "--database-url", url])
    assert first.exit_code == 0, first.output
    assert f"upgraded empty -> {SCHEMA_HEAD}" in first.output
    second = CliRunner().invoke(cli, ["db", "upgrade", "--database-url", url])
    assert "already at revision" in second.output


def test_alembic_migrations_equal_the_fast_create(new_database: Callable[[str], str]) -> None:
    """A fresh store is created from the models and stamped; running every Alembic
    migration instead must give exactly the same schema, names included."""
    migrated = create_store_engine(new_database("a"))
    upgrade(migrated)  # Alembic, script by script
    fresh = create_store_engine(new_database("b"))
    ensure_schema(fresh)  # create_all + stamp
    assert current_revision(migrated) == current_revision(fresh) == SCHEMA_HEAD
    assert _schema(fresh) == _schema(migrated)
    migrated.dispose()
    fresh.dispose()


@pytest.mark.sqlite_only
def test_sqlite_migrations_equal_the_fast_create_sql(tmp_path: Path) -> None:
    """On SQLite, down to the names of every table and index in sqlite_master."""
    migrated = create_store_engine(sqlite_url(tmp_path / "a"))
    upgrade(migrated)
    fresh = create_store_engine(sqlite_url(tmp_path / "b"))
    ensure_schema(fresh)
    with fresh.connect() as a, migrated.connect() as b:
        tables = "SELECT name, sql FROM sqlite_master WHERE type IN ('table','index') ORDER BY name"
        names_a = [r[0] for r in a.execute(text(tables))]
        names_b = [r[0] for r in b.execute(text(tables))]
    assert names_a == names_b


def test_a_read_transaction_reads_one_snapshot() -> None:
    """What read_tx promises on both databases (PostgreSQL's default would not keep
    it): a commit landing between two statements of a read is not seen halfway."""
    from stemma.backend import get_backend
    from stemma.backend.embedded import EmbeddedBackend
    from stemma.settings import Settings
    from stemma.storage.database import read_tx, write_tx
    from stemma.storage.models import entities

    backend = get_backend(Settings.from_env())
    assert isinstance(backend, EmbeddedBackend)
    count = select(func.count()).select_from(entities)
    with read_tx(backend.engine) as reader:
        before = reader.execute(count).scalar_one()
        with write_tx(backend.engine) as writer:
            writer.execute(
                insert(entities).values(name="newcomer", kind="user", created_at=utcnow())
            )
        assert reader.execute(count).scalar_one() == before
    with read_tx(backend.engine) as reader:
        assert reader.execute(count).scalar_one() == before + 1

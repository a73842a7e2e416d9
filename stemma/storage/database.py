"""Opening the metadata database: engine, SQLite pragmas, transactions, migrations.

SQLite is a real backend here, not a toy: WAL so readers never block the writer,
``BEGIN IMMEDIATE`` for writes so two processes never deadlock upgrading a read lock,
and a generous busy timeout so concurrent loggers wait instead of failing.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import re
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, event, make_url, text
from sqlalchemy.exc import DataError, OperationalError, ProgrammingError

from stemma.errors import InvalidValueError, StoreError

# The newest migration. Checked against Alembic's own view of the scripts by a test, so
# opening an up-to-date store never has to import Alembic (a third of a second).
SCHEMA_HEAD = "0009"

_MIGRATIONS = Path(__file__).with_name("migrations")


def sqlite_url(directory: str | os.PathLike[str]) -> str:
    """The default embedded database inside ``STEMMA_DIR``."""
    return f"sqlite:///{Path(directory) / 'stemma.db'}"


@functools.lru_cache(maxsize=256)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _sqlite_regexp(pattern: str | None, value: object) -> int | None:
    """SQLite's ``value REGEXP pattern`` (run filters' ``$regex``): a Python ``re``
    search; NULL for a NULL operand, false for a pattern that does not compile."""
    if pattern is None or value is None:
        return None
    try:
        return int(_compiled(pattern).search(str(value)) is not None)
    except re.error:
        return 0


def _sqlite_on_connect(dbapi_conn, _record) -> None:
    dbapi_conn.create_function("regexp", 2, _sqlite_regexp, deterministic=True)
    # Let SQLAlchemy's "begin" hook below issue BEGIN itself: pysqlite's implicit
    # transactions cannot express BEGIN IMMEDIATE.
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    # Readers never block the writer and the writer never blocks readers.
    cur.execute("PRAGMA journal_mode=WAL")
    # With WAL, NORMAL is durable against process crashes (only power loss may lose the
    # last transactions, which the client's fsync'd spool still holds).
    cur.execute("PRAGMA synchronous=NORMAL")
    # SQLite does not enforce foreign keys unless asked, per connection.
    cur.execute("PRAGMA foreign_keys=ON")
    # Several processes log into one file: wait up to 60 s for the write lock.
    cur.execute("PRAGMA busy_timeout=60000")
    cur.close()


def _sqlite_on_begin(conn: Connection) -> None:
    # Writers take the write lock up front; readers start a plain deferred transaction.
    mode = "IMMEDIATE" if conn.get_execution_options().get("stemma_write") else "DEFERRED"
    conn.exec_driver_sql(f"BEGIN {mode}")


def create_store_engine(url: str) -> Engine:
    """Create the engine for ``url`` with the settings each database needs."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1] if "///" in url else ""
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 60})
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_on_begin)
        return engine
    connect_args: dict[str, str] = {}
    if url.startswith("postgresql") and "options" not in make_url(url).query:
        # Timestamps come back in the session's time zone; pin it to UTC so every
        # datetime the store returns is UTC, as SQLite's (stored as UTC) are, whatever
        # the server's `timezone` setting (a URL's own ?options=... is left alone).
        connect_args["options"] = "-c timezone=UTC"
    return create_engine(
        url, pool_pre_ping=True, pool_size=10, max_overflow=20, connect_args=connect_args
    )


@contextlib.contextmanager
def _refuse_unstorable() -> Iterator[None]:
    """A value the database cannot hold is the caller's data, not the store's state.

    PostgreSQL checks what SQLite lets through: a string longer than its VARCHAR, a NUL
    byte in text or JSON, an integer out of its column's range. Retrying such a write
    can never succeed (the SDK's writer would retry it forever, keeping the run's data
    only in its spool), so it is raised as InvalidValueError, which callers treat as a
    refusal with the database's own explanation.
    """
    try:
        yield
    except DataError as exc:
        # The message and its DETAIL line ("\u0000 cannot be converted to text."), not
        # the CONTEXT lines that would echo the whole value.
        lines = str(exc.orig if exc.orig is not None else exc).strip().splitlines()
        reason = " ".join(line.strip() for line in lines[:2] if not line.startswith("CONTEXT"))
        raise InvalidValueError(f"the database cannot store a value: {reason}") from exc


@contextlib.contextmanager
def write_tx(engine: Engine) -> Iterator[Connection]:
    """A write transaction (BEGIN IMMEDIATE on SQLite), committed on success."""
    with (
        _refuse_unstorable(),
        engine.connect().execution_options(stemma_write=True) as conn,
        conn.begin(),
    ):
        yield conn


@contextlib.contextmanager
def read_tx(engine: Engine) -> Iterator[Connection]:
    """A read transaction: one consistent snapshot for the whole block."""
    with _refuse_unstorable(), engine.connect() as conn, conn.begin():
        if conn.dialect.name == "postgresql":
            # PostgreSQL's default (READ COMMITTED) takes a new snapshot per statement, so
            # a read of several statements (a manifest's chain of deltas, a version then
            # its aliases) could see a commit land halfway. REPEATABLE READ keeps one
            # snapshot, as SQLite's read transaction does; being READ ONLY, it can never
            # fail to serialise.
            conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        yield conn


def current_revision(engine: Engine) -> str | None:
    """The store's schema revision, or None for an empty database."""
    try:
        with read_tx(engine) as conn:
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except (OperationalError, ProgrammingError):
        return None


@contextlib.contextmanager
def _migration_lock(engine: Engine) -> Iterator[None]:
    """Serialise migrations between processes that open a new store at once."""
    if engine.dialect.name == "sqlite":
        db = engine.url.database or ""
        lock_path = f"{db}.migrate.lock" if db and db != ":memory:" else None
        if lock_path is None:
            yield
            return
        with open(lock_path, "a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
    elif engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(5280)"))
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(5280)"))
                conn.commit()
    else:
        yield


def alembic_config(engine: Engine):
    """An Alembic config pointing at our bundled scripts (no alembic.ini needed)."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    # Alembic's config is a ConfigParser: a literal "%" (URL-escaped passwords, a Unix
    # socket as ?host=%2Fvar%2Frun%2Fpostgresql) must be doubled or it fails to parse.
    url = engine.url.render_as_string(hide_password=False)
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision`` (Alembic), under a cross-process lock."""
    from alembic import command

    with _migration_lock(engine):
        if revision == "head" and current_revision(engine) == SCHEMA_HEAD:
            return
        cfg = alembic_config(engine)
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)


def _create_fresh(engine: Engine) -> bool:
    """On a database with no tables at all, create the head schema directly and stamp it.

    Equivalent to running every migration (a test compares the two), without importing
    Alembic: a new user's first run starts a third of a second sooner.
    """
    from sqlalchemy import inspect

    from stemma.storage.models import metadata

    with _migration_lock(engine), write_tx(engine) as conn:
        if inspect(conn).get_table_names():
            return False
        metadata.create_all(conn)
        conn.execute(
            text(
                "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL, "
                "CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num))"
            )
        )
        conn.execute(
            text("INSERT INTO alembic_version (version_num) VALUES (:v)"), {"v": SCHEMA_HEAD}
        )
    return True


def ensure_schema(engine: Engine) -> None:
    """Bring the store to the head schema (creating it when empty)."""
    rev = current_revision(engine)
    if rev == SCHEMA_HEAD:
        return
    try:
        if rev is None and _create_fresh(engine):
            return
        upgrade(engine)
    except Exception as exc:
        raise StoreError(
            f"cannot migrate the store at {engine.url.render_as_string(hide_password=True)} "
            f"from revision {rev!r} to {SCHEMA_HEAD!r}: {exc}",
            revision=rev,
        ) from exc

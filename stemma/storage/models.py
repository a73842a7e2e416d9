"""The SQL schema, as SQLAlchemy Core tables.

Core rather than the ORM: ingest writes thousands of chunk rows a second and every
read is a query the service layer shapes itself, so mapped objects would only add
cost. Alembic migrations under ``migrations/versions`` create exactly these tables; a
test compares the two.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB

# jsonb on PostgreSQL so that later filters can use its operators and indexes.
JsonType = JSON().with_variant(JSONB(), "postgresql")

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

entities = Table(
    "entities",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(128), nullable=False, unique=True),
    Column("kind", String(16), nullable=False),  # user | team
    Column("created_at", DateTime(timezone=True), nullable=False),
)

projects = Table(
    "projects",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("entity_id", Integer, ForeignKey("entities.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(128), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("entity_id", "name"),
)

runs = Table(
    "runs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("project_id", Integer, ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    Column("run_id", String(64), nullable=False),
    Column("name", String(256), nullable=False),
    Column("state", String(16), nullable=False),  # running | finished | failed | crashed
    Column("job_type", String(128)),
    Column("group_name", String(256)),
    Column("tags", JsonType, nullable=False),
    Column("notes", Text),
    Column("config", JsonType, nullable=False),
    Column("summary", JsonType, nullable=False),
    Column("run_metadata", JsonType, nullable=False),
    Column("username", String(128)),
    Column("host", String(256)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("heartbeat_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True)),
    Column("exit_code", Integer),
    Column("last_step", BigInteger, nullable=False),
    Column("runtime", Float, nullable=False),
    UniqueConstraint("project_id", "run_id"),
    Index(None, "project_id", "created_at"),
    Index(None, "state", "heartbeat_at"),
)

# Which spool frames of which spool have been applied to a run: makes ingest idempotent
# (a frame re-sent after a lost reply, or re-read by `stemma sync`, is applied once).
run_spools = Table(
    "run_spools",
    metadata,
    Column("run_pk", Integer, ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    Column("spool_id", String(64), primary_key=True),
    Column("committed_offset", BigInteger, nullable=False),
)

# History, one key of one run per row: a chunk of up to CHUNK_POINTS points with its
# steps and values packed as blobs, plus min/max so that downsampling and range
# queries need not decode every chunk. The last chunk of a key stays `open` and grows
# until it is full, so slow loggers do not leave thousands of tiny chunks.
history_chunks = Table(
    "history_chunks",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("run_pk", Integer, ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    Column("key", String(512), nullable=False),
    Column("first_step", BigInteger, nullable=False),
    Column("last_step", BigInteger, nullable=False),
    Column("n", Integer, nullable=False),
    Column("kind", String(1), nullable=False),
    Column("vmin", Float),
    Column("vmax", Float),
    Column("is_open", Boolean, nullable=False),
    Column("steps", LargeBinary, nullable=False),
    Column("vals", LargeBinary, nullable=False),
    Index(None, "run_pk", "key", "first_step"),
    Index(None, "run_pk", "is_open"),
)

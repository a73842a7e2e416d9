"""The SQL schema, as SQLAlchemy Core tables.

Core rather than the ORM: ingest writes thousands of chunk rows a second and every
read is a query the service layer shapes itself, so mapped objects would only add
cost. Alembic migrations under ``migrations/versions`` create exactly these tables; a
test compares the two.
"""

from __future__ import annotations

from typing import Any

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
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    true,
)
from sqlalchemy.types import TypeDecorator


class JsonType(TypeDecorator[object]):
    """JSON, as ``jsonb`` on PostgreSQL (so filters can use its operators and indexes).

    The PostgreSQL dialect is imported only when a PostgreSQL engine asks for the type:
    importing it eagerly would add 50 ms to every embedded run's start.
    """

    impl = JSON
    cache_ok = True

    def load_dialect_impl(self, dialect: Any) -> Any:
        if dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import JSONB

            return dialect.type_descriptor(JSONB())
        return dialect.type_descriptor(JSON())


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
    # team (every member per role) | private (its owner and the team's admins)
    Column("visibility", String(16), nullable=False, server_default="team"),
    Column("owner_id", Integer, ForeignKey("users.id", ondelete="SET NULL")),
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
    Column("tags", JsonType(), nullable=False),
    Column("notes", Text),
    Column("config", JsonType(), nullable=False),
    Column("summary", JsonType(), nullable=False),
    Column("run_metadata", JsonType(), nullable=False),
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
    # A full chunk's extremes: the min and max point of each of SUMMARY_BUCKETS slices
    # (steps then values, 8 bytes each), so a coarse downsample of a long history reads
    # a few KB per chunk instead of every point. NULL for open chunks and msgpack kinds.
    Column("summary", LargeBinary),
    Index(None, "run_pk", "key", "first_step"),
    Index(None, "run_pk", "is_open"),
)

# Media logged with run.log (images, image lists, tables, plotly figures, HTML), one row
# per key and step: what the history reference says, indexed, so a run's media can be
# listed by key and step without decoding its history. Written when the frame holding
# the history batch is applied (see stemma.service.media).
run_media = Table(
    "run_media",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("run_pk", Integer, ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    Column("key", String(512), nullable=False),
    Column("step", BigInteger, nullable=False),
    Column("kind", String(16), nullable=False),  # image | images | table | plotly | html
    Column("digest", String(64), nullable=False),  # the object's blob (a list's first)
    Column("size", BigInteger, nullable=False),
    Column("caption", Text),
    Column("meta", JsonType(), nullable=False),  # width, height, format, nrows, items...
    UniqueConstraint("run_pk", "key", "step"),
)

# Every blob a run's media needs (a table's image cells and a list's images included),
# with the Content-Type it is served as: the media route serves a digest only when it is
# here for that run, and gc keeps every digest here alive until the run is deleted.
run_media_blobs = Table(
    "run_media_blobs",
    metadata,
    Column("run_pk", Integer, ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    Column("digest", String(64), primary_key=True),
    Column("content_type", String(64), nullable=False),
    Index(None, "digest"),
)

# ------------------------------------------------------------------ artifacts

project_settings = Table(
    "project_settings",
    metadata,
    Column("project_id", Integer, ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True),
    # Aliases only admins may move. Default: ["production"].
    Column("protected_aliases", JsonType(), nullable=False),
    # Whether the project's reports may have share links (its admins decide).
    Column("report_sharing", Boolean, nullable=False, server_default=true()),
)

artifact_collections = Table(
    "artifact_collections",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("project_id", Integer, ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(128), nullable=False),
    Column("type", String(128), nullable=False),
    Column("description", Text),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("project_id", "name"),
)

# One committed (or deleted) version. Files and metadata never change once committed;
# the manifest is stored compressed, as a delta against `manifest_base_id` when smaller.
artifact_versions = Table(
    "artifact_versions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column(
        "collection_id",
        Integer,
        ForeignKey("artifact_collections.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("version_index", Integer, nullable=False),
    Column("digest", String(64), nullable=False),
    Column("description", Text),
    Column("metadata", JsonType(), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("file_count", Integer, nullable=False),
    Column("manifest", LargeBinary),
    Column("manifest_base_id", Integer, ForeignKey("artifact_versions.id")),
    Column("manifest_depth", Integer, nullable=False),
    Column("state", String(16), nullable=False),  # committed | deleted
    Column("ttl_seconds", Float),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("deleted_at", DateTime(timezone=True)),
    Column("run_pk", Integer, ForeignKey("runs.id", ondelete="SET NULL")),
    Column("creator", JsonType(), nullable=False),  # user, host, run path, git commit
    UniqueConstraint("collection_id", "version_index"),
    Index(None, "collection_id", "digest"),
)

artifact_aliases = Table(
    "artifact_aliases",
    metadata,
    Column(
        "collection_id",
        Integer,
        ForeignKey("artifact_collections.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("alias", String(128), primary_key=True),
    Column(
        "version_id",
        Integer,
        ForeignKey("artifact_versions.id", ondelete="CASCADE"),
        nullable=False,
    ),
)

# Every alias change, so "what was production on 2026-10-01?" has an answer.
alias_events = Table(
    "alias_events",
    metadata,
    Column("id", Integer, primary_key=True),
    Column(
        "collection_id",
        Integer,
        ForeignKey("artifact_collections.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("alias", String(128), nullable=False),
    Column("from_version", Integer),
    Column("to_version", Integer),
    Column("actor", String(128)),
    Column("at", DateTime(timezone=True), nullable=False),
    # move | request | approve | reject (promotion requests leave their trail here too)
    Column("event", String(16), nullable=False, server_default="move"),
    Column("comment", Text),
    Index(None, "collection_id", "alias", "at"),
)

# Lineage: a run used (input) or logged (output) an artifact version.
artifact_usage = Table(
    "artifact_usage",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("run_pk", Integer, ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    Column(
        "version_id",
        Integer,
        ForeignKey("artifact_versions.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("direction", String(8), nullable=False),  # input | output
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("run_pk", "version_id", "direction"),
    Index(None, "version_id", "direction"),
)

# Blobs the store holds. `condemned` marks blobs gc is about to delete: a commit that
# references one is refused (the client uploads it again), so gc never races a commit.
blobs = Table(
    "blobs",
    metadata,
    Column("digest", String(64), primary_key=True),
    Column("size", BigInteger, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("condemned", Boolean, nullable=False),
)

# Chunk-level deduplication: a large file is an ordered list of content-defined chunks,
# stored once each inside packfiles (which are ordinary blobs in ``blobs``).
chunks = Table(
    "chunks",
    metadata,
    Column("digest", String(64), primary_key=True),  # SHA-256 of the raw chunk bytes
    Column("pack", String(64), nullable=False),  # the blob holding the chunk
    Column("offset", BigInteger, nullable=False),
    Column("stored_size", Integer, nullable=False),  # bytes in the pack (after compression)
    Column("size", Integer, nullable=False),  # raw bytes
    Column("codec", SmallInteger, nullable=False),  # 0 raw, 1 zstd
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("condemned", Boolean, nullable=False),
    Index(None, "pack"),
)

chunked_files = Table(
    "chunked_files",
    metadata,
    Column("digest", String(64), primary_key=True),  # SHA-256 of the whole file
    Column("size", BigInteger, nullable=False),
    Column("chunk_count", Integer, nullable=False),
    Column("recipe", LargeBinary, nullable=False),  # 32-byte chunk digests + sizes, in order
    Column("created_at", DateTime(timezone=True), nullable=False),
)

retention_policies = Table(
    "retention_policies",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("project_id", Integer, ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    Column("collection_name", String(128)),  # NULL: every artifact of the project
    Column("keep_last", Integer),
    Column("delete_unaliased_older_than", Float),  # seconds
    # TTL (seconds) given to new versions committed without one
    Column("default_ttl_seconds", Float),
    UniqueConstraint("project_id", "collection_name"),
)

# ------------------------------------------------------------------ identity and access

# People and service accounts. A person has a personal entity (``entity_id``) and logs
# in with a password (UI) or API keys (SDK); a service account belongs to one team
# (``team_id``), has a role there and only API keys.
users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("username", String(128), nullable=False, unique=True),
    Column("email", String(320), unique=True),  # NULL for service accounts
    Column("display_name", String(256), nullable=False),
    Column("kind", String(16), nullable=False),  # user | service_account
    Column("password_hash", String(256)),  # argon2id; NULL: no UI login
    Column("is_admin", Boolean, nullable=False),  # instance administrator
    Column("entity_id", Integer, ForeignKey("entities.id", ondelete="SET NULL")),
    Column("team_id", Integer, ForeignKey("entities.id", ondelete="CASCADE")),
    Column("role", String(16)),  # a service account's role in its team
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("disabled_at", DateTime(timezone=True)),
)

# API keys: ``stm_<prefix>_<secret>``; only the prefix (to find the row) and a SHA-256
# of the whole key are kept. Keys are 190 random bits, so a fast hash is safe.
api_keys = Table(
    "api_keys",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("prefix", String(16), nullable=False, unique=True),
    Column("key_hash", String(64), nullable=False),
    Column("name", String(128)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("last_used_at", DateTime(timezone=True)),
    Column("expires_at", DateTime(timezone=True)),
    Column("revoked_at", DateTime(timezone=True)),
)

memberships = Table(
    "memberships",
    metadata,
    Column("entity_id", Integer, ForeignKey("entities.id", ondelete="CASCADE"), primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("role", String(16), nullable=False),  # admin | member | viewer
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index(None, "user_id"),
)

# An invitation of an email that has no account yet, redeemed when the account is made
# or first signs in.
invites = Table(
    "invites",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("entity_id", Integer, ForeignKey("entities.id", ondelete="CASCADE"), nullable=False),
    Column("email", String(320), nullable=False),
    Column("role", String(16), nullable=False),
    Column("invited_by", String(128)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("redeemed_at", DateTime(timezone=True)),
    UniqueConstraint("entity_id", "email"),
)

# Web sessions, in the database so that any replica can check any cookie.
web_sessions = Table(
    "web_sessions",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("csrf", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
)

# Failed sign-ins, for rate limiting across replicas.
login_failures = Table(
    "login_failures",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("email", String(320), nullable=False),
    Column("address", String(64)),
    Column("at", DateTime(timezone=True), nullable=False),
    Index(None, "email", "at"),
    Index(None, "address", "at"),
)

# A member's request to move a protected alias, decided by a team admin.
promotion_requests = Table(
    "promotion_requests",
    metadata,
    Column("id", Integer, primary_key=True),
    Column(
        "collection_id",
        Integer,
        ForeignKey("artifact_collections.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("alias", String(128), nullable=False),
    Column("version_index", Integer, nullable=False),
    Column("requested_by", String(128), nullable=False),
    Column("requested_at", DateTime(timezone=True), nullable=False),
    Column("comment", Text),
    Column("state", String(16), nullable=False),  # pending | approved | rejected
    Column("decided_by", String(128)),
    Column("decided_at", DateTime(timezone=True)),
    Column("decision_comment", Text),
    Index(None, "collection_id", "state"),
)

# The audit log: append-only and hash-chained. ``seq`` is dense (1, 2, 3...) and each
# entry stores the hash of the one before, so an edited entry fails its own hash and a
# deleted one breaks the chain (and the sequence) at the next.
audit_log = Table(
    "audit_log",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("actor", String(128), nullable=False),
    Column("actor_kind", String(16), nullable=False),
    Column("source", String(64)),
    Column("action", String(64), nullable=False),
    Column("entity", String(128)),  # the team/user entity concerned: who may read it
    Column("target", String(512), nullable=False),
    Column("details", JsonType(), nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Index(None, "entity", "seq"),
    Index(None, "actor", "seq"),
    Index(None, "action", "seq"),
)

# ------------------------------------------------------------------ reports

# A report: its current title and revision, and its share link. Only a SHA-256 of the
# share token is kept (tokens are 256 random bits, so a fast hash is safe, as for API
# keys): the token is shown once, when sharing is enabled.
reports = Table(
    "reports",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("report_id", String(32), nullable=False, unique=True),
    Column("project_id", Integer, ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    Column("title", String(256), nullable=False),
    Column("description", Text, nullable=False),
    Column("revision", Integer, nullable=False),  # the newest
    Column("created_by", String(128), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_by", String(128), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("share_token_hash", String(64), unique=True),  # NULL: no share link
    Column("shared_by", String(128)),
    Column("shared_at", DateTime(timezone=True)),
    Index(None, "project_id", "updated_at"),
)

# Every saved revision's whole spec (see stemma.report.spec): earlier ones stay readable.
report_revisions = Table(
    "report_revisions",
    metadata,
    Column("report_pk", Integer, ForeignKey("reports.id", ondelete="CASCADE"), primary_key=True),
    Column("revision", Integer, primary_key=True),
    Column("spec", JsonType(), nullable=False),
    Column("title", String(256), nullable=False),
    Column("saved_by", String(128), nullable=False),
    Column("saved_at", DateTime(timezone=True), nullable=False),
)

# ------------------------------------------------------------------ webhooks

# A webhook of a team (or personal) entity: where to POST which events. The secret signs
# each delivery (HMAC-SHA256), so it is kept as given: it is shown once, when the webhook
# is made, and never returned again.
webhooks = Table(
    "webhooks",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("entity_id", Integer, ForeignKey("entities.id", ondelete="CASCADE"), nullable=False),
    Column("url", String(2048), nullable=False),
    Column("secret", String(256), nullable=False),
    Column("events", JsonType(), nullable=False),  # a list of event names
    Column("alias", String(128)),  # artifact.alias_moved only for this alias (NULL: any)
    Column("enabled", Boolean, nullable=False),
    Column("created_by", String(128), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index(None, "entity_id"),
)

# One event to send to one webhook, enqueued in the transaction that made the change and
# sent by a background worker (see stemma.service.webhook_delivery). ``delivery_id`` is
# the public id (X-Stemma-Delivery), the same on every attempt; ``payload`` the JSON body.
webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("delivery_id", String(32), nullable=False, unique=True),
    Column("webhook_id", Integer, ForeignKey("webhooks.id", ondelete="CASCADE"), nullable=False),
    Column("event", String(64), nullable=False),
    Column("payload", JsonType(), nullable=False),
    Column("status", String(16), nullable=False),  # pending | succeeded | failed
    Column("attempts", Integer, nullable=False),
    # When a pending delivery is due; a worker that claims it pushes this forward by a
    # lease, so a worker that dies mid-send leaves it due again, not lost.
    Column("next_attempt_at", DateTime(timezone=True)),
    Column("last_status_code", Integer),
    Column("last_error", Text),
    Column("attempt_log", JsonType(), nullable=False),  # [{at, status_code, error, ms}]
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True)),
    Index(None, "status", "next_attempt_at"),
    Index(None, "webhook_id", "id"),
)

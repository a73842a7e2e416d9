"""The REST API's request and response bodies, shared by the server and the HTTP client.

One definition, imported by both sides, so client and server can never drift apart.
Values that may hold NaN or infinities (config, summary, metadata) travel in their
*storable* form (non-finite floats tagged, see :mod:`stemma.wire.values`), because
JSON cannot carry them.

This module imports pydantic: only the server and the HTTP backend import it, never
``import stemma`` itself.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from stemma.wire.manifest import Manifest
from stemma.wire.records import ArtifactRecord, RunRecord, RunRef
from stemma.wire.values import MAX_SECONDS, from_storable, to_storable

MSGPACK = "application/x-msgpack"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorOut(_Model):
    """Every error the API returns: a stable code, a message for people, context."""

    code: str = Field(examples=["not_found"])
    message: str
    context: dict[str, Any] = Field(default_factory=dict)


class RunRefIn(_Model):
    entity: str
    project: str
    run_id: str

    def ref(self) -> RunRef:
        return RunRef(self.entity, self.project, self.run_id)


class RunOut(_Model):
    entity: str
    project: str
    run_id: str
    name: str
    state: str
    job_type: str | None
    group: str | None
    tags: list[str]
    notes: str | None
    config: dict[str, Any]
    summary: dict[str, Any]
    metadata: dict[str, Any]
    user: str | None
    host: str | None
    created_at: dt.datetime
    heartbeat_at: dt.datetime
    finished_at: dt.datetime | None
    exit_code: int | None
    last_step: int
    runtime: float

    @classmethod
    def from_record(cls, r: RunRecord) -> RunOut:
        return cls(
            entity=r.entity,
            project=r.project,
            run_id=r.run_id,
            name=r.name,
            state=r.state,
            job_type=r.job_type,
            group=r.group,
            tags=r.tags,
            notes=r.notes,
            config=to_storable(r.config),
            summary=to_storable(r.summary),
            metadata=to_storable(r.metadata),
            user=r.user,
            host=r.host,
            created_at=r.created_at,
            heartbeat_at=r.heartbeat_at,
            finished_at=r.finished_at,
            exit_code=r.exit_code,
            last_step=r.last_step,
            runtime=r.runtime,
        )

    def to_record(self) -> RunRecord:
        return RunRecord(
            entity=self.entity,
            project=self.project,
            run_id=self.run_id,
            name=self.name,
            state=self.state,
            job_type=self.job_type,
            group=self.group,
            tags=self.tags,
            notes=self.notes,
            config=from_storable(self.config),
            summary=from_storable(self.summary),
            metadata=from_storable(self.metadata),
            user=self.user,
            host=self.host,
            created_at=self.created_at,
            heartbeat_at=self.heartbeat_at,
            finished_at=self.finished_at,
            exit_code=self.exit_code,
            last_step=self.last_step,
            runtime=self.runtime,
        )


class RunPage(_Model):
    runs: list[RunOut]


def run_page_json(records: list[RunRecord]) -> bytes:
    """A RunPage's JSON straight from records: listing thousands of runs is the hot read
    path, and building then re-validating a model per run cost more than the query."""
    import json

    def iso(value: dt.datetime | None) -> str | None:
        return None if value is None else value.isoformat()

    runs = [
        {
            "entity": r.entity,
            "project": r.project,
            "run_id": r.run_id,
            "name": r.name,
            "state": r.state,
            "job_type": r.job_type,
            "group": r.group,
            "tags": r.tags,
            "notes": r.notes,
            "config": to_storable(r.config),
            "summary": to_storable(r.summary),
            "metadata": to_storable(r.metadata),
            "user": r.user,
            "host": r.host,
            "created_at": iso(r.created_at),
            "heartbeat_at": iso(r.heartbeat_at),
            "finished_at": iso(r.finished_at),
            "exit_code": r.exit_code,
            "last_step": r.last_step,
            "runtime": r.runtime,
        }
        for r in records
    ]
    return json.dumps({"runs": runs}, allow_nan=False, separators=(",", ":")).encode()


def run_from_json(d: dict[str, Any]) -> RunRecord:
    """The inverse of one entry of :func:`run_page_json` (a server's own output: trusted
    shape, so no model validation on this hot path)."""

    def when(value: str | None) -> dt.datetime | None:
        return None if value is None else dt.datetime.fromisoformat(value)

    return RunRecord(
        entity=d["entity"],
        project=d["project"],
        run_id=d["run_id"],
        name=d["name"],
        state=d["state"],
        job_type=d["job_type"],
        group=d["group"],
        tags=list(d["tags"]),
        notes=d["notes"],
        config=from_storable(d["config"]),
        summary=from_storable(d["summary"]),
        metadata=from_storable(d["metadata"]),
        user=d["user"],
        host=d["host"],
        created_at=when(d["created_at"]),  # type: ignore[arg-type]
        heartbeat_at=when(d["heartbeat_at"]),  # type: ignore[arg-type]
        finished_at=when(d["finished_at"]),
        exit_code=d["exit_code"],
        last_step=d["last_step"],
        runtime=d["runtime"],
    )


class CountOut(_Model):
    count: int


class ProjectOut(_Model):
    entity: str
    name: str
    runs: int


class ApplyOut(_Model):
    applied: bool
    committed_offset: int


class OffsetOut(_Model):
    committed_offset: int


class RunUpdateIn(_Model):
    name: str | None = None
    tags: list[str] | None = None
    notes: str | None = None
    group: str | None = None
    job_type: str | None = None
    summary: dict[str, Any] | None = None

    def changes(self) -> dict[str, Any]:
        out = self.model_dump(exclude_unset=True)
        if "summary" in out and out["summary"] is not None:
            out["summary"] = from_storable(out["summary"])
        return out


class HistoriesIn(_Model):
    run_ids: list[str] = Field(max_length=1000)
    keys: list[str] | None = Field(default=None, max_length=1000)
    samples: int | None = Field(default=None, ge=1, le=1_000_000)
    stream: str = Field(default="default", pattern="^(default|system)$")


class KeysOut(_Model):
    keys: list[str]


class MediaOut(_Model):
    """One media value a run logged (see :mod:`stemma.wire.media`)."""

    key: str
    step: int
    kind: str = Field(description="image, images (a list), table, plotly or html")
    digest: str = Field(description="SHA-256 of its blob (a list: of its first image)")
    size: int = Field(description="bytes (a list: of all its images)")
    caption: str | None = None
    meta: dict[str, Any] = Field(
        default_factory=dict,
        description="the rest of its reference: width, height, format (images), nrows, "
        "ncols, images (tables), count, items (lists of images)",
    )


class MediaListOut(_Model):
    media: list[MediaOut]


class WhoAmIOut(_Model):
    user: str
    entity: str = Field(description="where runs go by default (a service account's team)")
    mode: str = Field(description="`local` (single user, no login) or `auth`")
    kind: str = Field(default="local", description="user, service_account or local")
    is_admin: bool = False
    email: str | None = None
    display_name: str | None = None
    teams: dict[str, str] = Field(default_factory=dict, description="team -> role")


# ------------------------------------------------------------------ blobs


class BlobIn(_Model):
    digest: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(ge=0)


class BlobsIn(_Model):
    blobs: list[BlobIn] = Field(max_length=100_000)


class DigestsIn(_Model):
    digests: list[str] = Field(max_length=100_000)


class DigestsOut(_Model):
    digests: list[str]


class UploadTarget(_Model):
    """How to upload one missing blob: a PUT to ``url`` with ``headers`` (single part),
    or a multipart upload with a URL per part; then ``POST /blobs/register``."""

    digest: str
    size: int
    method: str = "PUT"
    url: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    upload_id: str | None = None
    part_size: int | None = None
    part_urls: list[str] = Field(default_factory=list)


class UploadPlanOut(_Model):
    uploads: list[UploadTarget]


class MultipartDoneIn(_Model):
    digest: str = Field(pattern=r"^[0-9a-f]{64}$")
    upload_id: str
    parts: list[dict[str, Any]]
    size: int | None = Field(default=None, ge=0, description="checked by the object store")


# ------------------------------------------------------------------ artifacts


class ArtifactRefIn(_Model):
    entity: str
    project: str
    name: str
    version: int = Field(ge=0)


class ArtifactOut(_Model):
    entity: str
    project: str
    name: str
    type: str
    version: int
    digest: str
    description: str | None
    metadata: dict[str, Any]
    size: int
    file_count: int
    aliases: list[str]
    state: str
    ttl_seconds: float | None
    created_at: dt.datetime
    creator: dict[str, Any]
    run_path: str | None
    manifest: dict[str, Any] | None = None

    @classmethod
    def from_record(cls, r: ArtifactRecord) -> ArtifactOut:
        return cls(
            entity=r.entity,
            project=r.project,
            name=r.name,
            type=r.type,
            version=r.version,
            digest=r.digest,
            description=r.description,
            metadata=to_storable(r.metadata),
            size=r.size,
            file_count=r.file_count,
            aliases=r.aliases,
            state=r.state,
            ttl_seconds=r.ttl_seconds,
            created_at=r.created_at,
            creator=to_storable(r.creator),
            run_path=r.run_path,
            manifest=r.manifest.to_json() if r.manifest is not None else None,
        )

    def to_record(self) -> ArtifactRecord:
        return ArtifactRecord(
            entity=self.entity,
            project=self.project,
            name=self.name,
            type=self.type,
            version=self.version,
            digest=self.digest,
            description=self.description,
            metadata=from_storable(self.metadata),
            size=self.size,
            file_count=self.file_count,
            aliases=self.aliases,
            state=self.state,
            ttl_seconds=self.ttl_seconds,
            created_at=self.created_at,
            creator=from_storable(self.creator),
            run_path=self.run_path,
            manifest=Manifest.from_json(self.manifest) if self.manifest is not None else None,
        )


class ArtifactList(_Model):
    artifacts: list[ArtifactOut]


class ArtifactCommitIn(_Model):
    type: str
    description: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    manifest: dict[str, Any]
    aliases: list[str] = Field(default_factory=list)
    ttl_seconds: float | None = Field(default=None, gt=0, le=MAX_SECONDS)
    run: RunRefIn | None = None
    creator: dict[str, Any] = Field(default_factory=dict)


class CommitOut(_Model):
    artifact: ArtifactOut
    created: bool


class ArtifactUpdateIn(_Model):
    aliases: list[str] | None = None
    add_aliases: list[str] | None = None  # relative to the current aliases, under a lock
    remove_aliases: list[str] | None = None
    description: str | None = None
    ttl_seconds: float | None = None
    metadata: dict[str, Any] | None = None

    def changes(self) -> dict[str, Any]:
        out = self.model_dump(exclude_unset=True)
        if out.get("metadata") is not None:
            out["metadata"] = from_storable(out["metadata"])
        return out


class CollectionOut(_Model):
    entity: str
    project: str
    name: str
    type: str
    description: str | None
    created_at: dt.datetime | None
    versions: int
    latest_version: int | None
    size: int


class CollectionList(_Model):
    collections: list[CollectionOut]


class ArtifactTypeOut(_Model):
    type: str
    collections: int
    versions: int


class ArtifactTypeList(_Model):
    types: list[ArtifactTypeOut]


class ArtifactRunsOut(_Model):
    logged_by: RunOut | None
    used_by: list[RunOut]


class AliasesIn(_Model):
    aliases: list[str]


class AliasesOut(_Model):
    aliases: list[str]


class RetentionIn(_Model):
    name: str | None = None
    keep_last: int | None = Field(default=None, ge=1)
    delete_unaliased_older_than: float | None = Field(default=None, gt=0, le=MAX_SECONDS)
    default_ttl: float | None = Field(default=None, gt=0, le=MAX_SECONDS)


class RetentionOut(_Model):
    policies: list[dict[str, Any]]


class GcIn(_Model):
    dry_run: bool = False
    grace_seconds: float = Field(default=3600.0, ge=0, le=MAX_SECONDS)
    repack_below: float = Field(default=0.5, ge=0, le=1)


class JsonOut(_Model):
    """A free-form JSON document (lineage graphs, diffs, gc and storage reports)."""

    model_config = ConfigDict(extra="allow")


# ------------------------------------------------------------------ people, teams, audit


class UserIn(_Model):
    email: str = Field(max_length=320)
    display_name: str | None = Field(default=None, max_length=256)
    username: str | None = Field(default=None, max_length=128)
    admin: bool = False
    password: str | None = Field(
        default=None, max_length=1024, description="omit to have one generated (shown once)"
    )
    with_key: bool = Field(default=True, description="also create an API key (shown once)")


class UserOut(_Model):
    username: str
    email: str | None
    display_name: str
    kind: str
    is_admin: bool
    role: str | None = None
    created_at: dt.datetime
    disabled: bool


class CreatedUserOut(_Model):
    user: UserOut
    password: str = Field(description="shown once; never stored")
    key: str | None = Field(default=None, description="shown once; never stored")


class UserPatchIn(_Model):
    disabled: bool


class PasswordIn(_Model):
    password: str | None = Field(default=None, max_length=1024)


class PasswordOut(_Model):
    password: str


class KeyIn(_Model):
    user: str | None = Field(
        default=None, max_length=320, description="username or email; default: the caller"
    )
    name: str | None = Field(default=None, max_length=128)
    expires_in: float | None = Field(
        default=None, gt=0, le=MAX_SECONDS, description="lifetime in seconds"
    )


class KeyOut(_Model):
    prefix: str
    user: str
    name: str | None
    created_at: dt.datetime
    last_used_at: dt.datetime | None
    expires_at: dt.datetime | None
    revoked: bool


class CreatedKeyOut(_Model):
    info: KeyOut
    key: str = Field(description="shown once; never stored")


class TeamIn(_Model):
    name: str = Field(max_length=128)


class TeamOut(_Model):
    name: str
    members: int = 0
    role: str | None
    created_at: dt.datetime | None = None


class MemberOut(_Model):
    username: str
    email: str | None
    display_name: str
    role: str


class InviteOut(_Model):
    email: str
    role: str
    invited_by: str | None
    created_at: dt.datetime


class TeamDetailOut(_Model):
    team: str
    members: list[MemberOut]
    invites: list[InviteOut]
    service_accounts: list[UserOut]


class MemberIn(_Model):
    role: str = "member"


class MembershipOut(_Model):
    team: str
    status: str = Field(description="added, changed, unchanged, invited, removed...")
    user: str | None = None
    email: str | None = None
    role: str | None = None


class ServiceAccountIn(_Model):
    name: str = Field(max_length=100)
    role: str = "member"


class CreatedServiceAccountOut(_Model):
    account: UserOut
    key: str = Field(description="shown once; never stored")


class VisibilityIn(_Model):
    visibility: str = Field(description="team or private")


class AuditEntryOut(_Model):
    seq: int
    at: dt.datetime
    actor: str
    actor_kind: str
    source: str | None
    action: str
    entity: str | None
    target: str
    details: dict[str, Any]
    prev_hash: str
    hash: str


class AuditVerifyOut(_Model):
    ok: bool
    checked: int
    first_bad: int | None
    problem: str | None
    head: str | None = None


class PromotionIn(_Model):
    alias: str = Field(max_length=128)
    comment: str | None = Field(default=None, max_length=4000)


class DecisionIn(_Model):
    approve: bool
    comment: str | None = Field(default=None, max_length=4000)


class PromotionOut(_Model):
    id: int
    artifact: str
    alias: str
    version: str
    requested_by: str
    requested_at: dt.datetime
    comment: str | None
    state: str
    decided_by: str | None
    decided_at: dt.datetime | None
    decision_comment: str | None


# ------------------------------------------------------------------ chunks


class ChunksMissingIn(_Model):
    """Large files a client is about to store as chunks, and their chunks."""

    files: list[BlobIn] = Field(default_factory=list, max_length=100_000)
    chunks: list[str] = Field(default_factory=list, max_length=1_000_000)


class ChunksMissingOut(_Model):
    files: list[str]  # files the store already holds completely: nothing to upload
    chunks: list[str]  # chunks the store lacks: pack and upload these


class PacksIn(_Model):
    packs: list[str] = Field(max_length=10_000)


class PacksOut(_Model):
    chunks: int  # chunks registered from the packs


class ChunkedFileIn(_Model):
    digest: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(ge=0)
    chunks: list[tuple[str, int]] = Field(max_length=1_000_000)


class ChunkLocation(_Model):
    digest: str
    size: int
    pack: str
    offset: int
    stored_size: int
    codec: int


class ChunkedFileOut(_Model):
    """Where a chunked file's chunks are: read ``stored_size`` bytes at ``offset`` of the
    pack's URL (an HTTP range request), decode with ``codec`` (0 raw, 1 zstd)."""

    digest: str
    size: int
    chunks: list[ChunkLocation]
    packs: dict[str, str]  # pack digest -> URL (ours, or a presigned object-store URL)

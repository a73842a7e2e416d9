"""Plain records passed across the backend interface (and, later, over HTTP)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

RUN_STATES = ("running", "finished", "failed", "crashed")


@dataclasses.dataclass(frozen=True, slots=True)
class RunRef:
    """Where a run lives: ``entity/project/run_id``."""

    entity: str
    project: str
    run_id: str

    @property
    def path(self) -> str:
        return f"{self.entity}/{self.project}/{self.run_id}"


@dataclasses.dataclass(slots=True)
class RunRecord:
    """A run as stored: what the read API and the CLI show."""

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

    @property
    def ref(self) -> RunRef:
        return RunRef(self.entity, self.project, self.run_id)


@dataclasses.dataclass(frozen=True, slots=True)
class ApplyResult:
    """What an ``apply`` did: False in ``applied`` means the frame was a duplicate."""

    applied: bool
    committed_offset: int


@dataclasses.dataclass(frozen=True, slots=True)
class ArtifactRef:
    """One version of an artifact: ``entity/project/name:vN``."""

    entity: str
    project: str
    name: str
    version: int

    @property
    def path(self) -> str:
        return f"{self.entity}/{self.project}/{self.name}:v{self.version}"


@dataclasses.dataclass(slots=True)
class ArtifactRecord:
    """A committed (or deleted) artifact version as stored."""

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
    manifest: Any = None  # a Manifest when asked for

    @property
    def ref(self) -> ArtifactRef:
        return ArtifactRef(self.entity, self.project, self.name, self.version)


@dataclasses.dataclass(slots=True)
class ArtifactCommit:
    """Everything needed to commit one artifact version."""

    entity: str
    project: str
    name: str
    type: str
    description: str | None
    metadata: dict[str, Any]
    manifest: Any  # a Manifest
    aliases: list[str]
    ttl_seconds: float | None
    run: RunRef | None
    creator: dict[str, Any]

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

"""The backend interface: everything the SDK and the read API ask of a store.

Two implementations: :mod:`stemma.backend.embedded` (in-process, SQL + local files) and,
next, an HTTP client for a Stemma server. Methods take and return plain records from
:mod:`stemma.wire`, never ORM objects or connections, so that every method can travel
over HTTP unchanged. Writes to runs go through one batch operation, :meth:`apply`; the
SDK's conveniences (log, config, summary, finish) are events inside it.
"""

from __future__ import annotations

import abc
from typing import Any

from stemma.wire.chunks import Column
from stemma.wire.records import ApplyResult, RunRecord, RunRef


class Backend(abc.ABC):
    """A store of runs (and, later, artifacts, users, reports...)."""

    @abc.abstractmethod
    def default_entity(self) -> str:
        """The entity new runs go to when none is given."""

    @abc.abstractmethod
    def apply(
        self, ref: RunRef, spool_id: str, start: int, end: int, events: list[dict[str, Any]]
    ) -> ApplyResult:
        """Apply spool frame ``[start, end)`` to ``ref`` atomically and at most once."""

    @abc.abstractmethod
    def committed_offset(self, ref: RunRef, spool_id: str) -> int:
        """How many bytes of that spool were applied (0 when none or no such run)."""

    @abc.abstractmethod
    def heartbeat(self, ref: RunRef) -> None:
        """Record that the run's process is alive."""

    @abc.abstractmethod
    def get_run(self, ref: RunRef) -> RunRecord | None:
        """One run, or None."""

    @abc.abstractmethod
    def list_runs(
        self,
        entity: str,
        project: str,
        *,
        order: str = "-created_at",
        offset: int = 0,
        limit: int | None = 50,
    ) -> list[RunRecord]:
        """A page of a project's runs."""

    @abc.abstractmethod
    def count_runs(self, entity: str, project: str) -> int:
        """How many runs the project has."""

    @abc.abstractmethod
    def list_projects(self, entity: str | None = None) -> list[tuple[str, str, int]]:
        """(entity, project, run count) of every project (of ``entity``)."""

    @abc.abstractmethod
    def history_keys(self, ref: RunRef) -> list[str]:
        """Every history key the run has logged (system/* included)."""

    @abc.abstractmethod
    def read_history(
        self,
        ref: RunRef,
        keys: list[str] | None = None,
        *,
        stream: str = "default",
        samples: int | None = None,
        min_step: int | None = None,
        max_step: int | None = None,
    ) -> dict[str, Column]:
        """History columns of one run, optionally downsampled per key to ``samples``."""

    @abc.abstractmethod
    def update_run(self, ref: RunRef, changes: dict[str, Any]) -> None:
        """Edit name, tags, notes, group, job type or summary."""

    @abc.abstractmethod
    def delete_run(self, ref: RunRef) -> None:
        """Delete a run and its history."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""

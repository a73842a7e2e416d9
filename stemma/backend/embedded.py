"""The embedded backend: the service layer called in-process over SQL and local files."""

from __future__ import annotations

import getpass
import threading
import time
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from stemma.backend.base import Backend
from stemma.errors import StoreError
from stemma.service import history as history_service
from stemma.service import runs as run_service
from stemma.settings import Settings
from stemma.storage.database import (
    create_store_engine,
    ensure_schema,
    read_tx,
    sqlite_url,
    write_tx,
)
from stemma.wire.chunks import Column
from stemma.wire.records import ApplyResult, RunRecord, RunRef

# Marking silent runs as crashed is a write; do it at most this often per process.
_SWEEP_EVERY = 2.0


class EmbeddedBackend(Backend):
    """SQLite under ``STEMMA_DIR`` (or ``STEMMA_DATABASE_URL``), migrated on open."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.url = settings.database_url or sqlite_url(settings.dir)
        try:
            self.engine = create_store_engine(self.url)
            ensure_schema(self.engine)
        except StoreError:
            raise
        except (OSError, SQLAlchemyError) as exc:
            raise StoreError(f"cannot open the store at {self.url}: {exc}", url=self.url) from exc
        self._last_sweep = 0.0
        self._sweep_lock = threading.Lock()

    def default_entity(self) -> str:
        try:
            return getpass.getuser()
        except Exception:  # no passwd entry (some containers)
            return "local"

    def apply(
        self, ref: RunRef, spool_id: str, start: int, end: int, events: list[dict[str, Any]]
    ) -> ApplyResult:
        with write_tx(self.engine) as conn:
            return run_service.apply_frame(conn, ref, spool_id, start, end, events)

    def committed_offset(self, ref: RunRef, spool_id: str) -> int:
        with read_tx(self.engine) as conn:
            return run_service.committed_offset(conn, ref, spool_id)

    def heartbeat(self, ref: RunRef) -> None:
        with write_tx(self.engine) as conn:
            run_service.heartbeat(conn, ref)

    def _sweep(self) -> None:
        now = time.monotonic()
        if now - self._last_sweep < _SWEEP_EVERY or not self._sweep_lock.acquire(blocking=False):
            return
        try:
            with write_tx(self.engine) as conn:
                run_service.sweep_crashed(conn, self.settings.crash_timeout)
            self._last_sweep = now
        finally:
            self._sweep_lock.release()

    def get_run(self, ref: RunRef) -> RunRecord | None:
        self._sweep()
        with read_tx(self.engine) as conn:
            return run_service.get_run(conn, ref)

    def list_runs(
        self,
        entity: str,
        project: str,
        *,
        order: str = "-created_at",
        offset: int = 0,
        limit: int | None = 50,
    ) -> list[RunRecord]:
        self._sweep()
        with read_tx(self.engine) as conn:
            return run_service.list_runs(
                conn, entity, project, order=order, offset=offset, limit=limit
            )

    def count_runs(self, entity: str, project: str) -> int:
        with read_tx(self.engine) as conn:
            return run_service.count_runs(conn, entity, project)

    def list_projects(self, entity: str | None = None) -> list[tuple[str, str, int]]:
        with read_tx(self.engine) as conn:
            return run_service.list_projects(conn, entity)

    def history_keys(self, ref: RunRef) -> list[str]:
        with read_tx(self.engine) as conn:
            return history_service.list_keys(conn, run_service.require_run_pk(conn, ref))

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
        with read_tx(self.engine) as conn:
            pk = run_service.require_run_pk(conn, ref)
            cols = history_service.read_columns(
                conn, pk, keys, stream=stream, min_step=min_step, max_step=max_step
            )
        if samples:
            cols = {k: history_service.downsample(c, samples) for k, c in cols.items()}
        return cols

    def update_run(self, ref: RunRef, changes: dict[str, Any]) -> None:
        with write_tx(self.engine) as conn:
            run_service.update_run(conn, ref, changes)

    def delete_run(self, ref: RunRef) -> None:
        with write_tx(self.engine) as conn:
            run_service.delete_run(conn, ref)

    def close(self) -> None:
        self.engine.dispose()

"""The background writer: queue -> spool file -> store, so ``run.log`` never waits.

``run.log`` appends a row to a deque (a few hundred nanoseconds). The spool thread wakes
a few times a second, turns what was queued into events (rows become one columnar
history batch) and appends them as one frame to the run's spool file; an applier thread
sends frames to the backend. The two are separate so that a slow or unreachable store
can never delay the spool: what a SIGKILL can lose stays bounded by the flush interval.
If the store is unreachable the frames stay pending (in memory up to a cap, always on
disk) and are retried with exponential backoff; a process killed outright loses at most
the rows queued since the last wake-up, and whatever reached the spool is applied later
by ``stemma sync`` or by resuming the run.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import random
import sys
import threading
import time
from pathlib import Path
from typing import Any

from stemma.errors import StemmaError
from stemma.sdk import capture, mediastore
from stemma.sdk.spool import SpoolReader, SpoolWriter
from stemma.settings import Settings
from stemma.wire.history import Row, encode_rows
from stemma.wire.records import RunRef

log = logging.getLogger(__name__)

FLUSH_INTERVAL = 0.2  # seconds between spool writes: bounds what a SIGKILL can lose
FSYNC_INTERVAL = 2.0  # seconds between fsyncs of the spool (and always at finish)
MAX_ROWS_PER_EVENT = 25_000  # keeps frames (and, later, HTTP bodies) a few MB at most
MAX_PENDING_BYTES = 64 * 2**20  # beyond this, pending frames are re-read from the spool


class RunWriter(threading.Thread):
    """Drains one run's queue into its spool and its store."""

    def __init__(
        self,
        settings: Settings,
        ref: RunRef,
        spool_path: Path,
        spool_id: str,
        created_at: float,
        backend: Any = None,
    ) -> None:
        super().__init__(name=f"stemma-writer-{ref.run_id}", daemon=True)
        self.settings = settings
        self.ref = ref
        self.queue: collections.deque[Any] = collections.deque()
        self.spool = SpoolWriter(spool_path, ref, spool_id, created_at)
        self._backend = backend
        self._online = settings.mode == "online"
        self._wake = threading.Event()
        self._stopping = False
        self._pending: list[tuple[int, int, list[dict[str, Any]]]] = []
        self._pending_bytes = 0
        self._spilled = False  # pending frames dropped from memory: re-read from the spool
        self.applied_offset = 0
        self.fatal: StemmaError | None = None  # a refusal retrying cannot fix
        self.last_error: Exception | None = None
        self._retry_at = 0.0
        self._backoff = 0.5
        self._last_fsync = time.monotonic()
        self._last_contact = time.monotonic()
        self.frames_written = 0
        self._barriers: list[threading.Event] = []
        self._lock = threading.Lock()  # guards _pending, _pending_bytes, _spilled, _barriers
        self._has_work = threading.Event()
        self._spool_closed = False
        self._applier = threading.Thread(
            target=self._apply_loop, daemon=True, name=f"stemma-applier-{ref.run_id}"
        )

    # ------------------------------------------------------------ main-thread side
    def put(self, item: Any) -> None:
        """Queue a row tuple or an event dict (thread-safe, never blocks)."""
        self.queue.append(item)

    def wait_stored(self, timeout: float = 120.0) -> None:
        """Block until everything queued so far is in the store (artifact calls need
        the run row to exist). Raises StoreError when the store cannot be reached."""
        from stemma.errors import StoreError

        if not self._online:
            return
        done = threading.Event()
        self.queue.append({"t": "_barrier", "event": done})
        self._wake.set()
        if not done.wait(timeout) or self.fatal is not None or self.last_error is not None:
            reason = self.fatal or self.last_error or "timed out"
            raise StoreError(
                f"the store has not accepted run {self.ref.path} yet ({reason}); "
                "its data is kept in the spool",
                path=self.ref.path,
            )

    def stop(self, timeout: float | None = None) -> None:
        """Write everything queued, apply what can be applied, close the spool."""
        self._stopping = True
        self._wake.set()
        self.join(timeout)

    @property
    def all_applied(self) -> bool:
        return self.applied_offset >= self.spool.offset

    # ------------------------------------------------------------ spool thread
    def run(self) -> None:
        if self._online:
            self._applier.start()
        try:
            while True:
                self._wake.wait(FLUSH_INTERVAL)
                self._wake.clear()
                stopping = self._stopping
                self._write_queued()
                now = time.monotonic()
                if now - self._last_fsync >= FSYNC_INTERVAL:
                    self.spool.fsync()
                    self._last_fsync = now
                if stopping and not self.queue:
                    break
        except Exception as exc:  # never die silently: the spool keeps the data
            self.last_error = exc
            log.exception("stemma writer for %s stopped: %s", self.ref.path, exc)
            with contextlib.suppress(Exception):
                self._write_queued()
        finally:
            self.spool.close()
            self._spool_closed = True
            self._has_work.set()
            if self._applier.is_alive():
                self._applier.join()
            with self._lock:
                for ev in self._barriers:  # nobody may wait forever on a stopped writer
                    ev.set()
                self._barriers.clear()

    # ------------------------------------------------------------ applier thread
    def _apply_loop(self) -> None:
        # Open the store (imports, migrations) while the user's code runs, not at
        # finish. A failure here is retried like any other on the first apply.
        with contextlib.suppress(Exception):
            self._backend_or_none()
        while True:
            self._has_work.wait(FLUSH_INTERVAL)
            self._has_work.clear()
            final = self._spool_closed  # everything is in the spool: apply it all now
            try:
                self._apply_pending(final=final)
            except Exception as exc:  # keep going: the spool keeps the data
                self._schedule_retry(exc)
            self._release_barriers()
            if final:
                return
            self._maybe_heartbeat(time.monotonic())

    def _release_barriers(self) -> None:
        failed = self.fatal is not None or self.last_error is not None
        with self._lock:
            if self._barriers and (self.all_applied or failed):
                for ev in self._barriers:
                    ev.set()
                self._barriers.clear()

    def _drain(self) -> list[Any]:
        q = self.queue
        return [q.popleft() for _ in range(len(q))]

    def _write_queued(self) -> None:
        items = self._drain()
        if not items:
            return
        barriers = [i for i in items if type(i) is dict and i["t"] == "_barrier"]
        if barriers:
            items = [i for i in items if not (type(i) is dict and i["t"] == "_barrier")]
        events: list[dict[str, Any]] = []
        rows: list[Row] = []
        sysrows: list[Row] = []
        for item in items:
            if type(item) is tuple:
                rows.append(item)
                continue
            if item["t"] == "sysrow":
                sysrows.append(item["row"])
                continue
            if "git_cwd" in item:  # asked for in init, computed here: git is slow
                item = {"t": "meta", "data": capture.git_metadata(item["git_cwd"])}
            if rows:
                events.extend(_history_events(rows, "default"))
                rows = []
            events.append(item)
        if rows:
            events.extend(_history_events(rows, "default"))
        if sysrows:
            events.extend(_history_events(sysrows, "system"))
        # One frame per bounded group of events, so no frame grows without limit.
        frame: list[dict[str, Any]] = []
        for ev in events:
            if ev["t"] in ("artifact", "use") and frame:
                self._append_frame(frame)  # sync replays these alone, after what came before
                frame = []
            frame.append(ev)
            if ev["t"] in ("history", "artifact", "use") or len(frame) >= 64:
                self._append_frame(frame)
                frame = []
        if frame:
            self._append_frame(frame)
        if barriers:  # only after the frames queued before them are pending
            with self._lock:
                self._barriers.extend(b["event"] for b in barriers)
        self._has_work.set()

    def _append_frame(self, events: list[dict[str, Any]]) -> None:
        start, end = self.spool.append(events)
        self.frames_written += 1
        if not self._online:
            return
        with self._lock:
            if self._spilled or self._pending_bytes > MAX_PENDING_BYTES:
                self._spilled = True
                self._pending.clear()
                self._pending_bytes = 0
                return
            self._pending.append((start, end, events))
            self._pending_bytes += end - start

    def _pending_frames(self) -> list[tuple[int, int, list[dict[str, Any]]]]:
        with self._lock:
            if not self._spilled:
                return list(self._pending)
        # More than MAX_PENDING_BYTES waited: re-read what the spool has (flushed to the OS
        # with every frame, so a reader sees it).
        return list(SpoolReader(self.spool.path).frames(self.applied_offset))

    def _backend_or_none(self) -> Any:
        if self._backend is None:
            from stemma.backend import get_backend

            self._backend = get_backend(self.settings)
        return self._backend

    def _apply_pending(self, final: bool) -> None:
        """Apply pending frames. Normally one short attempt per wake-up (the loop comes
        back); at finish, keep trying until ``STEMMA_FINISH_TIMEOUT`` has passed."""
        if not self._online or self.fatal is not None:
            return
        with self._lock:
            if not self._pending and not self._spilled:
                return
        if time.monotonic() < self._retry_at and not final:
            return
        deadline = time.monotonic() + (self.settings.finish_timeout if final else 0.0)
        while True:
            budget = max(1.0, deadline - time.monotonic()) if final else 2.0
            try:
                backend = self._backend_or_none()
                with backend.retry_budget(budget):
                    for start, end, events in self._pending_frames():
                        if start < self.applied_offset:
                            continue
                        mediastore.apply_frame(  # media bytes first, then the frame
                            backend,
                            self.ref,
                            self.spool.spool_id,
                            start,
                            end,
                            events,
                            self.spool.path.parent,
                        )
                        self.applied_offset = end
                        self._last_contact = time.monotonic()
                self._forget_applied()
                self._backoff = 0.5
                self.last_error = None
                return
            except StemmaError as exc:
                if exc.code != "store_error":  # refused for a reason a retry will not change
                    self.fatal = exc
                    self._report(f"the store refused this run's data: {exc.message}")
                    return
                self._schedule_retry(exc)
            except Exception as exc:  # unreachable store, locked database, network...
                self._schedule_retry(exc)
            self._forget_applied()
            if not final or time.monotonic() >= deadline:
                return
            time.sleep(min(self._backoff, 2.0, max(0.0, deadline - time.monotonic())))

    def _forget_applied(self) -> None:
        """Drop frames the store has; leave spilled mode once everything is applied."""
        with self._lock:
            self._pending = [f for f in self._pending if f[0] >= self.applied_offset]
            self._pending_bytes = sum(e - s for s, e, _ in self._pending)
            if self._spilled and self.applied_offset >= self.spool.offset:
                self._spilled = False

    def _schedule_retry(self, exc: Exception) -> None:
        if self.last_error is None:
            log.warning(
                "stemma: cannot reach the store for %s (%s); data is kept in %s and retried",
                self.ref.path,
                exc,
                self.spool.path,
            )
        self.last_error = exc
        self._retry_at = time.monotonic() + self._backoff * (0.5 + random.random())
        self._backoff = min(self._backoff * 2, 30.0)

    def _maybe_heartbeat(self, now: float) -> None:
        if (
            not self._online
            or self.fatal is not None
            or self._stopping
            or now - self._last_contact < self.settings.heartbeat_interval
        ):
            return
        if self.applied_offset == 0:
            return  # the run's first frame has not reached the store yet
        try:
            backend = self._backend_or_none()
            with backend.retry_budget(2.0):
                backend.heartbeat(self.ref)
            self._last_contact = now
        except Exception as exc:
            self._schedule_retry(exc)

    def _report(self, message: str) -> None:
        print(f"stemma: {self.ref.path}: {message}", file=sys.stderr)


def _history_events(rows: list[Row], stream: str) -> list[dict[str, Any]]:
    out = []
    for i in range(0, len(rows), MAX_ROWS_PER_EVENT):
        batch = encode_rows(rows[i : i + MAX_ROWS_PER_EVENT])
        batch["t"] = "history"
        if stream != "default":
            batch["stream"] = stream
        out.append(batch)
    return out

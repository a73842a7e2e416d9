"""Uploading spools to a store: ``stemma sync``, and recovery before a resume.

Frames are applied from the offset the store already holds for each spool, so a sync
that is interrupted and run again applies every frame exactly once.
"""

from __future__ import annotations

import dataclasses
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

from stemma.backend.base import Backend
from stemma.sdk import mediastore
from stemma.sdk.spool import SUFFIX, SpoolReader, spool_files


@dataclasses.dataclass(slots=True)
class SyncResult:
    path: Path
    run_path: str
    frames: int
    bytes: int
    complete: bool  # every whole frame is now in the store
    removed: bool


def _owner_alive(header: dict) -> bool:
    """Whether the process that wrote the spool may still be appending to it."""
    pid, host = header.get("pid"), header.get("host")
    if pid is None or host is None:
        return False
    if host != socket.gethostname():
        return True  # cannot tell from here: keep the file
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sync_spool(
    backend: Backend,
    path: Path,
    *,
    remove: bool = True,
    progress: Callable[[int], None] | None = None,
) -> SyncResult:
    """Apply every frame of one spool not yet in the store; remove it when done."""
    reader = SpoolReader(path)
    done = backend.committed_offset(reader.ref, reader.spool_id)
    frames = nbytes = 0
    for start, end, events in reader.frames(done):
        if any(ev["t"] in ("artifact", "use") for ev in events):
            replay_offline(backend, reader.ref, events)  # before the frame is marked done
        mediastore.apply_frame(
            backend, reader.ref, reader.spool_id, start, end, events, path.parent
        )
        frames += 1
        nbytes += end - start
        if progress is not None:
            progress(end - start)
    removed = False
    if remove and not _owner_alive(reader.header):
        path.unlink(missing_ok=True)
        mediastore.discard_if_done(path.parent)
        removed = True
    return SyncResult(path, reader.ref.path, frames, nbytes, True, removed)


def replay_offline(backend: Backend, ref: Any, events: list[dict[str, Any]]) -> None:
    from stemma.sdk.offline import pending_store, replay

    pending_dirs = {ev["pending"] for ev in events if ev["t"] == "artifact"}
    pending = pending_store(Path(next(iter(pending_dirs)))) if pending_dirs else None
    replay(backend, ref, events, pending)


def find_spools(root: Path) -> list[Path]:
    return spool_files(root)


def run_spools(run_dir: Path) -> list[Path]:
    return sorted(run_dir.glob(f"*{SUFFIX}")) if run_dir.is_dir() else []

"""Media bytes between ``run.log`` and the store: kept beside the spool, sent first.

``run.log({"img": stemma.Image(...)})`` writes the encoded bytes into a content-addressed
directory next to the run's spool (``<run dir>/media``, like the pending store of
offline artifacts, never evicted) and queues a ``blobs`` event naming their digests
*before* the row that references them. That is all the training thread waits for.

Whoever applies a frame (the writer thread online, ``stemma sync`` later) goes through
:func:`apply_frame`: it uploads the frame's ``blobs`` first, then applies it. The store
refuses a frame that references a blob it lacks (:mod:`stemma.service.media`), listing
the digests, so a blob gc took between upload and frame (or one logged in an earlier
frame) is uploaded again and the frame resent; a reference the store accepted always
has its bytes. The directory goes when the last spool of the run is uploaded.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from stemma.errors import Conflict, NotFound
from stemma.sdk.cache import BlobCache
from stemma.sdk.spool import SUFFIX
from stemma.wire.records import ApplyResult, RunRef

# A frame can be refused for missing blobs this many times before it is given up: each
# refusal uploads what it named, so only a gc running with --grace 0 in a loop gets here.
MAX_UPLOAD_ROUNDS = 3


def media_dir(run_dir: Path) -> Path:
    """Where a run's media bytes wait for upload (beside its spools)."""
    return Path(run_dir) / "media"


def open_store(run_dir: Path) -> BlobCache:
    """The run's pending media store, created when first needed; never evicted."""
    return BlobCache(media_dir(run_dir), max_bytes=sys.maxsize)


def blobs_event(digests: Iterable[str]) -> dict[str, Any]:
    return {"t": "blobs", "digests": list(digests)}


def _pending_path(run_dir: Path, digest: str) -> Path:
    return media_dir(run_dir) / "blobs" / digest[:2] / digest[2:]


def upload(backend: Any, ref: RunRef, run_dir: Path, digests: Iterable[str], strict: bool) -> None:
    """Make the store hold these media blobs from the run's pending store.

    Those absent locally may be stored already (uploaded by an earlier attempt whose
    directory is gone): skipped, unless ``strict`` (the store has just said it lacks
    them), where their loss is raised, never passed over.
    """
    files: list[tuple[Any, str | None]] = []
    absent: list[str] = []
    for d in dict.fromkeys(digests):
        path = _pending_path(run_dir, d)
        if path.is_file():
            files.append((path, d))
        else:
            absent.append(d)
    if strict and absent:
        raise NotFound(
            f"{len(absent)} media blob(s) logged to run {ref.path} are neither in the store "
            f"nor in {media_dir(run_dir)} (e.g. {absent[0]}); the frames referencing them "
            "stay in the spool",
            missing=absent[:100],
        )
    if files:
        backend.store_files(files)


def apply_frame(
    backend: Any,
    ref: RunRef,
    spool_id: str,
    start: int,
    end: int,
    events: list[dict[str, Any]],
    run_dir: Path,
) -> ApplyResult:
    """``backend.apply`` for a spool frame, its media bytes uploaded first."""
    wanted = [d for ev in events if ev["t"] == "blobs" for d in ev["digests"]]
    if wanted:
        upload(backend, ref, run_dir, wanted, strict=False)
    for attempt in range(MAX_UPLOAD_ROUNDS):
        try:
            result: ApplyResult = backend.apply(ref, spool_id, start, end, events)
            return result
        except Conflict as exc:
            missing = exc.context.get("missing")
            if not missing or attempt == MAX_UPLOAD_ROUNDS - 1:
                raise
            upload(backend, ref, run_dir, missing, strict=True)
    raise AssertionError("unreachable")


def discard_if_done(run_dir: Path) -> None:
    """Remove the run's pending media once no spool of the run is left to upload."""
    d = media_dir(run_dir)
    if d.is_dir() and not any(Path(run_dir).glob(f"*{SUFFIX}")):
        shutil.rmtree(d, ignore_errors=True)

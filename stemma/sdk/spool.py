"""The spool: a run's append-only log of events, on local disk, before any store.

Layout: a header line ``STEMMA-SPOOL 1\\n``, a length-prefixed msgpack header naming the
run (entity, project, run id, spool id), then frames. A frame is
``<u32 length><u32 crc32><msgpack list of events>``; its byte range ``[start, end)``,
counted from the first frame (so a spool's first frame always starts at 0), is its
identity, which the store records so each frame is applied exactly once.

A process killed mid-write leaves at most a torn last frame: readers stop at it (each
process writes a spool of its own, so nothing is ever appended after it). A bad
checksum *before* the end is corruption and raises :class:`SpoolError` rather than skipping data.
"""

from __future__ import annotations

import os
import socket
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import msgpack

from stemma.errors import SpoolError
from stemma.wire.records import RunRef

MAGIC = b"STEMMA-SPOOL 1\n"
_FRAME = struct.Struct("<II")
_HDR_LEN = struct.Struct("<I")
SUFFIX = ".stspool"


def _pack(obj: Any) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)


def read_header(fh: IO[bytes], path: Path) -> tuple[dict[str, Any], int]:
    """(header dict, offset of the first frame)."""
    magic = fh.read(len(MAGIC))
    if magic != MAGIC:
        raise SpoolError(f"{path} is not a Stemma spool (bad magic)", path=str(path))
    raw_len = fh.read(_HDR_LEN.size)
    if len(raw_len) < _HDR_LEN.size:
        raise SpoolError(f"{path}: truncated header", path=str(path))
    (n,) = _HDR_LEN.unpack(raw_len)
    body = fh.read(n)
    if len(body) < n:
        raise SpoolError(f"{path}: truncated header", path=str(path))
    header = msgpack.unpackb(body, raw=False)
    return header, len(MAGIC) + _HDR_LEN.size + n


class SpoolWriter:
    """Appends frames to one spool file. Used by a single writer thread."""

    def __init__(self, path: Path, ref: RunRef, spool_id: str, created_at: float) -> None:
        self.path = path
        self.spool_id = spool_id
        path.parent.mkdir(parents=True, exist_ok=True)
        header = {
            "entity": ref.entity,
            "project": ref.project,
            "run_id": ref.run_id,
            "spool_id": spool_id,
            "created_at": created_at,
            "pid": os.getpid(),
            "host": socket.gethostname(),
        }
        body = _pack(header)
        self._fh = open(path, "xb")  # noqa: SIM115 - kept open for the run's life
        self._fh.write(MAGIC + _HDR_LEN.pack(len(body)) + body)
        self._fh.flush()
        self.data_start = self._fh.tell()
        self.offset = 0  # bytes of frames written, i.e. the next frame's start

    def append(self, events: list[dict[str, Any]]) -> tuple[int, int]:
        """Write one frame (to the OS, not yet fsync'd); returns its byte range."""
        payload = _pack(events)
        start = self.offset
        self._fh.write(_FRAME.pack(len(payload), zlib.crc32(payload)) + payload)
        self._fh.flush()
        self.offset = start + _FRAME.size + len(payload)
        return start, self.offset

    def fsync(self) -> None:
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()


class SpoolReader:
    """Reads a spool's header and frames (for sync and recovery)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        with open(self.path, "rb") as fh:
            self.header, self.data_start = read_header(fh, self.path)
        self.ref = RunRef(self.header["entity"], self.header["project"], self.header["run_id"])
        self.spool_id: str = self.header["spool_id"]
        self.torn_tail = False

    def frames(self, offset: int = 0) -> Iterator[tuple[int, int, list[dict[str, Any]]]]:
        """Yield ``(start, end, events)`` for every whole frame at or after ``offset``
        (offsets counted from the first frame)."""
        size = os.path.getsize(self.path)
        base = self.data_start
        pos = base + max(offset, 0)
        with open(self.path, "rb") as fh:
            fh.seek(pos)
            while pos < size:
                head = fh.read(_FRAME.size)
                if len(head) < _FRAME.size:
                    self.torn_tail = True
                    return
                n, crc = _FRAME.unpack(head)
                payload = fh.read(n)
                end = pos + _FRAME.size + n
                if len(payload) < n:
                    self.torn_tail = True
                    return
                if zlib.crc32(payload) != crc:
                    if end >= size:  # a torn final write whose length landed first
                        self.torn_tail = True
                        return
                    raise SpoolError(
                        f"{self.path}: frame at offset {pos - base} is corrupt (checksum mismatch)",
                        path=str(self.path),
                        offset=pos - base,
                    )
                yield pos - base, end - base, msgpack.unpackb(payload, raw=False)
                pos = end


def spool_files(root: Path) -> list[Path]:
    """Every spool under ``root`` (a run directory, a runs tree, or one file)."""
    root = Path(root)
    if root.is_file():
        return [root]
    return sorted(root.rglob(f"*{SUFFIX}"))

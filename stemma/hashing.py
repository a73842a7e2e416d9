"""SHA-256 of files, shared by the client (manifests, verify) and the blob store."""

from __future__ import annotations

import hashlib
import os

CHUNK = 8 << 20


def hash_fd(fd: int, size: int) -> str:
    """SHA-256 of the first ``size`` bytes of ``fd`` (positional reads, GIL released)."""
    h = hashlib.sha256()
    offset = 0
    while offset < size:
        buf = os.pread(fd, min(CHUNK, size - offset), offset)
        if not buf:
            break
        h.update(buf)
        offset += len(buf)
    return h.hexdigest()


def hash_path(path: str | os.PathLike[str]) -> str:
    fd = os.open(path, os.O_RDONLY)
    try:
        return hash_fd(fd, os.fstat(fd).st_size)
    finally:
        os.close(fd)

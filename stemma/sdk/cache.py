"""The local download cache: content-addressed, bounded, least-recently-used eviction.

Holds bytes fetched from elsewhere (http(s) references now, a server's blobs later) at
``STEMMA_CACHE_DIR/blobs/ab/cdef…``. Every use touches the file's mtime; when the cache
grows past ``STEMMA_CACHE_MAX`` the least recently used files go first. Artifacts
whose bytes are all cached stay usable offline.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import sys
import uuid
from collections.abc import Iterable
from pathlib import Path

from stemma.errors import InvalidValueError, UsageError

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
DEFAULT_CAP = 50 << 30


def parse_size(text: str) -> int:
    """``"10GB"`` / ``"500MiB"`` / ``"1.5g"`` / ``"1048576"`` -> bytes (binary units)."""
    m = _SIZE.match(text or "")
    if not m:
        raise UsageError(
            f"cannot read size {text!r}: use e.g. 10GB, 500MB or a byte count", value=text
        )
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


def default_max_bytes(root: Path) -> int:
    """10% of the cache's disk, at most 50 GB."""
    probe = root
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    total = shutil.disk_usage(probe).total
    return min(DEFAULT_CAP, total // 10)


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "stemma"


class BlobCache:
    """Content-addressed files under ``root/blobs``; safe for concurrent processes."""

    def __init__(self, root: Path, max_bytes: int | None = None) -> None:
        self.root = Path(root)
        self.blobs = self.root / "blobs"
        self.tmp = self.root / "tmp"
        self.blobs.mkdir(parents=True, exist_ok=True)
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes if max_bytes is not None else default_max_bytes(self.root)

    def path(self, digest: str) -> Path:
        return self.blobs / digest[:2] / digest[2:]

    def has(self, digest: str) -> bool:
        p = self.path(digest)
        try:
            os.utime(p)  # a use: the least recently used files are evicted first
        except FileNotFoundError:
            return False
        return True

    def put_chunks(self, chunks: Iterable[bytes], expected: str | None = None) -> tuple[str, int]:
        """Store a stream, verifying ``expected`` when given; returns (digest, size)."""
        h = hashlib.sha256()
        tmp = self.tmp / f"{uuid.uuid4().hex}.part"
        size = 0
        try:
            with open(tmp, "wb") as fh:
                for chunk in chunks:
                    h.update(chunk)
                    fh.write(chunk)
                    size += len(chunk)
            digest = h.hexdigest()
            if expected is not None and digest != expected:
                raise InvalidValueError(
                    f"downloaded bytes have SHA-256 {digest}, expected {expected}: the source "
                    "changed since the artifact was logged",
                    expected=expected,
                    got=digest,
                )
            dest = self.path(digest)
            dest.parent.mkdir(exist_ok=True)
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)
        self.evict()
        return digest, size

    def put_file(self, src: Path) -> tuple[str, int]:
        def read() -> Iterable[bytes]:
            with open(src, "rb") as fh:
                while chunk := fh.read(8 << 20):
                    yield chunk

        return self.put_chunks(read())

    def copy_out(self, digest: str, dest: Path) -> None:
        src = self.path(digest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:8]}.part")
        try:
            shutil.copyfile(src, tmp)
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)
        with contextlib.suppress(FileNotFoundError):
            os.utime(src)

    def entries(self) -> list[tuple[float, int, Path]]:
        out = []
        for sub in self.blobs.iterdir():
            for f in sub.iterdir():
                with contextlib.suppress(FileNotFoundError):
                    st = f.stat()
                    out.append((st.st_mtime, st.st_size, f))
        return out

    def usage(self) -> int:
        return sum(size for _, size, _ in self.entries())

    def evict(self, max_bytes: int | None = None) -> tuple[int, int]:
        """Delete least recently used files until under ``max_bytes``; (files, bytes)."""
        limit = self.max_bytes if max_bytes is None else max_bytes
        if limit >= sys.maxsize:  # a pending store: never evicted, so never listed
            return 0, 0
        entries = self.entries()
        total = sum(size for _, size, _ in entries)
        if total <= limit:
            return 0, 0
        removed = freed = 0
        for _mtime, size, path in sorted(entries):
            if total <= limit:
                break
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                total -= size
                removed += 1
                freed += size
        return removed, freed


def open_cache(cache_dir: Path | None) -> BlobCache:
    root = cache_dir or default_cache_dir()
    raw = os.environ.get("STEMMA_CACHE_MAX")
    return BlobCache(root, parse_size(raw) if raw else None)

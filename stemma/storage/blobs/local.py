"""A content-addressed blob store in a local directory.

Objects live at ``ab/cdef…`` (the SHA-256 hex split after two characters), are written
to a temporary name in the same filesystem and renamed into place (so a crash never
leaves a partial blob under a real name), and are made read-only once written.

Large files are read once: the kernel copies them (``copy_file_range``, or a reflink
where the filesystem supports it) while a second thread hashes the same pages, both
outside the GIL, so storing a file costs about what ``cp`` costs.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from stemma.errors import InvalidValueError, NotFound
from stemma.hashing import CHUNK as _CHUNK
from stemma.hashing import hash_fd
from stemma.storage.blobs.base import BlobStore

_SMALL = 1 << 20  # below this, read into memory: one read, one hash, one write
_FICLONE = 0x40049409  # ioctl number of a reflink on Linux (btrfs, xfs, ...)


def _hex_ok(digest: str) -> bool:
    return len(digest) == 64 and all(c in "0123456789abcdef" for c in digest)


def _reflink(src_fd: int, dst_fd: int) -> bool:
    try:
        import fcntl

        fcntl.ioctl(dst_fd, _FICLONE, src_fd)
        return True
    except (OSError, ImportError):
        return False


def _kernel_copy(src_fd: int, dst_fd: int, size: int) -> None:
    """Copy ``size`` bytes without passing them through Python."""
    if _reflink(src_fd, dst_fd):
        return
    offset = 0
    try:
        while offset < size:
            n = os.copy_file_range(src_fd, dst_fd, size - offset, offset, offset)
            if n == 0:
                break
            offset += n
        if offset == size:
            return
    except OSError:
        pass
    # Fallback: plain reads and writes from wherever the kernel copy stopped.
    os.lseek(dst_fd, offset, os.SEEK_SET)
    while offset < size:
        buf = os.pread(src_fd, min(_CHUNK, size - offset), offset)
        if not buf:
            break
        os.write(dst_fd, buf)
        offset += len(buf)


def _changed(before: os.stat_result, after: os.stat_result) -> bool:
    return (before.st_size, before.st_mtime_ns, before.st_ino) != (
        after.st_size,
        after.st_mtime_ns,
        after.st_ino,
    )


class LocalBlobStore(BlobStore):
    """Blobs under ``root``; safe for several processes and threads at once."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._tmp = self.root / "tmp"
        self._tmp.mkdir(parents=True, exist_ok=True)
        self._made: set[str] = set()
        self._lock = threading.Lock()

    def path(self, digest: str) -> Path:
        if not _hex_ok(digest):
            raise InvalidValueError(f"not a SHA-256 hex digest: {digest!r}", digest=digest)
        return self.root / digest[:2] / digest[2:]

    def has(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def size(self, digest: str) -> int | None:
        try:
            return self.path(digest).stat().st_size
        except FileNotFoundError:
            return None

    def _temp(self) -> Path:
        self._tmp.mkdir(parents=True, exist_ok=True)  # cheap, and survives a cleaned store
        return self._tmp / f"{uuid.uuid4().hex}.part"

    def _place(self, tmp: Path, digest: str) -> None:
        dest = self.path(digest)
        prefix = digest[:2]
        if prefix not in self._made:
            dest.parent.mkdir(exist_ok=True)
            with self._lock:
                self._made.add(prefix)
        os.chmod(tmp, 0o444)
        if dest.exists():  # stored meanwhile by someone else: same bytes by definition
            tmp.unlink(missing_ok=True)
            return
        try:
            os.replace(tmp, dest)
        except FileNotFoundError:  # the prefix directory was removed since we made it
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, dest)

    def receive_path(self) -> Path:
        """A temporary path on the store's filesystem for bytes arriving over the network."""
        return self._temp()

    def place(self, tmp: Path, digest: str) -> None:
        """Move verified bytes at ``tmp`` under their digest (atomic; read-only after)."""
        self._place(Path(tmp), digest)

    def put_bytes(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        if not self.has(digest):
            tmp = self._temp()
            with open(tmp, "wb") as fh:
                fh.write(data)
            self._place(tmp, digest)
        return digest

    def put_file(
        self, src: str | os.PathLike[str], known_digest: str | None = None
    ) -> tuple[str, int]:
        if known_digest is not None:
            size = self.size(known_digest)
            if size is not None:
                return known_digest, size
        fd = os.open(src, os.O_RDONLY)
        try:
            before = os.fstat(fd)
            size = before.st_size
            if size <= _SMALL:
                data = os.pread(fd, size + 1, 0)
                if len(data) != size or _changed(before, os.stat(src)):
                    raise InvalidValueError(f"{src} changed while it was being read", path=str(src))
                return self.put_bytes(data), size
            return self._put_large(fd, src, before), size
        finally:
            os.close(fd)

    def _put_large(self, fd: int, src: str | os.PathLike[str], before: os.stat_result) -> str:
        size = before.st_size
        tmp = self._temp()
        out = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        error: list[BaseException] = []

        def copy() -> None:
            try:
                _kernel_copy(fd, out, size)
            except BaseException as exc:  # reported below, on the calling thread
                error.append(exc)

        copier = threading.Thread(target=copy, name="stemma-blob-copy")
        copier.start()
        try:
            digest = hash_fd(fd, size)
        finally:
            copier.join()
            os.close(out)
        try:
            if error:
                raise error[0]
            if _changed(before, os.stat(src)) or tmp.stat().st_size != size:
                raise InvalidValueError(
                    f"{src} changed while it was being read; nothing was stored", path=str(src)
                )
            self._place(tmp, digest)
        finally:
            tmp.unlink(missing_ok=True)
        return digest

    def open(self, digest: str) -> BinaryIO:
        try:
            return open(self.path(digest), "rb")
        except FileNotFoundError:
            raise NotFound(f"blob {digest} is not in the store", digest=digest) from None

    def read_range(self, digest: str, offset: int, length: int) -> bytes:
        try:
            fd = os.open(self.path(digest), os.O_RDONLY)
        except FileNotFoundError:
            raise NotFound(f"blob {digest} is not in the store", digest=digest) from None
        try:
            parts = []
            while length > 0:
                buf = os.pread(fd, length, offset)
                if not buf:
                    break
                parts.append(buf)
                offset += len(buf)
                length -= len(buf)
            return b"".join(parts)
        finally:
            os.close(fd)

    def copy_to(self, digest: str, dest: Path) -> None:
        src = self.path(digest)
        if not src.is_file():
            raise NotFound(f"blob {digest} is not in the store", digest=digest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:8]}.part")
        try:
            sfd = os.open(src, os.O_RDONLY)
            try:
                dfd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                try:
                    _kernel_copy(sfd, dfd, os.fstat(sfd).st_size)
                finally:
                    os.close(dfd)
            finally:
                os.close(sfd)
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)

    def delete(self, digest: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path(digest).unlink()

    def digests(self) -> Iterator[str]:
        for sub in sorted(self.root.iterdir()):
            if len(sub.name) != 2 or not sub.is_dir():
                continue
            for f in sub.iterdir():
                digest = sub.name + f.name
                if _hex_ok(digest):
                    yield digest

    def verify(self, digest: str) -> bool:
        try:
            fd = os.open(self.path(digest), os.O_RDONLY)
        except FileNotFoundError:
            return False
        try:
            return hash_fd(fd, os.fstat(fd).st_size) == digest
        finally:
            os.close(fd)

    def clear_temp(self, older_than: float = 3600.0) -> int:
        """Remove temporary files of interrupted writes; returns how many."""
        import time

        cutoff = time.time() - older_than
        removed = 0
        for f in self._tmp.glob("*.part"):
            with contextlib.suppress(FileNotFoundError):
                if f.stat().st_mtime < cutoff:
                    f.unlink()
                    removed += 1
        return removed

    def orphans(self, known: set[str], older_than: float) -> Iterator[tuple[str, int]]:
        """(digest, size) of stored files not in ``known`` and older than ``older_than`` s."""
        import time

        cutoff = time.time() - older_than
        for digest in self.digests():
            if digest in known:
                continue
            with contextlib.suppress(FileNotFoundError):
                st = self.path(digest).stat()
                if st.st_mtime <= cutoff:
                    yield digest, st.st_size

    def physical_bytes(self) -> int:
        """Bytes of stored blobs (what the store costs on disk, before block rounding)."""
        total = 0
        for digest in self.digests():
            with contextlib.suppress(FileNotFoundError):
                total += self.path(digest).stat().st_size
        return total

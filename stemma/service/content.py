"""File contents by SHA-256, whether stored whole or as chunks.

:class:`ContentStore` wraps the raw blob store (local directory or S3): every blob call
passes through unchanged, and reads of a file stored as chunks (``open``, ``copy_to``,
``verify``) reassemble it from ranged reads of its packs, checking each chunk's SHA-256
and then the file's. So every reader that names a file by its digest (downloads, the
UI's file views, diffs, the blob routes) works the same for both kinds.

The write side stores a large file as chunks: cut it (FastCDC), ask the database which
chunks are missing, write only those into new packs, record the packs, the chunks and
the file's recipe in one transaction that shares gc's lock.
"""

from __future__ import annotations

import hashlib
import io
import os
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, BinaryIO, cast

from sqlalchemy import Engine

from stemma.errors import NotFound, StoreError
from stemma.service import blobs as blob_service
from stemma.service import chunks as chunk_service
from stemma.storage.chunking import (
    ChunkParams,
    CorruptChunk,
    PackedChunk,
    chunks_to_store,
    open_chunked,
    reassemble,
    verify_pack,
    write_packs,
)
from stemma.storage.database import read_tx, write_tx


class _IterReader(io.RawIOBase):
    """A file-like view of an iterator of byte strings (for ``open`` of a chunked file)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buf = b""

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        while not self._buf:
            try:
                self._buf = next(self._chunks)
            except StopIteration:
                return 0
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n


class ContentStore:
    """The raw blob store plus chunked files (see the module docstring)."""

    def __init__(self, raw: Any, engine: Engine, params: ChunkParams | None = None) -> None:
        self.raw = raw
        self.engine = engine
        self._params = params
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:  # presign_put, receive_path, path, ...
        if name == "raw":  # not set yet (a half-built instance): no recursion
            raise AttributeError(name)
        return getattr(self.raw, name)

    def __repr__(self) -> str:
        return f"ContentStore({self.raw!r})"

    @property
    def params(self) -> ChunkParams:
        """The STEMMA_CHUNK* settings, read when first needed: a bad value is an error of
        the artifact being stored, not of opening the store (runs keep logging)."""
        if self._params is None:
            self._params = ChunkParams.from_env()
        return self._params

    @property
    def pool(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                workers = max(4, 2 * (os.cpu_count() or 2))
                self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="chunks")
            return self._pool

    # ------------------------------------------------------------------ reading
    def recipe(self, digest: str) -> chunk_service.Recipe | None:
        with read_tx(self.engine) as conn:
            return chunk_service.recipe(conn, digest)

    def _verified_chunks(self, recipe: chunk_service.Recipe) -> Iterator[bytes]:
        """The chunks' bytes in order, each checked against its SHA-256. A pack that gc
        repacked meanwhile is looked up again, once."""
        done = 0  # chunks already yielded
        for attempt in range(2):
            with read_tx(self.engine) as conn:
                where = chunk_service.locate(conn, [d for d, _ in recipe[done:]])
            try:
                for data in reassemble(recipe[done:], where, self.raw.read_range, self.pool):
                    done += 1
                    yield data
                return
            except NotFound:
                if attempt:
                    raise

    def iter_chunked(self, digest: str, recipe: chunk_service.Recipe) -> Iterator[bytes]:
        """The file's bytes, chunk by chunk, each verified; the end checks the whole
        file's SHA-256 (CorruptChunk when anything does not match)."""
        h = hashlib.sha256()
        for data in self._verified_chunks(recipe):
            h.update(data)
            yield data
        if h.hexdigest() != digest:
            raise CorruptChunk(
                f"file {digest} reassembled from its chunks has SHA-256 {h.hexdigest()}",
                digest=digest,
            )

    def has(self, digest: str) -> bool:
        return self.raw.has(digest) or self.recipe(digest) is not None

    def size(self, digest: str) -> int | None:
        found = self.raw.size(digest)
        if found is not None:
            return int(found)
        recipe = self.recipe(digest)
        return None if recipe is None else sum(n for _, n in recipe)

    def open(self, digest: str) -> BinaryIO:
        recipe = self.recipe(digest)
        if recipe is None:
            return cast(BinaryIO, self.raw.open(digest))
        reader = _IterReader(self.iter_chunked(digest, recipe))
        return cast(BinaryIO, io.BufferedReader(reader, 1 << 20))

    def copy_to(self, digest: str, dest: Path) -> None:
        recipe = self.recipe(digest)
        if recipe is None:
            self.raw.copy_to(digest, dest)
            return
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:8]}.part")
        try:
            with open(tmp, "wb") as fh:
                for data in self.iter_chunked(digest, recipe):
                    fh.write(data)
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)

    def verify(self, digest: str) -> bool:
        return self.check(digest) is None

    def check(self, digest: str) -> str | None:
        """None when the file's bytes are intact, else what is wrong with them."""
        recipe = self.recipe(digest)
        if recipe is None:
            return None if self.raw.verify(digest) else "missing or corrupt"
        try:
            for _ in self.iter_chunked(digest, recipe):
                pass
        except (StoreError, NotFound) as exc:
            return str(exc)
        return None

    # ------------------------------------------------------------------ writing
    def wants_chunks(self, size: int) -> bool:
        return self.params.wants(size)

    def store_chunked(self, path: str | os.PathLike[str], progress: Any = None) -> tuple[str, int]:
        """Store a large file as chunks, writing only the chunks the store lacks.

        Pipelined: while the file is cut and hashed, each run of hashed chunks (four
        packs' worth, 32 MiB by default) is checked against the database and its missing
        chunks are packed and written, so hashing and writing overlap. Everything is
        recorded in one transaction at the end (packs, chunks, the file's recipe); if gc
        took a chunk away meanwhile, that chunk is stored again. ``progress(n)`` hears of
        each run's bytes as it is done.
        """
        with open_chunked(path, self.params, self.pool) as cf:
            seen: set[str] = set()
            writes: list[Any] = []
            for lo, hi in cf.runs(4 * self.params.pack_size):
                with read_tx(self.engine) as conn:
                    missing = chunk_service.missing_chunks(
                        conn, [cf.chunks[i][0] for i in range(lo, hi)]
                    )
                todo = chunks_to_store(cf, lo, hi, missing, seen)
                writes += write_packs(cf, todo, self.params, self.pool, self._put_pack)
                if progress is not None:
                    progress(sum(cf.chunks[i][2] for i in range(lo, hi)))
            cf.finish()
            packs = [w.result() for w in writes]
            with read_tx(self.engine) as conn:
                if blob_service.present_blobs(conn, [cf.digest]):
                    return cf.digest, cf.size  # stored whole before: keep that copy
            for _attempt in range(3):
                with write_tx(self.engine) as conn:
                    blob_service.share_with_gc(conn)
                    vanished = set(
                        blob_service.register_blobs(conn, self.raw, [(p, n) for p, n, _ in packs])
                    )
                    for pack, _n, index in packs:
                        if pack not in vanished:
                            chunk_service.register_chunks(conn, pack, index)
                    lacking = chunk_service.register_file(conn, cf.digest, cf.size, cf.recipe())
                if not lacking:
                    return cf.digest, cf.size
                # gc condemned chunks between our check and now: store them again
                again = set(lacking)
                todo = chunks_to_store(cf, 0, len(cf.chunks), again, set())
                packs = [
                    w.result()
                    for w in write_packs(cf, todo, self.params, self.pool, self._put_pack)
                ]
            raise StoreError(
                f"chunks of {path} keep vanishing while being stored (a gc running with "
                "--grace 0?); try again",
                path=str(path),
            )

    def _put_pack(
        self, body: bytes, index: list[PackedChunk]
    ) -> tuple[str, int, list[PackedChunk]]:
        return self.raw.put_bytes(body), len(body), index

    # ------------------------------------------------------------------ uploads (server)
    def register_uploaded_pack(self, pack: str) -> int:
        """Trust the chunks of a pack a client uploaded only after reading it back and
        checking every chunk against its SHA-256; returns how many chunks it holds."""
        size = self.raw.size(pack)
        if size is None:
            raise NotFound(f"pack {pack} was not uploaded", digest=pack)
        index = verify_pack(self.raw.read_range(pack, 0, size))
        with write_tx(self.engine) as conn:
            blob_service.share_with_gc(conn)
            vanished = blob_service.register_blobs(conn, self.raw, [(pack, size)])
            if vanished:
                raise NotFound(f"pack {pack} vanished before it was registered", digest=pack)
            chunk_service.register_chunks(conn, pack, index)
        return len(index)

    def register_uploaded_file(
        self, digest: str, size: int, recipe: chunk_service.Recipe
    ) -> list[str]:
        """Record a client's file as its chunks once its chunks, read back in order, hash
        to its SHA-256 (so no client can make a digest name other bytes). Returns the
        chunks the store lacks (then nothing is recorded)."""
        with read_tx(self.engine) as conn:
            if chunk_service.complete_files(conn, [digest]):
                return []
            lacking = chunk_service.missing_chunks(conn, [d for d, _ in recipe])
        if lacking:
            return sorted(lacking)
        chunk_service.check_total(digest, size, recipe)
        h = hashlib.sha256()
        for data in self._verified_chunks(recipe):
            h.update(data)
        if h.hexdigest() != digest:
            from stemma.errors import InvalidValueError

            raise InvalidValueError(
                f"the chunks given for {digest} hash to {h.hexdigest()}; nothing was recorded",
                digest=digest,
            )
        with write_tx(self.engine) as conn:
            blob_service.share_with_gc(conn)
            return chunk_service.register_file(conn, digest, size, recipe)

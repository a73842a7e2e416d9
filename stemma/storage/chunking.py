"""Content-defined chunking and packfiles: the byte-level half of chunk deduplication.

A large file is cut by FastCDC (pyfastcdc's compiled implementation) into chunks of about
``avg`` bytes whose boundaries depend on the content, not on offsets, so bytes inserted
near the start of a file move only the chunks around the insertion. Each chunk is named
by its SHA-256 and stored once, inside a *packfile*: a blob of a few MiB holding many
chunks, so an object store holds few objects and an upload is few requests.

Cutting and hashing run in threads over an ``mmap`` of the file: pyfastcdc cuts with the
GIL released, hashlib hashes buffers over 2 KiB with it released, so the whole-file
SHA-256, the cut and the chunk hashes share the cores.

Pack layout (self-describing, so a store can be re-indexed from its packs alone)::

    chunk bytes ... | msgpack index [[sha256 (32 B), offset, stored, size, codec], ...]
                    | index length (8 B, big-endian) | b"STMPACK1"

Codecs: 0 raw, 1 zstd. A file's chunks are compressed only when a sample of them shrinks
by a tenth or more (checkpoints of floats rarely do; CSV and JSON do), and a chunk is kept
compressed only when that saves at least 5% of it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import mmap
import os
import struct
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import msgpack

from stemma.errors import InvalidValueError, StoreError, UsageError

RAW, ZSTD = 0, 1
MAGIC = b"STMPACK1"
TRAILER = struct.Struct(">Q")
_HASH_SLICE = 16 << 20  # whole-file hash step: large enough that the GIL stays released
_BATCH = 64  # chunks hashed per thread-pool task


def _size(name: str, raw: str | None, default: int) -> int:
    """A byte size from the environment: 4194304, 4MiB, 64KiB, 8M ..."""
    if not raw:
        return default
    text = raw.strip().lower().removesuffix("b").removesuffix("i")
    scale = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}.get(text[-1:], 1)
    number = text[:-1] if scale != 1 else text
    try:
        value = int(float(number) * scale)
    except ValueError:
        raise UsageError(f"{name} must be a size in bytes (e.g. 4MiB), got {raw!r}") from None
    if value < 0:
        raise UsageError(f"{name} must not be negative, got {raw!r}")
    return value


@dataclasses.dataclass(frozen=True, slots=True)
class ChunkParams:
    """How large files are cut and packed (``STEMMA_CHUNK*`` settings).

    ``threshold``: files of at least this many bytes are chunked, smaller ones stay whole
    blobs (a chunk list costs more than it saves on small files). ``avg``: the target
    average chunk size; FastCDC cuts between avg/4 and 4*avg.
    """

    enabled: bool = True
    threshold: int = 4 << 20
    avg: int = 64 << 10
    pack_size: int = 8 << 20
    compression: bool = True

    @classmethod
    def from_env(cls) -> ChunkParams:
        env = os.environ
        mode = (env.get("STEMMA_CHUNKING") or "on").strip().lower()
        if mode not in ("on", "off", "1", "0", "true", "false", "yes", "no"):
            raise UsageError(f"STEMMA_CHUNKING must be on or off, got {mode!r}")
        compression = (env.get("STEMMA_CHUNK_COMPRESSION") or "auto").strip().lower()
        if compression not in ("auto", "zstd", "off", "none"):
            raise UsageError(f"STEMMA_CHUNK_COMPRESSION must be auto or off, got {compression!r}")
        params = cls(
            enabled=mode in ("on", "1", "true", "yes"),
            threshold=_size("STEMMA_CHUNK_THRESHOLD", env.get("STEMMA_CHUNK_THRESHOLD"), 4 << 20),
            avg=_size("STEMMA_CHUNK_SIZE", env.get("STEMMA_CHUNK_SIZE"), 64 << 10),
            pack_size=_size("STEMMA_PACK_SIZE", env.get("STEMMA_PACK_SIZE"), 8 << 20),
            compression=compression in ("auto", "zstd"),
        )
        if not 1 << 10 <= params.avg <= 4 << 20:
            raise UsageError("STEMMA_CHUNK_SIZE must be between 1KiB and 4MiB")
        return params

    def wants(self, size: int) -> bool:
        """Whether a file of ``size`` bytes is stored as chunks."""
        return self.enabled and size >= max(self.threshold, 1)


class ChunkedFile:
    """A mapped file being cut into chunks: (digest, offset, size) per chunk in order,
    filled as :meth:`runs` cuts and hashes; ``digest`` (the whole file's SHA-256) once
    :meth:`finish` returns. ``data(i)`` reads a chunk's bytes while the file is open."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        view: memoryview,
        before: os.stat_result,
        params: ChunkParams,
        pool: ThreadPoolExecutor,
    ) -> None:
        self.path = path
        self.view = view
        self.size = len(view)
        self.chunks: list[tuple[str, int, int]] = []
        self.digest = ""
        self._before = before
        self._params = params
        self._pool = pool
        self._whole: Future[str] = pool.submit(_hash_whole, view)
        self._cut = False

    def recipe(self) -> list[tuple[str, int]]:
        return [(d, n) for d, _, n in self.chunks]

    def data(self, index: int) -> memoryview:
        _, offset, n = self.chunks[index]
        return self.view[offset : offset + n]

    def runs(self, run_bytes: int = 32 << 20) -> Iterator[tuple[int, int]]:
        """Cut the file and hash its chunks on the pool, yielding ``(lo, hi)`` index
        ranges of about ``run_bytes`` as soon as their chunks are hashed, so the caller
        can store one run while the next is hashed."""
        from pyfastcdc import FastCDC

        if self._cut:
            raise RuntimeError("the file was cut already")
        self._cut = True
        avg = self._params.avg
        cdc = FastCDC(avg, min_size=max(64, avg // 4), max_size=avg * 4)
        cuts: list[tuple[int, int]] = []
        pending: list[tuple[int, int, Future[list[str]]]] = []  # (lo, hi, hashes)
        run_lo = run_bytes_so_far = 0

        def drain(wait_all: bool) -> Iterator[tuple[int, int]]:
            nonlocal run_lo, run_bytes_so_far
            while pending and (wait_all or pending[0][2].done()):
                lo, hi, fut = pending.pop(0)
                self.chunks.extend(
                    (d, o, n) for d, (o, n) in zip(fut.result(), cuts[lo:hi], strict=True)
                )
                run_bytes_so_far += sum(n for _, n in cuts[lo:hi])
                if run_bytes_so_far >= run_bytes:
                    yield run_lo, hi
                    run_lo, run_bytes_so_far = hi, 0

        for c in cdc.cut_buf(self.view):
            cuts.append((c.offset, c.length))
            if len(cuts) % _BATCH == 0:
                lo = len(cuts) - _BATCH
                pending.append((lo, len(cuts), self._pool.submit(_hash_cuts, self.view, cuts[lo:])))
                yield from drain(False)
        rest = len(cuts) % _BATCH
        if rest:
            lo = len(cuts) - rest
            pending.append((lo, len(cuts), self._pool.submit(_hash_cuts, self.view, cuts[lo:])))
        yield from drain(True)
        if run_lo < len(cuts):
            yield run_lo, len(cuts)

    def finish(self) -> str:
        """Cut whatever is left, wait for the whole-file SHA-256 and check that the file
        did not change while it was read (InvalidValueError: nothing may be recorded)."""
        if not self._cut:
            for _ in self.runs():
                pass
        self.digest = self._whole.result()
        if _stat_key(os.stat(self.path)) != _stat_key(self._before):
            raise InvalidValueError(
                f"{self.path} changed while it was being read; nothing was stored",
                path=str(self.path),
            )
        return self.digest


def _stat_key(st: os.stat_result) -> tuple[int, int, int]:
    return (st.st_size, st.st_mtime_ns, st.st_ino)


@contextlib.contextmanager
def open_chunked(
    path: str | os.PathLike[str], params: ChunkParams, pool: ThreadPoolExecutor
) -> Iterator[ChunkedFile]:
    """Map a file for chunking; its whole-file SHA-256 starts on the pool at once.

    The caller cuts it with :meth:`ChunkedFile.runs` (storing runs as they come) or
    :meth:`ChunkedFile.finish`, and keeps it open while it stores chunk bytes.
    """
    fd = os.open(path, os.O_RDONLY)
    try:
        before = os.fstat(fd)
        if before.st_size == 0:
            raise InvalidValueError(f"{path}: an empty file is never chunked", path=str(path))
        mm = mmap.mmap(fd, before.st_size, access=mmap.ACCESS_READ)
        with contextlib.suppress(AttributeError, OSError):
            mm.madvise(mmap.MADV_SEQUENTIAL)
        view = memoryview(mm)
        cf = ChunkedFile(path, view, before, params, pool)
        try:
            yield cf
        finally:
            with contextlib.suppress(Exception):
                cf._whole.result()  # the hashing thread must be done with the mapping
            with contextlib.suppress(BufferError):
                view.release()
                mm.close()
    finally:
        os.close(fd)


def _hash_whole(view: memoryview) -> str:
    h = hashlib.sha256()
    for i in range(0, len(view), _HASH_SLICE):
        h.update(view[i : i + _HASH_SLICE])
    return h.hexdigest()


def _hash_cuts(view: memoryview, cuts: Sequence[tuple[int, int]]) -> list[str]:
    return [hashlib.sha256(view[o : o + n]).hexdigest() for o, n in cuts]


# --------------------------------------------------------------------------- codecs


def _compressor() -> Any:
    import zstandard

    return zstandard.ZstdCompressor(level=3)


def worth_compressing(source: ChunkedFile, indices: Sequence[int]) -> bool:
    """Compress a sample of up to 8 of the chunks to be stored: True when they shrink by a
    tenth or more (so incompressible data, like float weights, costs no compression)."""
    if not indices:
        return False
    step = max(1, len(indices) // 8)
    sample = list(indices)[::step][:8]
    cctx = _compressor()
    raw = packed = 0
    for i in sample:
        data = source.data(i)
        raw += len(data)
        packed += len(cctx.compress(data))
    return packed < 0.9 * raw


def encode_chunk(data: memoryview | bytes, compress: bool) -> tuple[bytes, int]:
    """The stored form of a chunk and its codec."""
    if compress:
        packed = _compressor().compress(data)
        if len(packed) < 0.95 * len(data):
            return packed, ZSTD
    return bytes(data), RAW


def decode_chunk(stored: bytes, codec: int, size: int) -> bytes:
    """A chunk's raw bytes from its stored form (StoreError on an unknown codec)."""
    if codec == RAW:
        return stored
    if codec == ZSTD:
        import zstandard

        try:
            return zstandard.ZstdDecompressor().decompress(stored, max_output_size=size)
        except zstandard.ZstdError as exc:
            raise StoreError(f"a stored chunk does not decompress: {exc}") from exc
    raise StoreError(f"unknown chunk codec {codec}")


# --------------------------------------------------------------------------- packs


@dataclasses.dataclass(frozen=True, slots=True)
class PackedChunk:
    """Where a chunk sits in its pack."""

    digest: str
    offset: int
    stored_size: int
    size: int
    codec: int


class PackBuilder:
    """Accumulates stored chunks into one pack of about ``target`` bytes."""

    def __init__(self, target: int) -> None:
        self.target = max(target, 1)
        self.parts: list[bytes | memoryview] = []
        self.index: list[PackedChunk] = []
        self.length = 0

    def add(self, digest: str, stored: bytes | memoryview, size: int, codec: int) -> None:
        self.index.append(PackedChunk(digest, self.length, len(stored), size, codec))
        self.parts.append(stored)
        self.length += len(stored)

    @property
    def full(self) -> bool:
        return self.length >= self.target

    def __len__(self) -> int:
        return len(self.index)

    def finish(self) -> tuple[bytes, list[PackedChunk]]:
        """The pack's bytes (chunks, index, trailer) and its index."""
        index = msgpack.packb(
            [
                [bytes.fromhex(c.digest), c.offset, c.stored_size, c.size, c.codec]
                for c in self.index
            ]
        )
        body = b"".join([*self.parts, index, TRAILER.pack(len(index)), MAGIC])
        return body, self.index


def chunks_to_store(
    cf: ChunkedFile, lo: int, hi: int, missing: set[str], seen: set[str]
) -> list[int]:
    """Indices in [lo, hi) of chunks in ``missing`` not already in ``seen`` (which is
    updated): each missing chunk is stored once even when the file repeats it."""
    out = []
    for i in range(lo, hi):
        d = cf.chunks[i][0]
        if d in missing and d not in seen:
            seen.add(d)
            out.append(i)
    return out


def write_packs(
    cf: ChunkedFile,
    todo: list[int],
    params: ChunkParams,
    pool: ThreadPoolExecutor,
    put: Any,
    compress: bool | None = None,
    in_flight: int = 6,
) -> list[Future[Any]]:
    """Pack the chunks ``todo`` (indices, in file order) and hand each pack's bytes and
    index to ``put`` on the pool; returns the futures of what ``put`` returns.

    Packs are cut by raw size, then each is encoded (compressed where it pays), joined
    and put by one task on ``pool``, so packs are built and written on every core at
    once; the call waits while more than ``in_flight`` packs are unfinished.
    ``compress`` None decides from a sample of ``todo``.
    """
    if not todo:
        return []
    if compress is None:
        compress = params.compression and worth_compressing(cf, todo)
    groups: list[list[int]] = [[]]
    filled = 0
    for i in todo:
        if filled >= params.pack_size:
            groups.append([])
            filled = 0
        groups[-1].append(i)
        filled += cf.chunks[i][2]

    def build(group: list[int]) -> Any:
        builder = PackBuilder(params.pack_size)
        for i in group:
            data = cf.data(i)
            if compress:
                stored, codec = encode_chunk(data, True)
                builder.add(cf.chunks[i][0], stored, len(data), codec)
            else:  # no copy per chunk: the pack's join copies once
                builder.add(cf.chunks[i][0], data, len(data), RAW)
        body, index = builder.finish()
        return put(body, index)

    futures: list[Future[Any]] = []
    for group in groups:
        while sum(not f.done() for f in futures) >= in_flight:
            next(f for f in futures if not f.done()).result()
        futures.append(pool.submit(build, group))
    return futures


def read_pack_index(pack: bytes) -> list[PackedChunk]:
    """The index at the end of a pack's bytes (InvalidValueError when it is not a pack)."""
    tail = TRAILER.size + len(MAGIC)
    if len(pack) < tail or pack[-len(MAGIC) :] != MAGIC:
        raise InvalidValueError("not a Stemma packfile (no STMPACK1 trailer)")
    (length,) = TRAILER.unpack(pack[-tail : -len(MAGIC)])
    start = len(pack) - tail - length
    if start < 0:
        raise InvalidValueError("a packfile's index length runs past its start")
    try:
        rows = msgpack.unpackb(pack[start : len(pack) - tail])
        out = [PackedChunk(d.hex(), int(o), int(s), int(n), int(c)) for d, o, s, n, c in rows]
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise InvalidValueError(f"a packfile's index does not decode: {exc}") from None
    for c in out:
        if c.offset < 0 or c.offset + c.stored_size > start or c.codec not in (RAW, ZSTD):
            raise InvalidValueError(f"packfile index entry for chunk {c.digest} is out of range")
    return out


def verify_pack(pack: bytes) -> list[PackedChunk]:
    """The pack's index after checking that every chunk decodes to bytes with its SHA-256
    (what a server does before trusting chunks a client uploaded)."""
    index = read_pack_index(pack)
    for c in index:
        raw = decode_chunk(pack[c.offset : c.offset + c.stored_size], c.codec, c.size)
        if len(raw) != c.size or hashlib.sha256(raw).hexdigest() != c.digest:
            raise InvalidValueError(
                f"chunk {c.digest} in the uploaded pack does not match its SHA-256; "
                "nothing of the pack was registered",
                digest=c.digest,
            )
    return index


# --------------------------------------------------------------------------- reading


class CorruptChunk(StoreError):
    """A stored chunk whose bytes no longer match its SHA-256."""


Located = tuple[str, PackedChunk]  # (pack digest, where in it)
_SPAN = 16 << 20  # at most this many bytes per ranged read
_WINDOW = 8  # ranged reads in flight


def plan_reads(
    recipe: Sequence[tuple[str, int]], where: dict[str, Located]
) -> list[tuple[str, int, int, list[PackedChunk]]]:
    """Group a file's chunks, in order, into ranged reads: consecutive chunks that sit
    next to each other in the same pack are read with one request."""
    reads: list[tuple[str, int, int, list[PackedChunk]]] = []
    for digest, _ in recipe:
        found = where.get(digest)
        if found is None:
            raise StoreError(f"chunk {digest} is not in the store", digest=digest)
        pack, c = found
        if reads:
            last_pack, start, length, group = reads[-1]
            if last_pack == pack and start + length == c.offset and length + c.stored_size <= _SPAN:
                group.append(c)
                reads[-1] = (pack, start, length + c.stored_size, group)
                continue
        reads.append((pack, c.offset, c.stored_size, [c]))
    return reads


def _read_group(
    read_range: Any, pack: str, start: int, length: int, group: list[PackedChunk]
) -> list[bytes]:
    data = read_range(pack, start, length)
    if len(data) != length:
        raise CorruptChunk(
            f"pack {pack} is shorter than its index says ({len(data)} of {length} bytes at "
            f"{start})",
            digest=group[0].digest,
        )
    out = []
    for c in group:
        lo = c.offset - start
        try:
            raw = decode_chunk(data[lo : lo + c.stored_size], c.codec, c.size)
        except StoreError:
            raw = b""
        if len(raw) != c.size or hashlib.sha256(raw).hexdigest() != c.digest:
            raise CorruptChunk(
                f"chunk {c.digest} in pack {pack} is corrupt: its bytes do not match its SHA-256",
                digest=c.digest,
                pack=pack,
            )
        out.append(raw)
    return out


def reassemble(
    recipe: Sequence[tuple[str, int]],
    where: dict[str, Located],
    read_range: Any,
    pool: ThreadPoolExecutor,
) -> Iterator[bytes]:
    """A chunked file's bytes in order, each chunk checked against its SHA-256 (raises
    CorruptChunk naming the first bad one). Reads run ahead on ``pool``; the caller
    checks the whole file's SHA-256."""
    reads = plan_reads(recipe, where)
    pending: list[Future[list[bytes]]] = []
    nxt = 0
    while nxt < len(reads) or pending:
        while nxt < len(reads) and len(pending) < _WINDOW:
            pending.append(pool.submit(_read_group, read_range, *reads[nxt]))
            nxt += 1
        first = pending.pop(0)
        try:
            yield from first.result()
        except BaseException:
            for f in pending:
                f.cancel()
            raise

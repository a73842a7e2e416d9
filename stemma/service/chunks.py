"""Chunk bookkeeping: which chunks the store holds and where, large files as recipes,
and gc's side of chunks (condemn the unreferenced, find packs worth repacking).

Chunks follow the blobs' two-phase rule (:mod:`stemma.service.blobs`): gc first marks
unreferenced chunks ``condemned`` under the lock that commits share, and only drops rows
still condemned. An upload treats a condemned chunk as missing and stores it again, which
revives the row (pointing it at the new copy), so a chunk uploaded while gc runs is never
lost. Packfiles are ordinary blobs; a pack stays alive while any chunk row points into it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterable, Sequence

from sqlalchemy import Connection, and_, delete, func, insert, select, update

from stemma.errors import InvalidValueError
from stemma.service.clock import aware, utcnow
from stemma.service.runs import _insert_ignore
from stemma.storage.chunking import PackedChunk
from stemma.storage.models import chunked_files, chunks

_BATCH = 500

Recipe = list[tuple[str, int]]


def _batches(keys: Sequence[str]) -> Iterable[Sequence[str]]:
    for i in range(0, len(keys), _BATCH):
        yield keys[i : i + _BATCH]


def encode_recipe(recipe: Sequence[tuple[str, int]]) -> bytes:
    """32-byte digest + 4-byte size per chunk, in file order."""
    return b"".join(bytes.fromhex(d) + n.to_bytes(4, "big") for d, n in recipe)


def decode_recipe(raw: bytes) -> Recipe:
    return [
        (raw[i : i + 32].hex(), int.from_bytes(raw[i + 32 : i + 36], "big"))
        for i in range(0, len(raw), 36)
    ]


def present_chunks(conn: Connection, digests: Iterable[str]) -> set[str]:
    """Those of ``digests`` stored and not condemned."""
    keys = list(set(digests))
    out: set[str] = set()
    for part in _batches(keys):
        out.update(
            conn.execute(
                select(chunks.c.digest).where(and_(chunks.c.digest.in_(part), ~chunks.c.condemned))
            ).scalars()
        )
    return out


def missing_chunks(conn: Connection, digests: Iterable[str]) -> set[str]:
    """Chunks the client must upload: unknown, or condemned by a running gc."""
    wanted = set(digests)
    return wanted - present_chunks(conn, wanted)


def register_chunks(conn: Connection, pack: str, index: Sequence[PackedChunk]) -> None:
    """Record the chunks of a stored pack. A chunk already stored keeps its place; a
    condemned one is revived at its new place (the old copy goes with its pack)."""
    if not index:
        return
    now = utcnow()
    by_digest = {c.digest: c for c in index}
    state: dict[str, bool] = {}
    keys = list(by_digest)
    for part in _batches(keys):
        for digest, condemned in conn.execute(
            select(chunks.c.digest, chunks.c.condemned).where(chunks.c.digest.in_(part))
        ):
            state[digest] = condemned
    new = [
        {
            "digest": c.digest,
            "pack": pack,
            "offset": c.offset,
            "stored_size": c.stored_size,
            "size": c.size,
            "codec": c.codec,
            "created_at": now,
            "condemned": False,
        }
        for d, c in by_digest.items()
        if d not in state
    ]
    if new:
        if conn.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            conn.execute(pg_insert(chunks).on_conflict_do_nothing(), new)
        else:
            conn.execute(insert(chunks).prefix_with("OR IGNORE"), new)
    for d, condemned in state.items():
        if condemned:
            c = by_digest[d]
            conn.execute(
                update(chunks)
                .where(and_(chunks.c.digest == d, chunks.c.condemned))
                .values(
                    pack=pack,
                    offset=c.offset,
                    stored_size=c.stored_size,
                    size=c.size,
                    codec=c.codec,
                    created_at=now,
                    condemned=False,
                )
            )


def recipe(conn: Connection, digest: str) -> Recipe | None:
    """A chunked file's chunks in order, or None when the file is not stored as chunks."""
    raw = conn.execute(
        select(chunked_files.c.recipe).where(chunked_files.c.digest == digest)
    ).scalar()
    return None if raw is None else decode_recipe(raw)


def recipes(conn: Connection, digests: Iterable[str]) -> dict[str, Recipe]:
    keys = list(set(digests))
    out: dict[str, Recipe] = {}
    for part in _batches(keys):
        for d, raw in conn.execute(
            select(chunked_files.c.digest, chunked_files.c.recipe).where(
                chunked_files.c.digest.in_(part)
            )
        ):
            out[d] = decode_recipe(raw)
    return out


def complete_files(conn: Connection, digests: Iterable[str]) -> dict[str, int]:
    """{digest: size} of the chunked files whose every chunk is stored (not condemned):
    such a file needs no upload at all."""
    found = recipes(conn, digests)
    alive = present_chunks(conn, {c for r in found.values() for c, _ in r})
    sizes = dict(
        conn.execute(
            select(chunked_files.c.digest, chunked_files.c.size).where(
                chunked_files.c.digest.in_(list(found))
            )
        ).all()
    )
    return {d: sizes[d] for d, r in found.items() if all(c in alive for c, _ in r)}


def register_file(conn: Connection, digest: str, size: int, chunk_list: Recipe) -> list[str]:
    """Record a file as its chunks; returns the chunks still missing (then nothing is
    recorded: the caller stores them and calls again)."""
    lacking = missing_chunks(conn, [d for d, _ in chunk_list])
    if lacking:
        return sorted(lacking)
    check_total(digest, size, chunk_list)
    row = {
        "digest": digest,
        "size": size,
        "chunk_count": len(chunk_list),
        "recipe": encode_recipe(chunk_list),
        "created_at": utcnow(),
    }
    _insert_ignore(conn, chunked_files, row)
    return []


def check_total(digest: str, size: int, chunk_list: Recipe) -> None:
    """InvalidValueError unless the chunks add up to the file's size."""
    total = sum(n for _, n in chunk_list)
    if total != size:
        raise InvalidValueError(
            f"the chunks of {digest} add up to {total} bytes, not {size}", digest=digest
        )


def locate(conn: Connection, digests: Iterable[str]) -> dict[str, tuple[str, PackedChunk]]:
    """{chunk digest: (pack, PackedChunk)} for stored chunks (condemned ones included:
    their bytes stay until gc drops the row)."""
    keys = list(set(digests))
    out: dict[str, tuple[str, PackedChunk]] = {}
    for part in _batches(keys):
        for r in conn.execute(
            select(
                chunks.c.digest,
                chunks.c.pack,
                chunks.c.offset,
                chunks.c.stored_size,
                chunks.c.size,
                chunks.c.codec,
            ).where(chunks.c.digest.in_(part))
        ):
            out[r.digest] = (
                r.pack,
                PackedChunk(r.digest, r.offset, r.stored_size, r.size, r.codec),
            )
    return out


# --------------------------------------------------------------------------- gc


def dead_recipes(
    conn: Connection, live_files: set[str], grace_seconds: float, now: dt.datetime
) -> list[str]:
    """Recipes no committed version references, once older than the grace period (a
    recipe waits for its commit like an uploaded blob does)."""
    cutoff = now - dt.timedelta(seconds=grace_seconds)
    return [
        d
        for d, created in conn.execute(select(chunked_files.c.digest, chunked_files.c.created_at))
        if d not in live_files and (made := aware(created)) is not None and made <= cutoff
    ]


def drop_recipes(conn: Connection, digests: Sequence[str]) -> None:
    for part in _batches(list(digests)):
        conn.execute(delete(chunked_files).where(chunked_files.c.digest.in_(part)))


def live_chunks(conn: Connection, without: Collection[str] = ()) -> set[str]:
    """Chunks some recipe uses (leaving out the recipes in ``without``)."""
    out: set[str] = set()
    for d, raw in conn.execute(select(chunked_files.c.digest, chunked_files.c.recipe)):
        if d not in without:
            out.update(c for c, _ in decode_recipe(raw))
    return out


def unreferenced(
    conn: Connection, live: set[str], grace_seconds: float, now: dt.datetime
) -> list[tuple[str, int]]:
    """(digest, stored size) of chunks outside ``live`` older than the grace period."""
    cutoff = now - dt.timedelta(seconds=grace_seconds)
    return [
        (d, size)
        for d, size, created in conn.execute(
            select(chunks.c.digest, chunks.c.stored_size, chunks.c.created_at).where(
                ~chunks.c.condemned
            )
        )
        if d not in live and (made := aware(created)) is not None and made <= cutoff
    ]


def condemn(conn: Connection, digests: Sequence[str]) -> None:
    """Mark chunks condemned: gc drops them unless an upload revives them first."""
    for part in _batches(list(digests)):
        conn.execute(update(chunks).where(chunks.c.digest.in_(part)).values(condemned=True))


def take_condemned(conn: Connection, digests: Sequence[str]) -> list[str]:
    """Drop the rows of those chunks that are still condemned; returns exactly the rows
    dropped (a chunk an upload revived meanwhile stays)."""
    out: list[str] = []
    for part in _batches(list(digests)):
        res = conn.execute(
            delete(chunks)
            .where(and_(chunks.c.digest.in_(part), chunks.c.condemned))
            .returning(chunks.c.digest)
        )
        out.extend(res.scalars())
    return out


def live_packs(conn: Connection) -> set[str]:
    """Packs some chunk row points into."""
    return set(conn.execute(select(chunks.c.pack).distinct()).scalars())


def pack_usage(conn: Connection) -> dict[str, tuple[int, int]]:
    """{pack: (live stored bytes, chunk count)} from the chunk rows."""
    return {
        pack: (int(used or 0), int(count))
        for pack, used, count in conn.execute(
            select(chunks.c.pack, func.sum(chunks.c.stored_size), func.count()).group_by(
                chunks.c.pack
            )
        )
    }


def chunks_in(conn: Connection, pack: str) -> list[PackedChunk]:
    return [
        PackedChunk(r.digest, r.offset, r.stored_size, r.size, r.codec)
        for r in conn.execute(
            select(
                chunks.c.digest,
                chunks.c.offset,
                chunks.c.stored_size,
                chunks.c.size,
                chunks.c.codec,
            ).where(chunks.c.pack == pack)
        )
    ]


def move_chunks(conn: Connection, old: str, new: str, index: Sequence[PackedChunk]) -> int:
    """Point the rows of ``index`` still in pack ``old`` at their copies in ``new``."""
    moved = 0
    for c in index:
        res = conn.execute(
            update(chunks)
            .where(and_(chunks.c.digest == c.digest, chunks.c.pack == old))
            .values(pack=new, offset=c.offset, stored_size=c.stored_size, codec=c.codec)
        )
        moved += res.rowcount or 0
    return moved


def chunk_sizes(conn: Connection, digests: Iterable[str]) -> dict[str, int]:
    """{chunk: stored bytes} for the given chunks."""
    keys = list(set(digests))
    out: dict[str, int] = {}
    for part in _batches(keys):
        out.update(
            conn.execute(
                select(chunks.c.digest, chunks.c.stored_size).where(chunks.c.digest.in_(part))
            ).all()
        )
    return out

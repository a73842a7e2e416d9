"""Run media: indexing the media references of applied history, listing, serving checks.

``run.log({"examples": stemma.Image(...)})`` stores the bytes as a blob and a reference
dict in the run's history (see :mod:`stemma.wire.media`). When a frame's history batch
is applied, :func:`collect` finds the references in it and :func:`record` indexes them
in the same transaction, so the index and the history never disagree.

The bytes must be in the store before the frame that references them is applied: the
SDK uploads a frame's media blobs first, and :func:`record` refuses a frame naming a
blob the store lacks (or that gc has condemned) with a Conflict listing the digests,
after which the SDK uploads them again and resends the frame. This is the artifact
commit's rule, for the same reason: a reference that is accepted always has its bytes,
and from then on :func:`live_digests` keeps them from gc for as long as the run exists.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, and_, func, select

from stemma.errors import Conflict
from stemma.storage.models import run_media, run_media_blobs
from stemma.wire.chunks import Column
from stemma.wire.history import PACKED
from stemma.wire.media import MediaItem, is_ref, parse_ref


def collect(cols: dict[str, Column]) -> list[MediaItem]:
    """The media references in a batch's columns (only msgpack columns can hold any)."""
    found: list[MediaItem] = []
    for key, col in cols.items():
        if col.kind != PACKED:
            continue
        for step, value in zip(col.steps, col.values, strict=True):
            if type(value) is dict and is_ref(value):
                found.append(parse_ref(key, int(step), value))
    return found


def _dialect_insert(conn: Connection, table: Any) -> Any:
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert

        return insert(table)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table)


def record(conn: Connection, run_pk: int, items: list[MediaItem]) -> None:
    """Index ``items`` of run ``run_pk`` (a key logged again at a step replaces it).

    Refuses with Conflict(missing=[...]) when a blob they need is not in the store:
    the caller uploads those and tries again (the transaction is rolled back).
    """
    from stemma.service.blobs import missing_blobs, share_with_gc

    if not items:
        return
    share_with_gc(conn)  # gc cannot condemn between this check and the commit
    needed = {d for item in items for d in item.blobs}
    missing = missing_blobs(conn, needed)
    if missing:
        raise Conflict(
            f"{len(missing)} media blob(s) are not in the store (e.g. {min(missing)}); "
            "upload them, then send the frame again",
            missing=sorted(missing),
        )
    rows = [
        {
            "run_pk": run_pk,
            "key": item.key,
            "step": item.step,
            "kind": item.kind,
            "digest": item.digest,
            "size": item.size,
            "caption": item.caption,
            "meta": item.meta,
        }
        for item in items
    ]
    ins = _dialect_insert(conn, run_media)
    conn.execute(
        ins.on_conflict_do_update(
            index_elements=["run_pk", "key", "step"],
            set_={c: ins.excluded[c] for c in ("kind", "digest", "size", "caption", "meta")},
        ),
        rows,
    )
    types: dict[str, str] = {}
    for item in items:
        for digest, content_type in item.blobs.items():
            types.setdefault(digest, content_type)
    blob_ins = _dialect_insert(conn, run_media_blobs)
    conn.execute(
        blob_ins.on_conflict_do_nothing(),
        [{"run_pk": run_pk, "digest": d, "content_type": t} for d, t in types.items()],
    )


def list_media(conn: Connection, run_pk: int, key: str | None = None) -> list[dict[str, Any]]:
    """A run's media (of one ``key``), by key then step."""
    q = select(run_media).where(run_media.c.run_pk == run_pk)
    if key is not None:
        q = q.where(run_media.c.key == key)
    return [
        {
            "key": r.key,
            "step": r.step,
            "kind": r.kind,
            "digest": r.digest,
            "size": r.size,
            "caption": r.caption,
            "meta": dict(r.meta or {}),
        }
        for r in conn.execute(q.order_by(run_media.c.key, run_media.c.step))
    ]


def count_media(conn: Connection, run_pk: int) -> int:
    """How many media items the run logged (one indexed count, no rows read)."""
    return int(
        conn.execute(
            select(func.count()).select_from(run_media).where(run_media.c.run_pk == run_pk)
        ).scalar()
        or 0
    )


def content_type(conn: Connection, run_pk: int, digest: str) -> str | None:
    """The Content-Type of ``digest`` when it is a blob of the run's media, else None."""
    return conn.execute(
        select(run_media_blobs.c.content_type).where(
            and_(run_media_blobs.c.run_pk == run_pk, run_media_blobs.c.digest == digest)
        )
    ).scalar()


def live_digests(conn: Connection) -> set[str]:
    """Every blob some existing run's media needs (gc keeps them)."""
    return set(conn.execute(select(run_media_blobs.c.digest).distinct()).scalars())

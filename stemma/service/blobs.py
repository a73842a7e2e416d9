"""Blob bookkeeping: which blobs the store holds, and gc's two-phase deletion.

A blob row marked ``condemned`` is one gc is about to delete. Commits treat condemned
blobs as missing (the client uploads them again, which revives the row), and gc only
deletes bytes whose row it removes while still condemned, so gc and a concurrent
commit can never lose a referenced blob.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, and_, delete, insert, select, update

from stemma.service.clock import aware, utcnow
from stemma.storage.models import blobs


def present_blobs(conn: Connection, digests: Iterable[str]) -> dict[str, int]:
    """{digest: size} of those digests the store holds (rows not condemned by gc).

    A row is trusted without touching the bytes: a row only exists once its bytes were
    found in place (:func:`register_blobs`), and gc deletes bytes only together with
    their row. ``stemma artifact verify`` re-hashes for damage done behind our back.
    """
    keys = list(set(digests))
    out: dict[str, int] = {}
    for i in range(0, len(keys), 500):
        for digest, size in conn.execute(
            select(blobs.c.digest, blobs.c.size).where(
                and_(blobs.c.digest.in_(keys[i : i + 500]), ~blobs.c.condemned)
            )
        ):
            out[digest] = size
    return out


def missing_blobs(conn: Connection, digests: Iterable[str]) -> set[str]:
    """Digests the store lacks (or that gc has condemned): the client must upload them."""
    wanted = set(digests)
    return wanted - set(present_blobs(conn, wanted))


def register_blobs(conn: Connection, store: Any, items: Iterable[tuple[str, int]]) -> list[str]:
    """Record stored blobs (reviving any that gc had condemned); returns the digests whose
    bytes turned out to be absent (a gc ran between the upload and now: store again).

    Rows that already exist and are not condemned are left alone; new and revived rows
    are checked against the store first, which is what lets every later check trust rows.
    """
    now = utcnow()
    rows = dict(items)
    if not rows:
        return []
    share_with_gc(conn)  # gc's orphan sweep must not run between our check and commit
    keys = list(rows)
    state: dict[str, bool] = {}
    for i in range(0, len(keys), 500):
        for digest, condemned in conn.execute(
            select(blobs.c.digest, blobs.c.condemned).where(blobs.c.digest.in_(keys[i : i + 500]))
        ):
            state[digest] = condemned
    checking = [d for d in keys if state.get(d, True)]  # new or condemned
    gone = {d for d in checking if not store.has(d)}
    new = [
        {"digest": d, "size": rows[d], "created_at": now, "condemned": False}
        for d in checking
        if d not in state and d not in gone
    ]
    if new:
        if conn.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            conn.execute(pg_insert(blobs).on_conflict_do_nothing(), new)
        else:
            conn.execute(insert(blobs).prefix_with("OR IGNORE"), new)
    revive = [d for d in checking if d in state and d not in gone]
    for i in range(0, len(revive), 500):
        conn.execute(
            update(blobs)
            .where(and_(blobs.c.digest.in_(revive[i : i + 500]), blobs.c.condemned))
            .values(condemned=False)
        )
    # A revive can lose to gc deleting the row (and its bytes) meanwhile: whatever is not
    # now present and alive counts as vanished, and the caller stores it again.
    alive = present_blobs(conn, [d for d in checking if d not in gone])
    return [d for d in checking if d not in alive]


def lock_against_commits(conn: Connection) -> None:
    """On PostgreSQL, wait for in-flight commits and hold new ones off until gc's
    condemn transaction ends (SQLite's write lock already does this)."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy import text

        conn.execute(text("SELECT pg_advisory_xact_lock(5281)"))


def share_with_gc(conn: Connection) -> None:
    """A commit's side of :func:`lock_against_commits` (commits run concurrently)."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy import text

        conn.execute(text("SELECT pg_advisory_xact_lock_shared(5281)"))


def unreferenced(
    conn: Connection, live: set[str], grace_seconds: float, now: dt.datetime
) -> list[tuple[str, int]]:
    """(digest, size) of blobs outside ``live`` older than the grace period."""
    cutoff = now - dt.timedelta(seconds=grace_seconds)
    dead = []
    for d, size, created in conn.execute(select(blobs.c.digest, blobs.c.size, blobs.c.created_at)):
        made = aware(created)
        if d not in live and made is not None and made <= cutoff:
            dead.append((d, size))
    return dead


def condemn_unreferenced(
    conn: Connection, live: set[str], grace_seconds: float, now: dt.datetime
) -> list[tuple[str, int]]:
    """Mark blobs outside ``live`` (and older than the grace period, so uploads waiting
    for their commit are spared) as condemned; returns (digest, size) of each."""
    dead = unreferenced(conn, live, grace_seconds, now)
    keys = [d for d, _ in dead]
    for i in range(0, len(keys), 500):
        conn.execute(
            update(blobs).where(blobs.c.digest.in_(keys[i : i + 500])).values(condemned=True)
        )
    return dead


def take_condemned(conn: Connection, digests: list[str]) -> list[str]:
    """Drop the rows of those digests that are still condemned and return exactly the
    rows dropped (DELETE ... RETURNING: a row revived meanwhile is neither dropped nor
    returned); the caller deletes their bytes inside the same transaction."""
    if not digests:
        return []
    res = conn.execute(
        delete(blobs)
        .where(and_(blobs.c.digest.in_(digests), blobs.c.condemned))
        .returning(blobs.c.digest)
    )
    return list(res.scalars())


def known_digests(conn: Connection) -> set[str]:
    """Every digest with a row (condemned or not)."""
    return set(conn.execute(select(blobs.c.digest)).scalars())


def blob_ages(
    conn: Connection, digests: Iterable[str]
) -> dict[str, tuple[int, dt.datetime | None]]:
    """{digest: (size, created_at)} of those digests' rows."""
    keys = list(set(digests))
    out: dict[str, tuple[int, dt.datetime | None]] = {}
    for i in range(0, len(keys), 500):
        for digest, size, created in conn.execute(
            select(blobs.c.digest, blobs.c.size, blobs.c.created_at).where(
                blobs.c.digest.in_(keys[i : i + 500])
            )
        ):
            out[digest] = (size, aware(created))
    return out

"""The audit log: every mutation, appended in the transaction that makes it, hash-chained.

Each entry's hash covers its own fields and the previous entry's hash, and ``seq`` is
dense, so :func:`verify` finds an edited entry (its hash no longer matches), a deleted
one (the next entry's ``prev_hash`` or ``seq`` no longer follows) and an inserted one.
Appends are serialized (SQLite writes are already; PostgreSQL takes a transaction-scoped
advisory lock) so two writers can never chain from the same predecessor. Only state
changes are recorded, not each batch of metrics a run logs: those are the run's data,
and recording them would put a lock on the ingest path. An append also queues the
webhook deliveries its action fires (:mod:`stemma.service.webhook_events`), in the same
transaction.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterator
from typing import Any

from sqlalchemy import Connection, and_, select, text

from stemma.errors import UsageError
from stemma.service import webhook_events
from stemma.service.access import Principal
from stemma.service.clock import utcnow
from stemma.storage.models import audit_log
from stemma.wire.values import to_storable

GENESIS = "0" * 64
_LOCK_KEY = 5281  # pg advisory lock id of the chain's head (5280 is migrations')


def _canonical_time(at: dt.datetime) -> str:
    if at.tzinfo is None:  # SQLite hands back naive UTC datetimes
        at = at.replace(tzinfo=dt.UTC)
    return at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def entry_hash(fields: dict[str, Any]) -> str:
    """SHA-256 over a canonical JSON of the entry (sorted keys, UTC microseconds)."""
    doc = {
        "seq": int(fields["seq"]),
        "at": _canonical_time(fields["at"]),
        "actor": fields["actor"],
        "actor_kind": fields["actor_kind"],
        "source": fields["source"],
        "action": fields["action"],
        "entity": fields["entity"],
        "target": fields["target"],
        "details": fields["details"],
        "prev_hash": fields["prev_hash"],
    }
    raw = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(raw.encode()).hexdigest()


def lock(conn: Connection) -> None:
    """Take the chain's lock now (PostgreSQL; SQLite writers are serialized already).

    A write transaction that will append must take it *before* any row lock: otherwise
    one holding the chain and waiting for a row can deadlock with one holding that row
    and waiting for the chain. Taking it again in :func:`append` is harmless.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})


def append(
    conn: Connection,
    who: Principal,
    action: str,
    target: str,
    *,
    entity: str | None = None,
    details: dict[str, Any] | None = None,
) -> int:
    """Append one entry inside the caller's write transaction; returns its ``seq``."""
    lock(conn)
    head = conn.execute(
        select(audit_log.c.seq, audit_log.c.hash).order_by(audit_log.c.seq.desc()).limit(1)
    ).first()
    fields: dict[str, Any] = {
        "seq": 1 if head is None else head.seq + 1,
        "at": utcnow(),
        "actor": who.name[:128],
        "actor_kind": who.kind,
        "source": (who.source or None) and who.source[:64],
        "action": action,
        "entity": entity,
        "target": target[:512],
        "details": to_storable(details or {}, "audit details"),
        "prev_hash": GENESIS if head is None else head.hash,
    }
    fields["hash"] = entry_hash(fields)
    conn.execute(audit_log.insert().values(**fields))
    # Webhooks: the entry's event is queued in this same transaction (sent later).
    webhook_events.enqueue(
        conn, action, entity, fields["target"], fields["details"], fields["actor"], fields["at"]
    )
    return int(fields["seq"])


def _row_dict(row: Any) -> dict[str, Any]:
    m = dict(row._mapping)
    at = m["at"]
    if at.tzinfo is None:
        m["at"] = at.replace(tzinfo=dt.UTC)
    return m


def query(
    conn: Connection,
    *,
    entities: list[str] | None = None,
    actor: str | None = None,
    action: str | None = None,
    target: str | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    limit: int = 100,
    before_seq: int | None = None,
) -> list[dict[str, Any]]:
    """Entries, newest first. ``entities`` (None: all) scopes a team admin's view;
    ``action`` matches a whole action or a prefix ending in a dot (``artifact.``)."""
    if limit < 1 or limit > 10_000:
        raise UsageError("limit must be between 1 and 10000", limit=limit)
    q = select(audit_log)
    conds: list[Any] = []
    if entities is not None:
        conds.append(audit_log.c.entity.in_(entities))
    if actor:
        conds.append(audit_log.c.actor == actor)
    if action:
        if action.endswith("."):
            conds.append(audit_log.c.action.startswith(action, autoescape=True))
        else:
            conds.append(audit_log.c.action == action)
    if target:
        conds.append(audit_log.c.target.startswith(target, autoescape=True))
    if since is not None:
        conds.append(audit_log.c.at >= since)
    if until is not None:
        conds.append(audit_log.c.at < until)
    if before_seq is not None:
        conds.append(audit_log.c.seq < before_seq)
    if conds:
        q = q.where(and_(*conds))
    rows = conn.execute(q.order_by(audit_log.c.seq.desc()).limit(limit)).all()
    return [_row_dict(r) for r in rows]


def _scan(conn: Connection, batch: int = 5000) -> Iterator[dict[str, Any]]:
    last = 0
    while True:
        rows = conn.execute(
            select(audit_log).where(audit_log.c.seq > last).order_by(audit_log.c.seq).limit(batch)
        ).all()
        if not rows:
            return
        for r in rows:
            yield _row_dict(r)
        last = rows[-1].seq


def verify(conn: Connection) -> dict[str, Any]:
    """Walk the whole chain; report the first entry that does not check out, and why."""
    prev_hash, expected_seq, count = GENESIS, 1, 0
    for entry in _scan(conn):
        problem = None
        if entry["seq"] != expected_seq:
            problem = (
                f"entry {expected_seq} is missing (the next entry is {entry['seq']}): "
                "entries were deleted"
            )
        elif entry["prev_hash"] != prev_hash:
            problem = (
                f"entry {entry['seq']} does not chain to the entry before it: "
                "an earlier entry was edited, deleted or inserted"
            )
        elif entry_hash(entry) != entry["hash"]:
            problem = f"entry {entry['seq']} was edited: its contents no longer match its hash"
        if problem is not None:
            return {"ok": False, "checked": count, "first_bad": entry["seq"], "problem": problem}
        prev_hash, expected_seq, count = entry["hash"], expected_seq + 1, count + 1
    return {"ok": True, "checked": count, "first_bad": None, "problem": None, "head": prev_hash}

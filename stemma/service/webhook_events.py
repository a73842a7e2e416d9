"""Webhook events, taken from the audit log as it is written.

Every change that a webhook can report already appends an audit entry, in the
transaction that makes the change (:func:`stemma.service.audit.append`). That append
calls :func:`enqueue`, which turns the entry into a delivery row for each matching
webhook of the entry's entity, in the same transaction: an event is queued if and only
if its change committed, whichever transport (embedded store, server) made it. Nothing
is sent here; :mod:`stemma.service.webhook_delivery` sends later, from a worker.

    audit action       webhook event
    artifact.commit    artifact.version_created
    alias.move         artifact.alias_moved      (an alias filter may narrow it)
    run.finish         run.finished
    report.save        report.saved

``latest`` moves with every commit and is not audited, so it never fires
``artifact.alias_moved``; a removed alias fires it with ``to`` null.
"""

from __future__ import annotations

import datetime as dt
import secrets
from typing import Any

from sqlalchemy import Connection, and_, insert, select

from stemma.storage.models import entities, webhook_deliveries, webhooks
from stemma.wire.events import (
    ALIAS_MOVED,
    REPORT_SAVED,
    RUN_FINISHED,
    VERSION_CREATED,
)

ACTION_EVENTS = {
    "artifact.commit": VERSION_CREATED,
    "alias.move": ALIAS_MOVED,
    "run.finish": RUN_FINISHED,
    "report.save": REPORT_SAVED,
}


def iso(at: dt.datetime) -> str:
    if at.tzinfo is None:  # SQLite hands back naive UTC datetimes
        at = at.replace(tzinfo=dt.UTC)
    return at.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def _version(index: object) -> str | None:
    return f"v{index}" if isinstance(index, int) else None


def _data(event: str, target: str, details: dict[str, Any]) -> tuple[str | None, dict[str, Any]]:
    """(project, data) of an event, from its audit entry's target and details."""
    parts = target.split("/", 2)
    if len(parts) < 3:
        return None, {"target": target, **details}
    entity, project, rest = parts
    if event == VERSION_CREATED:
        name, _sep, version = rest.rpartition(":")
        return project, {
            "artifact": f"{entity}/{project}/{name}",
            "version": version,
            "path": target,
            "digest": details.get("digest"),
            "size": details.get("size"),
            "files": details.get("files"),
            "run": details.get("run"),
        }
    if event == ALIAS_MOVED:
        name, _sep, alias = rest.rpartition(":")
        to = _version(details.get("to"))
        return project, {
            "artifact": f"{entity}/{project}/{name}",
            "alias": alias,
            "from": _version(details.get("from")),
            "to": to,
            "path": f"{entity}/{project}/{name}:{to}" if to else None,
            "comment": details.get("comment"),
        }
    if event == RUN_FINISHED:
        return project, {
            "run": target,
            "run_id": rest,
            "state": details.get("state"),
            "exit_code": details.get("exit_code"),
        }
    # report.saved: target is ENTITY/PROJECT/reports/ID
    return project, {
        "report": rest.removeprefix("reports/"),
        "title": details.get("title"),
        "revision": details.get("revision"),
    }


def new_delivery(
    webhook_id: int,
    event: str,
    at: dt.datetime,
    team: str,
    project: str | None,
    data: dict[str, Any],
) -> dict[str, Any]:
    """The values of a new delivery row: its JSON body is fixed now, so every attempt
    sends the same bytes."""
    delivery_id = secrets.token_hex(16)
    return {
        "delivery_id": delivery_id,
        "webhook_id": webhook_id,
        "event": event,
        "payload": {
            "id": delivery_id,
            "event": event,
            "created_at": iso(at),
            "team": team,
            "project": project,
            "data": data,
        },
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": at,
        "attempt_log": [],
        "created_at": at,
    }


def enqueue(
    conn: Connection,
    action: str,
    entity: str | None,
    target: str,
    details: dict[str, Any],
    actor: str,
    at: dt.datetime,
) -> int:
    """Queue a delivery to each of ``entity``'s webhooks that wants this audit entry's
    event (called by :func:`stemma.service.audit.append`). Returns how many."""
    event = ACTION_EVENTS.get(action)
    if event is None or entity is None:
        return 0
    hooks = conn.execute(
        select(webhooks.c.id, webhooks.c.events, webhooks.c.alias)
        .select_from(webhooks.join(entities, entities.c.id == webhooks.c.entity_id))
        .where(and_(entities.c.name == entity, webhooks.c.enabled))
        .order_by(webhooks.c.id)
    ).all()
    if not hooks:
        return 0
    project, data = _data(event, target, details)
    data["actor"] = actor
    rows = [
        new_delivery(h.id, event, at, entity, project, data)
        for h in hooks
        if event in (h.events or [])
        and not (event == ALIAS_MOVED and h.alias and h.alias != data.get("alias"))
    ]
    if rows:
        conn.execute(insert(webhook_deliveries), rows)
    return len(rows)

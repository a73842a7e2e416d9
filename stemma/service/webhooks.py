"""Webhooks: a team's admins register URLs that are told about its events.

* :func:`register`, :func:`list_webhooks`, :func:`delete_webhook`, :func:`ping` and
  :func:`deliveries` are the management calls (team admins only, as every rule here);
* :func:`check_url` is the guard against server-side request forgery, applied when a
  webhook is registered and again before every attempt (DNS may have changed): only
  ``http``/``https``; never this server itself; and, unless the instance allows it
  (``STEMMA_WEBHOOK_ALLOW_PRIVATE=1``), no loopback, private, link-local or otherwise
  non-public address, every address the name resolves to being checked;
* :func:`claim` and :func:`record_attempt` are the worker's side of the delivery queue
  (:mod:`stemma.service.webhook_delivery` sends). Events are queued by
  :mod:`stemma.service.webhook_events`, from the audit log.

The secret signs deliveries, so it is stored as given (a hash could not sign): it is
returned once, by :func:`register`, and never again.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import ipaddress
import os
import random
import secrets
import socket
from collections.abc import Callable, Iterable, Sequence
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import Connection, and_, delete, func, insert, select, update

from stemma.errors import NotFound, UsageError
from stemma.service import audit
from stemma.service.access import Gate, Level, entity_row
from stemma.service.artifacts import LATEST, check_alias
from stemma.service.clock import aware, utcnow
from stemma.service.webhook_events import new_delivery
from stemma.storage.models import webhook_deliveries, webhooks
from stemma.wire.events import ALIAS_MOVED, EVENTS, PING, VERSION_CREATED
from stemma.wire.names import check_name

MAX_WEBHOOKS = 50  # per entity
MAX_URL = 2048
MIN_SECRET, MAX_SECRET = 16, 256
MAX_DELAY = 3600.0  # the longest wait between two attempts
ALLOW_PRIVATE_ENV = "STEMMA_WEBHOOK_ALLOW_PRIVATE"

Resolver = Callable[[str, int], list[str]]


def allow_private() -> bool:
    """Whether webhooks may target loopback and private addresses (an instance setting)."""
    value = os.environ.get(ALLOW_PRIVATE_ENV, "").strip().lower()
    return value in ("1", "true", "yes", "on")


def server_endpoints() -> list[tuple[str, int]]:
    """The address and port `stemma server` binds (it sets both in its environment)."""
    host, port = os.environ.get("STEMMA_SERVER_HOST"), os.environ.get("STEMMA_SERVER_PORT")
    if host and port and port.isdigit():
        return [(host, int(port))]
    return []


# ------------------------------------------------------------------ URLs (SSRF)


@dataclasses.dataclass(frozen=True, slots=True)
class Target:
    """A checked webhook URL: where to connect (``addresses``, all of them allowed)."""

    url: str  # as given (stripped)
    scheme: str
    host: str
    port: int
    path: str  # path and query, as sent in the request line
    addresses: tuple[str, ...]


def resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (an IP literal: itself)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise UsageError(f"cannot resolve the webhook host {host!r}: {exc}", host=host) from exc
    out: list[str] = []
    for info in infos:
        addr = str(info[4][0]).split("%", 1)[0]  # drop an IPv6 zone
        if addr not in out:
            out.append(addr)
    return out


def _ip(addr: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    ip = ipaddress.ip_address(addr)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    return ip


def _is_local(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """An address of this machine: loopback, or one a socket can bind."""
    if ip.is_loopback:
        return True
    family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.bind((str(ip), 0))
        return True
    except OSError:
        return False


def _is_self(
    host: str, port: int, addresses: Sequence[str], own: Iterable[tuple[str, int]]
) -> bool:
    """Whether host:port (resolving to ``addresses``) reaches this server: one of the
    names or addresses it was reached at or binds, on the same port."""
    ips = [_ip(a) for a in addresses]
    for own_host, own_port in own:
        if own_port != port:
            continue
        own_host = own_host.strip("[]").lower()
        if own_host == host.lower():
            return True
        try:
            own_ips = [_ip(a) for a in resolve(own_host, own_port)]
        except UsageError:
            continue
        for own_ip in own_ips:
            if own_ip.is_unspecified:  # bound to every interface (0.0.0.0, ::)
                if any(_is_local(ip) for ip in ips):
                    return True
            elif own_ip in ips:
                return True
    return False


def check_url(
    url: str,
    *,
    private_ok: bool | None = None,
    own: Iterable[tuple[str, int]] = (),
    resolver: Resolver = resolve,
) -> Target:
    """Parse and check a webhook URL (see the module docstring); UsageError otherwise.

    ``own`` lists (host, port) this server is reached at or binds; ``private_ok``
    defaults to the instance setting."""
    if private_ok is None:
        private_ok = allow_private()
    if not isinstance(url, str) or not url.strip():
        raise UsageError("a webhook needs a URL")
    url = url.strip()
    if len(url) > MAX_URL:
        raise UsageError(f"a webhook URL must be at most {MAX_URL} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UsageError(f"not a valid URL: {url[:200]!r} ({exc})") from exc
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise UsageError(
            f"a webhook URL must be http:// or https://, not {scheme or 'no scheme'}://",
            scheme=scheme,
        )
    if "@" in parts.netloc:
        raise UsageError("a webhook URL may not carry credentials: the secret signs deliveries")
    host = (parts.hostname or "").lower()
    if not host:
        raise UsageError(f"a webhook URL needs a host: {url[:200]!r}")
    port = port or (443 if scheme == "https" else 80)
    addresses = resolver(host, port)
    if not addresses:
        raise UsageError(f"the webhook host {host!r} resolves to no address", host=host)
    for addr in addresses:
        ip = _ip(addr)
        if ip.is_unspecified or ip.is_multicast:
            raise UsageError(f"a webhook cannot target {ip}", address=str(ip))
        if not private_ok and not ip.is_global:
            raise UsageError(
                f"the webhook host {host!r} resolves to {ip}, a loopback, private or "
                "link-local address: refused (an instance administrator may allow private "
                f"targets with {ALLOW_PRIVATE_ENV}=1 on the server)",
                address=str(ip),
            )
    if _is_self(host, port, addresses, own):
        raise UsageError(f"a webhook cannot point at this Stemma server ({host}:{port})")
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    return Target(url, scheme, host, port, path, tuple(addresses))


def redact(url: str) -> str:
    """A URL without its query (which may hold a token), for the audit log."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


# ------------------------------------------------------------------ management


def require_admin(conn: Connection, gate: Gate, team: str) -> Any:
    """The entity row of ``team``, whose webhooks the caller may manage (else NotFound
    or PermissionDenied)."""
    check_name(team, "team")
    gate.require(conn, team, None, Level.ADMIN, f"manage the webhooks of {team}")
    ent = entity_row(conn, team)
    if ent is None:
        raise NotFound(f"no team {team!r}", team=team)
    return ent


def _events(events: object) -> list[str]:
    if isinstance(events, str):
        events = [events]
    if not isinstance(events, list | tuple) or not events:
        raise UsageError(f"choose at least one event: {', '.join(EVENTS)}")
    unknown = [e for e in events if e not in EVENTS]
    if unknown:
        raise UsageError(
            f"unknown webhook event {str(unknown[0])[:64]!r}: use {', '.join(EVENTS)}",
            event=str(unknown[0])[:64],
        )
    return [e for e in EVENTS if e in events]


def _secret(secret: str | None) -> str:
    if secret is None or secret == "":
        return "whsec_" + secrets.token_urlsafe(32)
    if not isinstance(secret, str) or not MIN_SECRET <= len(secret) <= MAX_SECRET:
        raise UsageError(f"a webhook secret must be {MIN_SECRET} to {MAX_SECRET} characters")
    if not secret.isprintable() or secret.strip() != secret:
        raise UsageError("a webhook secret must be printable, without surrounding spaces")
    return secret


def _out(row: Any, team: str) -> dict[str, Any]:
    return {
        "id": row.id,
        "team": team,
        "url": row.url,
        "events": list(row.events or []),
        "alias": row.alias,
        "enabled": bool(row.enabled),
        "created_by": row.created_by,
        "created_at": aware(row.created_at),
    }


def register(
    conn: Connection,
    gate: Gate,
    team: str,
    target: Target,
    events: Sequence[str],
    alias: str | None = None,
    secret: str | None = None,
) -> tuple[dict[str, Any], str]:
    """A new webhook of ``team`` (its admins) to a URL :func:`check_url` accepted (call
    it before the write transaction: it resolves names, which may take a while); returns
    (record, secret), the secret generated when not given."""
    ent = require_admin(conn, gate, team)
    chosen = _events(events)
    if alias is not None and alias != "":
        check_alias(alias)
        if alias == LATEST:
            raise UsageError(
                f"'{LATEST}' moves with every commit and sends no {ALIAS_MOVED}: "
                f"subscribe to {VERSION_CREATED} instead"
            )
        if ALIAS_MOVED not in chosen:
            raise UsageError(f"an alias filter applies to {ALIAS_MOVED}: subscribe to it too")
    else:
        alias = None
    secret = _secret(secret)
    url = target.url
    count = conn.execute(
        select(func.count()).select_from(webhooks).where(webhooks.c.entity_id == ent.id)
    ).scalar_one()
    if count >= MAX_WEBHOOKS:
        raise UsageError(f"{team} has {count} webhooks already: the most is {MAX_WEBHOOKS}")
    res = conn.execute(
        insert(webhooks).values(
            entity_id=ent.id,
            url=url,
            secret=secret,
            events=chosen,
            alias=alias,
            enabled=True,
            created_by=gate.who.name[:128],
            created_at=utcnow(),
        )
    )
    hook_id = int(res.inserted_primary_key[0])  # type: ignore[index]
    audit.append(
        conn,
        gate.who,
        "webhook.create",
        f"{team}/webhooks/{hook_id}",
        entity=team,
        details={"url": redact(url), "events": chosen, "alias": alias},
    )
    row = conn.execute(select(webhooks).where(webhooks.c.id == hook_id)).one()
    return _out(row, team), secret


def list_webhooks(conn: Connection, gate: Gate, team: str) -> list[dict[str, Any]]:
    """A team's webhooks, oldest first (never their secrets)."""
    ent = require_admin(conn, gate, team)
    rows = conn.execute(
        select(webhooks).where(webhooks.c.entity_id == ent.id).order_by(webhooks.c.id)
    ).all()
    return [_out(r, team) for r in rows]


def _hook(conn: Connection, gate: Gate, team: str, webhook_id: int) -> Any:
    ent = require_admin(conn, gate, team)
    row = conn.execute(
        select(webhooks).where(and_(webhooks.c.id == webhook_id, webhooks.c.entity_id == ent.id))
    ).first()
    if row is None:
        raise NotFound(f"no webhook {webhook_id} in {team}", webhook=webhook_id)
    return row


def delete_webhook(conn: Connection, gate: Gate, team: str, webhook_id: int) -> None:
    """Delete a webhook and its deliveries (sent or not)."""
    row = _hook(conn, gate, team, webhook_id)
    conn.execute(delete(webhook_deliveries).where(webhook_deliveries.c.webhook_id == row.id))
    conn.execute(delete(webhooks).where(webhooks.c.id == row.id))
    audit.append(
        conn,
        gate.who,
        "webhook.delete",
        f"{team}/webhooks/{row.id}",
        entity=team,
        details={"url": redact(row.url), "events": list(row.events or [])},
    )


def ping(conn: Connection, gate: Gate, team: str, webhook_id: int) -> dict[str, Any]:
    """Queue a ``ping`` delivery to a webhook; returns the delivery."""
    row = _hook(conn, gate, team, webhook_id)
    values = new_delivery(
        row.id,
        PING,
        utcnow(),
        team,
        None,
        {"webhook": row.id, "actor": gate.who.name, "message": "a test delivery from Stemma"},
    )
    conn.execute(insert(webhook_deliveries).values(**values))
    return _delivery(_delivery_row(conn, values["delivery_id"]))


def _delivery_row(conn: Connection, delivery_id: str) -> Any:
    return conn.execute(
        select(webhook_deliveries).where(webhook_deliveries.c.delivery_id == delivery_id)
    ).one()


def _delivery(row: Any) -> dict[str, Any]:
    return {
        "id": row.delivery_id,
        "webhook": row.webhook_id,
        "event": row.event,
        "status": row.status,
        "attempts": row.attempts,
        "next_attempt_at": aware(row.next_attempt_at) if row.status == "pending" else None,
        "last_status_code": row.last_status_code,
        "last_error": row.last_error,
        "created_at": aware(row.created_at),
        "finished_at": aware(row.finished_at),
        "payload": row.payload,
        "attempt_log": list(row.attempt_log or []),
    }


def deliveries(
    conn: Connection, gate: Gate, team: str, webhook_id: int, limit: int = 20
) -> list[dict[str, Any]]:
    """A webhook's deliveries, newest first."""
    if not 1 <= limit <= 1000:
        raise UsageError("limit must be between 1 and 1000", limit=limit)
    row = _hook(conn, gate, team, webhook_id)
    rows = conn.execute(
        select(webhook_deliveries)
        .where(webhook_deliveries.c.webhook_id == row.id)
        .order_by(webhook_deliveries.c.id.desc())
        .limit(limit)
    ).all()
    return [_delivery(r) for r in rows]


# ------------------------------------------------------------------ the worker's queue


@dataclasses.dataclass(frozen=True, slots=True)
class Claimed:
    """A delivery a worker holds for one attempt (its ``attempt``-th)."""

    pk: int
    delivery_id: str
    event: str
    payload: dict[str, Any]
    attempt: int
    url: str
    secret: str


def due(conn: Connection, now: dt.datetime | None = None) -> bool:
    """Whether any delivery is due (a cheap read before taking the write lock)."""
    now = now or utcnow()
    return (
        conn.execute(
            select(webhook_deliveries.c.id)
            .where(
                and_(
                    webhook_deliveries.c.status == "pending",
                    webhook_deliveries.c.next_attempt_at <= now,
                )
            )
            .limit(1)
        ).first()
        is not None
    )


def claim(
    conn: Connection, limit: int, lease: float, now: dt.datetime | None = None
) -> list[Claimed]:
    """Take up to ``limit`` due deliveries for one attempt each (a write transaction).

    The rows are locked while claimed (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so
    replicas claiming at once take different rows; SQLite writers are serialized), then
    counted as attempted and pushed ``lease`` seconds ahead: a worker that dies while
    sending leaves them due again then, never lost and never sent twice at once."""
    now = now or utcnow()
    q = (
        select(webhook_deliveries.c.id)
        .where(
            and_(
                webhook_deliveries.c.status == "pending",
                webhook_deliveries.c.next_attempt_at <= now,
            )
        )
        .order_by(webhook_deliveries.c.next_attempt_at, webhook_deliveries.c.id)
        .limit(limit)
    )
    if conn.dialect.name == "postgresql":
        q = q.with_for_update(skip_locked=True)
    ids = list(conn.execute(q).scalars())
    if not ids:
        return []
    conn.execute(
        update(webhook_deliveries)
        .where(webhook_deliveries.c.id.in_(ids))
        .values(
            attempts=webhook_deliveries.c.attempts + 1,
            next_attempt_at=now + dt.timedelta(seconds=lease),
        )
    )
    rows = conn.execute(
        select(
            webhook_deliveries.c.id,
            webhook_deliveries.c.delivery_id,
            webhook_deliveries.c.event,
            webhook_deliveries.c.payload,
            webhook_deliveries.c.attempts,
            webhooks.c.url,
            webhooks.c.secret,
        )
        .select_from(
            webhook_deliveries.join(webhooks, webhooks.c.id == webhook_deliveries.c.webhook_id)
        )
        .where(webhook_deliveries.c.id.in_(ids))
        .order_by(webhook_deliveries.c.id)
    ).all()
    return [
        Claimed(r.id, r.delivery_id, r.event, r.payload, r.attempts, r.url, r.secret) for r in rows
    ]


def retry_delay(attempt: int, base: float) -> float:
    """Seconds before the attempt after the ``attempt``-th: exponential, capped, with
    +-25% jitter so receivers coming back up are not hit by every sender at once."""
    delay = min(base * 2 ** (attempt - 1), MAX_DELAY)
    return delay * random.uniform(0.75, 1.25)


def record_attempt(
    conn: Connection,
    claimed: Claimed,
    *,
    status_code: int | None,
    error: str | None,
    ms: int,
    max_attempts: int,
    retry_base: float,
    now: dt.datetime | None = None,
) -> str | None:
    """Record one attempt's outcome (a 2xx answer is success); returns the delivery's
    status, or None when the claim had expired and another worker took it over."""
    now = now or utcnow()
    row = conn.execute(
        select(webhook_deliveries.c.attempt_log, webhook_deliveries.c.status).where(
            and_(
                webhook_deliveries.c.id == claimed.pk,
                webhook_deliveries.c.attempts == claimed.attempt,
            )
        )
    ).first()
    if row is None or row.status != "pending":
        return None
    ok = status_code is not None and 200 <= status_code < 300
    log = [
        *(row.attempt_log or []),
        {
            "attempt": claimed.attempt,
            "at": now.isoformat(),
            "status_code": status_code,
            "error": error,
            "ms": ms,
        },
    ][-max(max_attempts, 1) :]
    values: dict[str, Any] = {
        "last_status_code": status_code,
        "last_error": error,
        "attempt_log": log,
    }
    if ok:
        values.update(status="succeeded", finished_at=now, next_attempt_at=None)
    elif claimed.attempt >= max_attempts:
        values.update(status="failed", finished_at=now, next_attempt_at=None)
    else:
        delay = retry_delay(claimed.attempt, retry_base)
        values.update(next_attempt_at=now + dt.timedelta(seconds=delay))
    conn.execute(
        update(webhook_deliveries).where(webhook_deliveries.c.id == claimed.pk).values(**values)
    )
    return str(values.get("status", "pending"))


def prune(conn: Connection, older_than: float, now: dt.datetime | None = None) -> int:
    """Delete finished deliveries older than ``older_than`` seconds."""
    cutoff = (now or utcnow()) - dt.timedelta(seconds=older_than)
    res = conn.execute(
        delete(webhook_deliveries).where(
            and_(
                webhook_deliveries.c.status != "pending",
                webhook_deliveries.c.finished_at < cutoff,
            )
        )
    )
    return int(res.rowcount or 0)

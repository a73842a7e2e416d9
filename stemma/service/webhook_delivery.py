"""Sending webhook deliveries: signing, one attempt over HTTP, and the worker loop.

Deliveries are queued in the database by the change that causes them and sent here,
never in the request: a :class:`Deliverer` claims due deliveries
(:func:`stemma.service.webhooks.claim`), POSTs each from a small thread pool, and
records the outcome (:func:`stemma.service.webhooks.record_attempt`): a 2xx answer is
success; anything else (another status, a refused connection, a timeout) is retried
with exponential backoff and jitter until the attempt cap, then the delivery is
``failed``. The server runs one deliverer per process (``stemma.server.webhook_worker``);
over an embedded store, ``stemma webhook deliver`` runs one.

Each request carries::

    Content-Type: application/json
    X-Stemma-Event: artifact.alias_moved
    X-Stemma-Delivery: <delivery id, the same on every attempt>
    X-Stemma-Timestamp: <unix seconds of this attempt>
    X-Stemma-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>." + raw body)>

The timestamp is inside the signed content, so a receiver that refuses timestamps more
than a few minutes old cannot be fed an old delivery again.

Connections go to the addresses :func:`stemma.service.webhooks.check_url` checked just
before (the name is resolved once, so it cannot be re-pointed between the check and the
connection), and redirects are not followed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import http.client
import json
import logging
import os
import socket
import ssl
import threading
import time
from typing import Any

from sqlalchemy import Engine

from stemma import __version__
from stemma.errors import StemmaError, UsageError
from stemma.service import webhooks as webhook_service
from stemma.storage.database import read_tx, write_tx

log = logging.getLogger("stemma.webhooks")

SIGNATURE_PREFIX = "sha256="
KEEP_FINISHED = 30 * 86400.0  # finished deliveries are kept this long


def body_of(payload: dict[str, Any]) -> bytes:
    """The exact bytes sent (and signed) for a delivery's payload."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sign(secret: str, timestamp: int | str, body: bytes) -> str:
    """``sha256=<hex>``: HMAC-SHA256 with the secret over ``b"<timestamp>." + body``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return SIGNATURE_PREFIX + mac.hexdigest()


def _env_number(name: str, default: float, minimum: float) -> float:
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise UsageError(f"{name} must be a number, got {raw!r}", name=name) from None
    if value < minimum:
        raise UsageError(f"{name} must be at least {minimum}, got {raw!r}", name=name)
    return value


@dataclasses.dataclass(slots=True)
class Policy:
    """How deliveries are sent: the defaults retry 8 times over about an hour
    (30 s, 1, 2, 4, 8, 16 and 32 min between attempts, each +-25%)."""

    max_attempts: int = 8
    retry_seconds: float = 30.0  # before the first retry; doubles after each
    timeout: float = 10.0  # connect, and each read of the answer
    concurrency: int = 4  # deliveries in flight per worker
    poll: float = 1.0  # seconds between looks at the queue when it is idle
    private_ok: bool = False
    own: tuple[tuple[str, int], ...] = ()  # where this server is reached (never a target)

    @property
    def lease(self) -> float:
        """How long a claim lasts: longer than any attempt can take."""
        return self.timeout * 3 + 30.0

    @classmethod
    def from_env(cls, **overrides: Any) -> Policy:
        p = cls(
            max_attempts=int(_env_number("STEMMA_WEBHOOK_MAX_ATTEMPTS", 8, 1)),
            retry_seconds=_env_number("STEMMA_WEBHOOK_RETRY_SECONDS", 30.0, 0.01),
            private_ok=webhook_service.allow_private(),
            own=tuple(webhook_service.server_endpoints()),
        )
        for key, value in overrides.items():
            setattr(p, key, value)
        return p


@dataclasses.dataclass(slots=True)
class Outcome:
    status_code: int | None
    error: str | None
    ms: int


class _PinnedHTTP(http.client.HTTPConnection):
    """HTTP to a checked address, with the URL's host in the Host header."""

    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _PinnedHTTPS(http.client.HTTPSConnection):
    """HTTPS to a checked address; the certificate is checked against the URL's host."""

    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        self._tls = ssl.create_default_context()
        super().__init__(host, port, timeout=timeout, context=self._tls)
        self._address = address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._tls.wrap_socket(sock, server_hostname=self.host)


def _short(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def attempt(claimed: webhook_service.Claimed, policy: Policy) -> Outcome:
    """One POST of a claimed delivery; never raises."""
    started = time.monotonic()

    def done(status: int | None, error: str | None) -> Outcome:
        return Outcome(status, error, int((time.monotonic() - started) * 1000))

    try:
        target = webhook_service.check_url(
            claimed.url, private_ok=policy.private_ok, own=policy.own
        )
    except StemmaError as exc:
        return done(None, f"refused: {exc.message}")
    body = body_of(claimed.payload)
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "User-Agent": f"Stemma-Webhooks/{__version__}",
        "X-Stemma-Event": claimed.event,
        "X-Stemma-Delivery": claimed.delivery_id,
        "X-Stemma-Timestamp": timestamp,
        "X-Stemma-Signature": sign(claimed.secret, timestamp, body),
    }
    kind = _PinnedHTTPS if target.scheme == "https" else _PinnedHTTP
    error = "no address to connect to"
    for address in target.addresses:
        conn = kind(target.host, target.port, address, policy.timeout)
        try:
            conn.request("POST", target.path, body=body, headers=headers)
            resp = conn.getresponse()
            answer = resp.read(4096).decode("utf-8", "replace")
            if 200 <= resp.status < 300:
                return done(resp.status, None)
            return done(resp.status, _short(f"HTTP {resp.status} {resp.reason}: {answer}"))
        except (OSError, http.client.HTTPException) as exc:
            error = _short(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
            if isinstance(exc, ConnectionRefusedError | socket.gaierror):
                continue  # try the host's next address
            return done(None, error)
        finally:
            conn.close()
    return done(None, error)


class Deliverer:
    """Sends due deliveries from a store's database, ``policy.concurrency`` at a time.

    :meth:`drain` sends what is due now and returns; :meth:`run` keeps going until its
    stop event is set (the server's worker thread, ``stemma webhook deliver --watch``).
    Several deliverers over one database (replicas) never send one attempt twice.
    """

    def __init__(self, engine: Engine, policy: Policy | None = None) -> None:
        self.engine = engine
        self.policy = policy or Policy.from_env()
        self._slots = threading.BoundedSemaphore(self.policy.concurrency)
        self._pending: set[threading.Thread] = set()
        self._lock = threading.Lock()
        self.sent = {"succeeded": 0, "failed": 0, "retrying": 0}

    def _claim(self, limit: int) -> list[webhook_service.Claimed]:
        with read_tx(self.engine) as conn:
            if not webhook_service.due(conn):
                return []
        with write_tx(self.engine) as conn:
            return webhook_service.claim(conn, limit, self.policy.lease)

    def _send(self, claimed: webhook_service.Claimed) -> None:
        try:
            outcome = attempt(claimed, self.policy)
            with write_tx(self.engine) as conn:
                status = webhook_service.record_attempt(
                    conn,
                    claimed,
                    status_code=outcome.status_code,
                    error=outcome.error,
                    ms=outcome.ms,
                    max_attempts=self.policy.max_attempts,
                    retry_base=self.policy.retry_seconds,
                )
            if status is not None:
                with self._lock:
                    key = "retrying" if status == "pending" else status
                    self.sent[key] = self.sent.get(key, 0) + 1
            if outcome.error:
                log.info(
                    "webhook delivery %s (%s) attempt %d: %s",
                    claimed.delivery_id,
                    claimed.event,
                    claimed.attempt,
                    outcome.error,
                )
        except Exception:  # the loop must survive anything one delivery does
            log.exception("webhook delivery %s", claimed.delivery_id)
        finally:
            self._slots.release()
            with self._lock:
                self._pending.discard(threading.current_thread())

    def _free_slots(self) -> int:
        free = 0
        while self._slots.acquire(blocking=False):
            free += 1
        return free

    def step(self) -> int:
        """Claim as many due deliveries as there are free slots and start sending them;
        returns how many were started."""
        free = self._free_slots()
        try:
            claimed = self._claim(free) if free else []
        except BaseException:
            for _ in range(free):
                self._slots.release()
            raise
        for _ in range(free - len(claimed)):
            self._slots.release()
        for item in claimed:
            thread = threading.Thread(
                target=self._send, args=(item,), name="stemma-webhook-send", daemon=True
            )
            with self._lock:
                self._pending.add(thread)
            thread.start()
        return len(claimed)

    def wait(self, timeout: float | None = None) -> None:
        """Wait for the deliveries in flight."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._lock:
                threads = list(self._pending)
            if not threads:
                return
            for t in threads:
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                t.join(left)
            if deadline is not None and time.monotonic() >= deadline:
                return

    def drain(self) -> dict[str, int]:
        """Send deliveries until none is due (retries due later stay queued); returns
        how many attempts succeeded, failed for good, or will be retried."""
        while True:
            started = self.step()
            self.wait()
            if not started:
                return dict(self.sent)

    def run(self, stop: threading.Event) -> None:
        """Send deliveries as they fall due until ``stop`` is set."""
        last_prune, last_error = 0.0, 0.0
        while not stop.is_set():
            try:
                started = self.step()
                if time.monotonic() - last_prune > 3600:
                    with write_tx(self.engine) as conn:
                        webhook_service.prune(conn, KEEP_FINISHED)
                    last_prune = time.monotonic()
            except Exception as exc:  # the database may be restarting: try again later
                started = 0
                if time.monotonic() - last_error > 60:
                    log.warning("webhook worker: %s", exc)
                    last_error = time.monotonic()
            stop.wait(0.05 if started else self.policy.poll)

"""Webhooks: events queued with the change that causes them, sent signed by a worker to a
real HTTP receiver on loopback, retried with backoff up to a cap, and URLs that would
reach the server itself, a private address or a non-http scheme refused.

Loopback is a private address, refused unless STEMMA_WEBHOOK_ALLOW_PRIVATE=1: the tests
that deliver set it; :func:`test_url_rules` and the server test check the refusals.
"""

from __future__ import annotations

import hashlib
import hmac
import http.server
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from stemma.backend.embedded import EmbeddedBackend
from stemma.errors import NotFound, PermissionDenied, UsageError
from stemma.service import webhooks as webhook_service
from stemma.service.webhook_delivery import Deliverer, Policy, body_of, sign
from stemma.storage.database import write_tx
from tests.fixtures.accounts import as_user, make_user, open_store
from tests.fixtures.server import ServerProcess, free_port
from tests.test_access import log_artifact, log_run

ALL_EVENTS = [
    "artifact.version_created",
    "artifact.alias_moved",
    "run.finished",
    "report.saved",
]


# ------------------------------------------------------------------ a real receiver


class Receiver:
    """A threading HTTP server on loopback that records every POST and answers with the
    next of ``statuses`` (the last one repeats), once ``gate`` is open (a test closes it
    to hold a delivery in flight)."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes, float]] = []
        self.statuses = [200]
        self.gate = threading.Event()
        self.gate.set()
        self.got = threading.Condition()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                receiver.gate.wait(60)
                with receiver.got:
                    n = len(receiver.requests)
                    status = receiver.statuses[min(n, len(receiver.statuses) - 1)]
                    receiver.requests.append((dict(self.headers.items()), body, time.time()))
                    receiver.got.notify_all()
                self.send_response(status)
                self.send_header("content-type", "text/plain")
                self.end_headers()
                self.wfile.write(b"ok" if status < 300 else b"receiver says no")

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook?token=abc"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, n: int, timeout: float = 20.0) -> list[tuple[dict[str, str], bytes, float]]:
        with self.got:
            self.got.wait_for(lambda: len(self.requests) >= n, timeout)
            return list(self.requests)

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _h, body, _t in self.requests]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def private_ok(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STEMMA_WEBHOOK_ALLOW_PRIVATE", "1")


def _senders() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("stemma-webhook")]


@pytest.fixture(autouse=True)
def no_stray_sender() -> None:
    """No webhook worker of an earlier test may still be running: over the same database
    (a worker's PostgreSQL one) it would claim this test's deliveries with its own
    settings (no private targets, 30 s between attempts)."""
    deadline = time.monotonic() + 15
    while _senders() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _senders(), f"a webhook sender outlived its test: {_senders()}"


def verify(headers: dict[str, str], body: bytes, secret: str, tolerance: int = 300) -> dict:
    """What a CI job does (the README's snippet): check the timestamp and the HMAC."""
    timestamp = headers["X-Stemma-Timestamp"]
    if abs(time.time() - int(timestamp)) > tolerance:
        raise ValueError("stale delivery")
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    if not hmac.compare_digest("sha256=" + mac.hexdigest(), headers["X-Stemma-Signature"]):
        raise ValueError("bad signature")
    return json.loads(body)


def deliver_until(
    store: EmbeddedBackend, policy: Policy, done: Callable[[], bool], timeout: float = 20.0
) -> None:
    """Run a deliverer (as the server's worker does) until ``done()``."""
    deliverer = Deliverer(store.engine, policy)
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "deliveries did not settle in time"
        deliverer.drain()
        time.sleep(0.02)


def _open(store_dir: Path) -> EmbeddedBackend:
    """The test's store (SQLite, or the worker's PostgreSQL database)."""
    return open_store(store_dir, os.environ.get("STEMMA_DATABASE_URL"))


def fast(**overrides: Any) -> Policy:
    return Policy(private_ok=True, retry_seconds=0.05, timeout=5.0, **overrides)


# ------------------------------------------------------------------ URL rules (SSRF)


@pytest.mark.sqlite_only
def test_url_rules() -> None:
    check = webhook_service.check_url
    for url in (
        "ftp://example.com/x",
        "file:///etc/passwd",
        "gopher://1.1.1.1/",
        "javascript:alert(1)",
        "example.com/hook",
        "http://user:pw@93.184.215.14/",
        "http:///no-host",
    ):
        with pytest.raises(UsageError):
            check(url, private_ok=True)
    for url in (
        "http://127.0.0.1:8080/",
        "http://localhost/",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://10.1.2.3/",
        "http://172.16.0.1/",
        "http://192.168.1.10/",
        "http://169.254.169.254/latest/meta-data/",  # cloud metadata
        "http://100.64.0.1/",  # carrier-grade NAT
        "http://[fd00::1]/",
        "http://[fe80::1]/",
    ):
        with pytest.raises(UsageError, match="STEMMA_WEBHOOK_ALLOW_PRIVATE"):
            check(url, private_ok=False)
    with pytest.raises(UsageError):
        check("http://0.0.0.0:5280/", private_ok=True)  # "this host", even when allowed
    # Every address a name resolves to is checked, not only the first.
    with pytest.raises(UsageError, match=r"10\.0\.0\.7"):
        check(
            "https://ci.example.com/hook",
            private_ok=False,
            resolver=lambda host, port: ["93.184.215.14", "10.0.0.7"],
        )
    target = check(
        "https://ci.example.com:8443/hooks/stemma?x=1",
        private_ok=False,
        resolver=lambda host, port: ["93.184.215.14"],
    )
    assert (target.scheme, target.host, target.port, target.path) == (
        "https",
        "ci.example.com",
        8443,
        "/hooks/stemma?x=1",
    )
    assert check("http://93.184.215.14/", private_ok=False).addresses == ("93.184.215.14",)
    # The server itself: by the name or address it was reached at, or the address it
    # binds (every interface for 0.0.0.0), on its port; another port is another service.
    own = [("127.0.0.1", 5280)]
    for url in (
        "http://127.0.0.1:5280/api",
        "http://localhost:5280/",
        "http://[::ffff:127.0.0.1]:5280/",
    ):
        with pytest.raises(UsageError, match="this Stemma server"):
            check(url, private_ok=True, own=own)
    with pytest.raises(UsageError, match="this Stemma server"):
        check("http://127.0.0.1:5280/", private_ok=True, own=[("0.0.0.0", 5280)])
    with pytest.raises(UsageError, match="this Stemma server"):
        check(
            "https://stemma.example.com/api",
            private_ok=False,
            own=[("stemma.example.com", 443)],
            resolver=lambda host, port: ["93.184.215.14"],
        )
    assert check("http://127.0.0.1:5281/", private_ok=True, own=own).port == 5281


@pytest.mark.embedded_only
def test_registration_refuses_bad_urls(store_dir: Path) -> None:
    store = _open(store_dir)
    store.create_team("acme")
    for url, message in (
        ("http://127.0.0.1:9/hook", "STEMMA_WEBHOOK_ALLOW_PRIVATE"),
        ("http://localhost:9/hook", "STEMMA_WEBHOOK_ALLOW_PRIVATE"),
        ("ftp://93.184.215.14/hook", "http:// or https://"),
    ):
        with pytest.raises(UsageError, match=message):
            store.add_webhook("acme", url, ["run.finished"])
    with pytest.raises(UsageError, match="unknown webhook event"):
        store.add_webhook("acme", "http://93.184.215.14/", ["run.started"])
    with pytest.raises(UsageError, match="subscribe to it too"):
        store.add_webhook("acme", "http://93.184.215.14/", ["run.finished"], alias="production")
    with pytest.raises(UsageError, match="16 to 256"):
        store.add_webhook("acme", "http://93.184.215.14/", ["run.finished"], secret="short")
    assert store.list_webhooks("acme") == []
    store.close()


# ------------------------------------------------------------------ events and deliveries


@pytest.mark.embedded_only
def test_events_are_delivered_signed(
    store_dir: Path, tmp_path: Path, receiver: Receiver, private_ok: None
) -> None:
    store = _open(store_dir)
    store.create_team("acme")
    hook, secret = store.add_webhook("acme", receiver.url, ALL_EVENTS)
    assert secret.startswith("whsec_") and len(secret) > 40
    assert "secret" not in json.dumps(store.list_webhooks("acme"), default=str)

    run = log_run(store, "acme/vision/r1")  # run.finished
    log_artifact(store, tmp_path, "acme/vision/net", "v0", ["production"], run)
    store.save_report("acme", "vision", {"title": "weekly"})
    queued = store.webhook_deliveries("acme", hook["id"])
    assert sorted(d["event"] for d in queued) == sorted(
        ["run.finished", "artifact.version_created", "artifact.alias_moved", "report.saved"]
    )
    assert {d["status"] for d in queued} == {"pending"}
    assert receiver.requests == []  # nothing is sent by the change itself

    deliver_until(store, fast(), lambda: len(receiver.requests) >= 4)
    by_event = {}
    for headers, body, _at in receiver.requests:
        event = verify(headers, body, secret)  # as a CI job would
        assert headers["X-Stemma-Event"] == event["event"]
        assert headers["X-Stemma-Delivery"] == event["id"]
        assert headers["Content-Type"] == "application/json"
        with pytest.raises(ValueError, match="bad signature"):
            verify(headers, body, secret + "x")
        with pytest.raises(ValueError, match="bad signature"):
            verify(headers, body.replace(b"acme", b"acmf"), secret)
        by_event[event["event"]] = event
    assert set(by_event) == set(ALL_EVENTS)
    for event in by_event.values():
        assert event["team"] == "acme" and event["project"] == "vision"
        assert set(event) == {"id", "event", "created_at", "team", "project", "data"}
    assert by_event["run.finished"]["data"]["run"] == "acme/vision/r1"
    assert by_event["run.finished"]["data"]["state"] == "finished"
    created = by_event["artifact.version_created"]["data"]
    assert (created["artifact"], created["version"]) == ("acme/vision/net", "v0")
    assert created["path"] == "acme/vision/net:v0" and created["run"] == "acme/vision/r1"
    moved = by_event["artifact.alias_moved"]["data"]
    assert (moved["alias"], moved["from"], moved["to"]) == ("production", None, "v0")
    assert by_event["report.saved"]["data"]["title"] == "weekly"

    done = store.webhook_deliveries("acme", hook["id"])
    assert {d["status"] for d in done} == {"succeeded"}
    assert all(d["last_status_code"] == 200 and d["attempts"] == 1 for d in done)
    assert all(d["attempt_log"][0]["status_code"] == 200 for d in done)

    # A test delivery, then deleting the webhook takes its queue with it.
    ping = store.test_webhook("acme", hook["id"])
    assert ping["event"] == "ping" and ping["status"] == "pending"
    deliver_until(store, fast(), lambda: len(receiver.requests) >= 5)
    assert verify(*receiver.requests[-1][:2], secret)["event"] == "ping"
    store.delete_webhook("acme", hook["id"])
    assert store.list_webhooks("acme") == []
    with pytest.raises(NotFound):
        store.webhook_deliveries("acme", hook["id"])
    actions = [e["action"] for e in store.audit_log(entity="acme", action="webhook.")]
    assert actions == ["webhook.delete", "webhook.create"]
    store.close()


@pytest.mark.embedded_only
def test_alias_filter(store_dir: Path, tmp_path: Path, private_ok: None) -> None:
    store = _open(store_dir)
    store.create_team("acme")
    prod, _ = store.add_webhook(
        "acme", "http://127.0.0.1:9/prod", ["artifact.alias_moved"], alias="production"
    )
    every, _ = store.add_webhook("acme", "http://127.0.0.1:9/any", ["artifact.alias_moved"])
    ref = log_artifact(store, tmp_path, "acme/vision/net", "v0", ["staging"])
    assert store.webhook_deliveries("acme", prod["id"]) == []  # staging is not production
    assert [
        d["payload"]["data"]["alias"] for d in store.webhook_deliveries("acme", every["id"])
    ] == ["staging"]
    store.update_artifact(ref, {"aliases": ["staging", "production"]})
    [moved] = store.webhook_deliveries("acme", prod["id"])
    assert moved["payload"]["data"]["alias"] == "production"
    assert moved["payload"]["data"]["path"] == "acme/vision/net:v0"
    store.update_artifact(ref, {"aliases": ["staging"]})  # removed: `to` is null
    assert store.webhook_deliveries("acme", prod["id"])[0]["payload"]["data"]["to"] is None
    # A commit that does not change an alias sends nothing more (latest is not an alias
    # event); another team's events never reach acme's webhooks.
    log_artifact(store, tmp_path, "acme/vision/net", "v1")
    assert len(store.webhook_deliveries("acme", every["id"])) == 3
    log_artifact(store, tmp_path, "other/vision/net", "v0", ["production"])
    assert len(store.webhook_deliveries("acme", every["id"])) == 3
    store.close()


@pytest.mark.embedded_only
def test_retry_after_500_then_success(
    store_dir: Path, receiver: Receiver, private_ok: None
) -> None:
    store = _open(store_dir)
    store.create_team("acme")
    hook, secret = store.add_webhook("acme", receiver.url, ["run.finished"])
    receiver.statuses = [500, 200]
    log_run(store, "acme/vision/r1")

    def settled() -> bool:
        return store.webhook_deliveries("acme", hook["id"])[0]["status"] != "pending"

    deliver_until(store, fast(), settled)
    [d] = store.webhook_deliveries("acme", hook["id"])
    assert (d["status"], d["attempts"], d["last_status_code"]) == ("succeeded", 2, 200)
    assert [a["status_code"] for a in d["attempt_log"]] == [500, 200]
    assert "receiver says no" in d["attempt_log"][0]["error"]
    first, second = receiver.requests
    assert first[0]["X-Stemma-Delivery"] == second[0]["X-Stemma-Delivery"]  # one delivery
    assert first[1] == second[1]  # the same body, signed afresh
    assert verify(second[0], second[1], secret)["event"] == "run.finished"
    store.close()


@pytest.mark.embedded_only
def test_gives_up_after_the_cap(store_dir: Path, receiver: Receiver, private_ok: None) -> None:
    store = _open(store_dir)
    store.create_team("acme")
    hook, _ = store.add_webhook("acme", receiver.url, ["run.finished"])
    closed, _ = store.add_webhook("acme", f"http://127.0.0.1:{free_port()}/", ["run.finished"])
    receiver.statuses = [503]
    log_run(store, "acme/vision/r1")

    def settled() -> bool:
        return all(
            store.webhook_deliveries("acme", h["id"])[0]["status"] != "pending"
            for h in (hook, closed)
        )

    deliver_until(store, fast(max_attempts=3), settled)
    [d] = store.webhook_deliveries("acme", hook["id"])
    assert (d["status"], d["attempts"], d["last_status_code"]) == ("failed", 3, 503)
    assert d["finished_at"] is not None and d["next_attempt_at"] is None
    assert len(receiver.requests) == 3
    times = [t for _h, _b, t in receiver.requests]
    assert times[2] - times[0] > 0.1  # waited 0.05 s, then 0.1 s (+-25%)
    [refused] = store.webhook_deliveries("acme", closed["id"])
    assert refused["status"] == "failed" and refused["last_status_code"] is None
    assert "ConnectionRefused" in refused["last_error"]
    store.close()


@pytest.mark.sqlite_only
def test_backoff_schedule() -> None:
    delays = [webhook_service.retry_delay(n, 30.0) for n in range(1, 8)]
    for n, delay in enumerate(delays, start=1):
        assert 0.75 * 30 * 2 ** (n - 1) <= delay <= 1.25 * 30 * 2 ** (n - 1)
    assert 2700 < sum(30 * 2 ** (n - 1) for n in range(1, 8)) < 4000  # about an hour
    assert webhook_service.retry_delay(30, 30.0) <= 1.25 * webhook_service.MAX_DELAY
    assert sign("s", 1, b"{}") == "sha256=" + hmac.new(b"s", b"1.{}", hashlib.sha256).hexdigest()
    assert body_of({"b": 1, "a": "é"}) == '{"a":"é","b":1}'.encode()


@pytest.mark.embedded_only
def test_claims_never_overlap(store_dir: Path, private_ok: None) -> None:
    """Workers claiming at once (replicas) each get different deliveries."""
    store = _open(store_dir)
    store.create_team("acme")
    for i in range(3):
        store.add_webhook("acme", f"http://127.0.0.1:9/{i}", ["run.finished"])
    for i in range(8):
        log_run(store, f"acme/vision/r{i}")  # 8 runs x 3 webhooks
    claimed: list[int] = []
    lock = threading.Lock()
    start = threading.Barrier(4)

    def worker() -> None:
        start.wait()
        while True:
            with write_tx(store.engine) as conn:
                got = webhook_service.claim(conn, 2, lease=60)
            if not got:
                return
            with lock:
                claimed.extend(c.pk for c in got)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(claimed) == 24 and len(set(claimed)) == 24
    with write_tx(store.engine) as conn:
        assert webhook_service.claim(conn, 10, lease=60) == []  # leased, not due again yet
    store.close()


@pytest.mark.sqlite_only
def test_server_worker_stops_with_the_last_lifespan(store_dir: Path) -> None:
    """Lifespans entered at once (nested test clients over one app) share one worker,
    which stops when the last one ends: none is left running, claiming deliveries, after
    the application has stopped."""
    from fastapi.testclient import TestClient

    from stemma.server.app import create_app
    from stemma.server.config import ServerSettings

    before = set(threading.enumerate())
    app = create_app(ServerSettings.from_env(bind_host="127.0.0.1"))
    with TestClient(app) as outer:
        worker = app.state.webhook_worker
        with TestClient(app) as inner:
            assert app.state.webhook_worker is worker
            assert inner.get("/healthz").status_code == 200
        assert not worker.stop.is_set() and worker.thread.is_alive()  # outer still serves
        assert outer.get("/healthz").status_code == 200
    assert worker.stop.is_set() and app.state.webhook_worker is None

    def started() -> list[threading.Thread]:
        return [t for t in _senders() if t not in before]

    deadline = time.monotonic() + 15
    while started() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert started() == []
    app.state.store.close()


# ------------------------------------------------------------------ who may


@pytest.mark.embedded_only
def test_only_team_admins_manage_webhooks(store_dir: Path, private_ok: None) -> None:
    store = _open(store_dir)
    for name in ("ann", "max", "vic", "out"):
        make_user(store, f"{name}@example.com")
    ann = as_user(store, "ann")
    ann.create_team("acme")
    ann.add_member("acme", "max@example.com", "member")
    ann.add_member("acme", "vic@example.com", "viewer")
    hook, _ = ann.add_webhook("acme", "http://127.0.0.1:9/", ["run.finished"])
    for name in ("max", "vic"):
        who = as_user(store, name)
        with pytest.raises(PermissionDenied, match="team admin"):
            who.add_webhook("acme", "http://127.0.0.1:9/", ["run.finished"])
        for method, args in (
            ("list_webhooks", ("acme",)),
            ("delete_webhook", ("acme", hook["id"])),
            ("test_webhook", ("acme", hook["id"])),
            ("webhook_deliveries", ("acme", hook["id"])),
        ):
            with pytest.raises(PermissionDenied):
                getattr(who, method)(*args)
    out = as_user(store, "out")
    with pytest.raises(NotFound):
        out.add_webhook("acme", "http://127.0.0.1:9/", ["run.finished"])
    mine, _ = out.add_webhook("out", "http://127.0.0.1:9/", ["run.finished"])  # their own
    with pytest.raises(NotFound):  # another team's webhook, by id under their entity
        out.delete_webhook("out", hook["id"])
    with pytest.raises(NotFound):
        ann.delete_webhook("acme", mine["id"])
    assert [h["id"] for h in ann.list_webhooks("acme")] == [hook["id"]]
    store.close()


# ------------------------------------------------------------------ through a server


@pytest.mark.sqlite_only
def test_server_sends_in_the_background(
    store_dir: Path, tmp_path: Path, receiver: Receiver
) -> None:
    """The server's worker delivers; a slow receiver never slows the request; the API
    refuses the server's own URL, non-http schemes, and anyone but a team admin."""
    store = _open(store_dir)
    people = {n: make_user(store, f"{n}@example.com") for n in ("ann", "max", "vic", "out")}
    ann = as_user(store, "ann")
    ann.create_team("acme")
    ann.add_member("acme", "max@example.com", "member")
    ann.add_member("acme", "vic@example.com", "viewer")
    ref = log_artifact(ann, tmp_path, "acme/vision/net", "v0", ["staging"])
    server = ServerProcess(
        store_dir,
        extra_env={"STEMMA_WEBHOOK_ALLOW_PRIVATE": "1", "STEMMA_WEBHOOK_RETRY_SECONDS": "0.2"},
    ).start()
    try:
        api = f"{server.url}/api/v1/teams/acme/webhooks"

        def as_(name: str) -> dict[str, str]:
            return {"authorization": f"Bearer {people[name]['key']}"}

        body = {"url": receiver.url, "events": ["artifact.alias_moved"], "alias": "production"}
        assert httpx.post(api, json=body, headers=as_("max")).status_code == 403
        assert httpx.post(api, json=body, headers=as_("vic")).status_code == 403
        assert httpx.post(api, json=body, headers=as_("out")).status_code == 404
        assert httpx.post(api, json=body).status_code == 401
        for url in (
            f"{server.url}/api/v1/whoami",
            f"http://localhost:{server.port}/hook",
            "ftp://127.0.0.1/hook",
            "file:///etc/passwd",
        ):
            refused = httpx.post(api, json={**body, "url": url}, headers=as_("ann"))
            assert refused.status_code == 400, url
            assert refused.json()["code"] == "usage_error"
        made = httpx.post(api, json=body, headers=as_("ann"))
        assert made.status_code == 201
        secret, hook_id = made.json()["secret"], made.json()["webhook"]["id"]
        listed = httpx.get(api, headers=as_("ann")).json()
        assert [h["id"] for h in listed] == [hook_id] and "secret" not in listed[0]

        # The receiver holds every delivery until the test opens its gate, after the alias
        # move has answered: were the move waiting for its webhook, it could never answer.
        receiver.gate.clear()
        receiver.statuses = [500, 200]
        move = f"{server.url}/api/v1/artifacts/acme/vision/net/v{ref.version}"
        r = httpx.patch(move, json={"add_aliases": ["production"]}, headers=as_("ann"), timeout=30)
        assert r.status_code == 200, r.text
        assert receiver.requests == []  # nothing answered yet: the move did not wait
        receiver.gate.set()
        first = receiver.wait_for(1, timeout=20)
        assert verify(first[0][0], first[0][1], secret)["data"]["to"] == f"v{ref.version}"

        second = receiver.wait_for(2, timeout=20)  # retried after the 500
        assert second[1][0]["X-Stemma-Delivery"] == second[0][0]["X-Stemma-Delivery"]
        deliveries = f"{api}/{hook_id}/deliveries"
        deadline = time.monotonic() + 10
        while True:
            [d] = httpx.get(deliveries, headers=as_("ann")).json()
            if d["status"] != "pending" or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert (d["status"], d["attempts"], d["last_status_code"]) == ("succeeded", 2, 200)
        assert httpx.get(deliveries, headers=as_("max")).status_code == 403

        # Moving staging does not fire the production webhook; a test ping does arrive.
        r = httpx.patch(move, json={"remove_aliases": ["staging"]}, headers=as_("ann"))
        assert r.status_code == 200
        ping = httpx.post(f"{api}/{hook_id}/test", headers=as_("ann"))
        assert ping.status_code == 201 and ping.json()["event"] == "ping"
        third = receiver.wait_for(3, timeout=20)
        assert verify(third[2][0], third[2][1], secret)["event"] == "ping"
        assert len(receiver.wait_for(4, timeout=1.0)) == 3  # nothing for staging
        assert httpx.delete(f"{api}/{hook_id}", headers=as_("vic")).status_code == 403
        assert httpx.delete(f"{api}/{hook_id}", headers=as_("ann")).status_code == 204
        assert httpx.get(api, headers=as_("ann")).json() == []
    finally:
        server.stop()
        store.close()


@pytest.mark.sqlite_only
def test_cli_and_embedded_deliver(store_dir: Path, receiver: Receiver, private_ok: None) -> None:
    from click.testing import CliRunner

    from stemma.cli.main import cli

    store = _open(store_dir)
    store.create_team("acme")
    runner = CliRunner()
    added = runner.invoke(cli, ["webhook", "add", "acme", receiver.url, "-e", "run.finished"])
    assert added.exit_code == 0, added.output
    secret = next(
        line.split(": ", 1)[1] for line in added.output.splitlines() if "signing secret" in line
    )
    listed = runner.invoke(cli, ["webhook", "ls", "acme"])
    assert "run.finished" in listed.output and secret not in listed.output
    log_run(store, "acme/vision/r1")
    sent = runner.invoke(cli, ["webhook", "deliver"])
    assert sent.exit_code == 0 and "1 delivered" in sent.output, sent.output
    [(headers, body, _t)] = receiver.requests
    assert verify(headers, body, secret)["data"]["run"] == "acme/vision/r1"
    assert runner.invoke(cli, ["webhook", "test", "acme", "1"]).exit_code == 0
    shown = runner.invoke(cli, ["webhook", "deliveries", "acme", "1"])
    assert "succeeded" in shown.output and "pending" in shown.output
    refused = runner.invoke(cli, ["webhook", "add", "acme", "gopher://x/", "-e", "run.finished"])
    assert refused.exit_code == 1 and "http:// or https://" in refused.output
    assert runner.invoke(cli, ["webhook", "rm", "acme", "1"]).exit_code == 0
    assert "no webhooks" in runner.invoke(cli, ["webhook", "ls", "acme"]).output
    store.close()

"""The authorization matrix: every API route, called by every kind of caller, against a
real server process with accounts.

The routes come from the server's own route table (its OpenAPI document); each must
declare an access rule (``x-stemma-access``) and have a request recipe here, so a new
route without either fails this test. The expected answer follows from the rule:

    anonymous -> 401 everywhere; outsider -> 404 on anything of a team it is not in
    (as if it did not exist); viewer -> reads only (403 on writes); member -> reads and
    writes (403 on admin routes); team admin -> everything of its team; service
    accounts -> as their role; instance admin -> everything.
"""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import msgpack
import pytest
import zstandard

from stemma.backend.embedded import EmbeddedBackend
from stemma.wire.history import encode_rows
from stemma.wire.manifest import Entry, Manifest
from tests.fixtures.accounts import as_user, make_user, open_store
from tests.fixtures.server import ServerProcess
from tests.test_access import log_artifact, log_run
from tests.test_media import log_media

pytestmark = pytest.mark.postgresql_only  # the production database; one server for all

ROLES = (
    "anonymous",
    "outsider",
    "viewer",
    "sa_viewer",
    "member",
    "sa_member",
    "team_admin",
    "instance_admin",
)
WRITERS = {"member", "sa_member", "team_admin", "instance_admin"}
READERS = WRITERS | {"viewer", "sa_viewer"}
ADMINS = {"team_admin", "instance_admin"}
USERNAME = {
    "outsider": "out",
    "viewer": "vic",
    "sa_viewer": "ci-view@acme",
    "member": "max",
    "sa_member": "ci-prod@acme",
    "team_admin": "ann",
    "instance_admin": "root",
}


def expected(rule: str, role: str) -> str:
    """The class of answer a role gets from a route with this rule."""
    if rule == "public":
        return "ok"
    if role == "anonymous":
        return "401"
    if rule == "authenticated":
        return "answered"  # about the caller itself: any non-401, non-5xx answer
    if rule == "instance-admin":
        return "ok" if role == "instance_admin" else "403"
    if role == "outsider":
        return "404"
    needed = {"read": READERS, "write": WRITERS, "admin": ADMINS}[rule]
    return "ok" if role in needed else "403"


class World:
    """Team acme (ann admin, max member, vic viewer, bots ci-prod/ci-view), an outsider
    with its own entity, an instance admin; a run and a model in acme/vision."""

    def __init__(self, store: EmbeddedBackend, tmp: Path) -> None:
        self.store, self.tmp = store, tmp
        people = {
            n: make_user(store, f"{n}@example.com", admin=n == "root")
            for n in ("root", "ann", "max", "vic", "out")
        }
        ann = as_user(store, "ann")
        ann.create_team("acme")
        ann.add_member("acme", "max@example.com", "member")
        ann.add_member("acme", "vic@example.com", "viewer")
        _i, ci = ann.create_service_account("acme", "ci-prod", "member")
        _i, view = ann.create_service_account("acme", "ci-view", "viewer")
        self.keys = {
            "outsider": people["out"]["key"],
            "viewer": people["vic"]["key"],
            "member": people["max"]["key"],
            "team_admin": people["ann"]["key"],
            "instance_admin": people["root"]["key"],
            "sa_member": ci,
            "sa_viewer": view,
        }
        self.admin = ann
        self.run = log_run(ann, "acme/vision/r1")
        self.net = log_artifact(ann, tmp, "acme/vision/net", "v0", ["staging"], self.run)
        self.blob = b"matrix blob"
        f = tmp / "blob.bin"
        f.write_bytes(self.blob)
        self.digest = store.store_files([(f, None)])[0][0]
        self.media_digest = log_media(ann, tmp, "acme/vision/m1")  # a run with an image
        self.report = ann.save_report("acme", "vision", {"title": "matrix"})["id"]

    def as_role(self, role: str) -> EmbeddedBackend:
        """The store acting as ``role`` when it may write in acme, else as the admin
        (targets a role will delete or decide are made by someone who can)."""
        if role in WRITERS:
            return as_user(self.store, USERNAME[role])
        return self.admin

    def fresh(self) -> str:
        return uuid.uuid4().hex[:10]


def _frame(run_id: str) -> dict[str, Any]:
    now = time.time()
    events = [
        {"t": "run", "name": run_id, "config": {}, "tags": [], "created_at": now},
        encode_rows([(0, now, 0.0, {"x": 1.0})]) | {"t": "history"},
    ]
    body = msgpack.packb(
        {"spool_id": f"s-{run_id}", "start": 0, "end": 10, "events": events}, use_bin_type=True
    )
    return {
        "content": zstandard.ZstdCompressor().compress(body),
        "headers": {"content-type": "application/x-msgpack", "content-encoding": "zstd"},
    }


Recipe = Callable[[World, str], dict[str, Any]]
WEBHOOK_URL = "http://127.0.0.1:9/matrix"
V = "/api/v1"
NET = {"entity": "acme", "project": "vision", "name": "net", "version": 0}


def _delete_run(w: World, role: str) -> dict[str, Any]:
    ref = log_run(w.as_role(role), f"acme/vision/d{w.fresh()}")
    return {"url": f"{V}/runs/acme/vision/{ref.run_id}"}


def _delete_version(w: World, role: str) -> dict[str, Any]:
    ref = log_artifact(w.admin, w.tmp, "acme/vision/net", w.fresh())
    return {"url": f"{V}/artifacts/acme/vision/net/v{ref.version}"}


def _revoke_key(w: World, role: str) -> dict[str, Any]:
    user = USERNAME.get(role, "max")
    info, _key = w.store.create_api_key(user, name="to-revoke")
    return {"url": f"{V}/keys/{info['prefix']}"}


def _remove_member(w: World, role: str) -> dict[str, Any]:
    email = f"gone-{w.fresh()}@example.com"
    w.admin.add_member("acme", email, "viewer")
    return {"url": f"{V}/teams/acme/members/{email}"}


def _delete_bot(w: World, role: str) -> dict[str, Any]:
    name = f"bot-{w.fresh()}"
    w.admin.create_service_account("acme", name, "viewer")
    return {"url": f"{V}/teams/acme/service-accounts/{name}"}


def _decide(w: World, role: str) -> dict[str, Any]:
    req = w.admin.request_promotion(w.net, f"gold-{w.fresh()}")
    return {
        "url": f"{V}/projects/acme/vision/promotions/{req['id']}/decision",
        "json": {"approve": False, "comment": "not this one"},
    }


def _delete_report(w: World, role: str) -> dict[str, Any]:
    made = w.admin.save_report("acme", "vision", {"title": f"to delete {w.fresh()}"})
    return {"url": f"{V}/reports/{made['id']}"}


def _webhook(w: World, fresh: bool = False) -> int:
    """A webhook of acme made by its admin (to a closed loopback port: private targets
    are allowed here, in this process and in the matrix's server)."""
    if fresh or not hasattr(w, "webhook"):
        os.environ["STEMMA_WEBHOOK_ALLOW_PRIVATE"] = "1"
        try:
            hook, _secret = w.admin.add_webhook("acme", WEBHOOK_URL, ["report.saved"])
        finally:
            del os.environ["STEMMA_WEBHOOK_ALLOW_PRIVATE"]
        if fresh:
            return int(hook["id"])
        w.webhook = int(hook["id"])  # type: ignore[attr-defined]
    return int(w.webhook)  # type: ignore[attr-defined]


def _commit(w: World, role: str) -> dict[str, Any]:
    manifest = Manifest([Entry("f.bin", w.digest, len(w.blob))]).to_json()
    return {
        "url": f"{V}/artifacts/acme/vision/net/versions",
        "json": {"type": "model", "manifest": manifest},
    }


RECIPES: dict[tuple[str, str], Recipe] = {
    ("POST", "/runs/{entity}/{project}/{run_id}/frames"): lambda w, r: {
        "url": f"{V}/runs/acme/vision/f{w.fresh()}/frames",
        **_frame(f"f{w.fresh()}"),
    },
    ("GET", "/runs/{entity}/{project}/{run_id}/spools/{spool_id}"): lambda w, r: {
        "url": f"{V}/runs/acme/vision/r1/spools/spool-r1"
    },
    ("POST", "/runs/{entity}/{project}/{run_id}/heartbeat"): lambda w, r: {
        "url": f"{V}/runs/acme/vision/r1/heartbeat"
    },
    ("GET", "/runs/{entity}/{project}/{run_id}"): lambda w, r: {"url": f"{V}/runs/acme/vision/r1"},
    ("PATCH", "/runs/{entity}/{project}/{run_id}"): lambda w, r: {
        "url": f"{V}/runs/acme/vision/r1",
        "json": {"notes": f"edited by {r}"},
    },
    ("DELETE", "/runs/{entity}/{project}/{run_id}"): _delete_run,
    ("GET", "/projects/{entity}/{project}/runs"): lambda w, r: {
        "url": f"{V}/projects/acme/vision/runs"
    },
    ("GET", "/projects/{entity}/{project}/runs/count"): lambda w, r: {
        "url": f"{V}/projects/acme/vision/runs/count"
    },
    ("GET", "/projects"): lambda w, r: {"url": f"{V}/projects"},
    ("GET", "/runs/{entity}/{project}/{run_id}/history/keys"): lambda w, r: {
        "url": f"{V}/runs/acme/vision/r1/history/keys"
    },
    ("GET", "/runs/{entity}/{project}/{run_id}/history"): lambda w, r: {
        "url": f"{V}/runs/acme/vision/r1/history"
    },
    ("POST", "/projects/{entity}/{project}/histories"): lambda w, r: {
        "url": f"{V}/projects/acme/vision/histories",
        "json": {"run_ids": ["r1"], "keys": ["loss"]},
    },
    ("GET", "/runs/{entity}/{project}/{run_id}/media"): lambda w, r: {
        "url": f"{V}/runs/acme/vision/m1/media",
        "params": {"key": "sample"},
    },
    ("GET", "/runs/{entity}/{project}/{run_id}/media/{digest}"): lambda w, r: {
        "url": f"{V}/runs/acme/vision/m1/media/{w.media_digest}"
    },
    ("POST", "/blobs/missing"): lambda w, r: {
        "url": f"{V}/blobs/missing",
        "json": {"digests": [w.digest]},
    },
    ("POST", "/blobs/uploads"): lambda w, r: {
        "url": f"{V}/blobs/uploads",
        "json": {"blobs": [{"digest": w.digest, "size": len(w.blob)}]},
    },
    ("PUT", "/blobs/{digest}"): lambda w, r: {
        "url": f"{V}/blobs/{hashlib.sha256(r.encode()).hexdigest()}",
        "content": r.encode(),
        "headers": {"content-type": "application/octet-stream"},
    },
    ("GET", "/blobs/{digest}"): lambda w, r: {"url": f"{V}/blobs/{w.digest}"},
    ("POST", "/blobs/register"): lambda w, r: {
        "url": f"{V}/blobs/register",
        "json": {"blobs": [{"digest": w.digest, "size": len(w.blob)}]},
    },
    ("POST", "/blobs/multipart/complete"): lambda w, r: {
        "url": f"{V}/blobs/multipart/complete",
        "json": {"digest": w.digest, "upload_id": "x", "parts": []},
    },
    ("POST", "/blobs/verify"): lambda w, r: {
        "url": f"{V}/blobs/verify",
        "json": {"digests": [w.digest]},
    },
    ("POST", "/chunks/missing"): lambda w, r: {
        "url": f"{V}/chunks/missing",
        "json": {"files": [{"digest": w.digest, "size": len(w.blob)}], "chunks": [w.digest]},
    },
    ("POST", "/chunks/packs"): lambda w, r: {
        "url": f"{V}/chunks/packs",
        "json": {"packs": [hashlib.sha256(f"no such pack {r}".encode()).hexdigest()]},
    },
    ("POST", "/chunks/files"): lambda w, r: {
        "url": f"{V}/chunks/files",
        "json": {
            "digest": hashlib.sha256(f"no such file {r}".encode()).hexdigest(),
            "size": 1,
            "chunks": [[hashlib.sha256(f"no such chunk {r}".encode()).hexdigest(), 1]],
        },
    },
    ("GET", "/chunks/files/{digest}"): lambda w, r: {"url": f"{V}/chunks/files/{w.digest}"},
    ("POST", "/artifacts/{entity}/{project}/{name}/versions"): _commit,
    ("GET", "/artifacts/{entity}/{project}/{name}/versions"): lambda w, r: {
        "url": f"{V}/artifacts/acme/vision/net/versions"
    },
    ("GET", "/artifacts/{entity}/{project}/{name}/alias-history"): lambda w, r: {
        "url": f"{V}/artifacts/acme/vision/net/alias-history"
    },
    ("GET", "/artifacts/{entity}/{project}/{name}/{selector}"): lambda w, r: {
        "url": f"{V}/artifacts/acme/vision/net/staging"
    },
    ("PATCH", "/artifacts/{entity}/{project}/{name}/{version}"): lambda w, r: {
        "url": f"{V}/artifacts/acme/vision/net/v0",
        "json": {"description": f"described by {r}"},
    },
    ("DELETE", "/artifacts/{entity}/{project}/{name}/{version}"): _delete_version,
    ("GET", "/artifacts/{entity}/{project}/{name}/{version}/runs"): lambda w, r: {
        "url": f"{V}/artifacts/acme/vision/net/v0/runs"
    },
    ("GET", "/artifacts/{entity}/{project}/{name}/{version}/lineage"): lambda w, r: {
        "url": f"{V}/artifacts/acme/vision/net/v0/lineage"
    },
    ("POST", "/artifact-diff"): lambda w, r: {
        "url": f"{V}/artifact-diff",
        "json": {"a": NET, "b": NET},
    },
    ("POST", "/runs/{entity}/{project}/{run_id}/used"): lambda w, r: {
        "url": f"{V}/runs/acme/vision/r1/used",
        "json": NET,
    },
    ("GET", "/runs/{entity}/{project}/{run_id}/artifacts"): lambda w, r: {
        "url": f"{V}/runs/acme/vision/r1/artifacts"
    },
    ("GET", "/projects/{entity}/{project}/artifacts"): lambda w, r: {
        "url": f"{V}/projects/acme/vision/artifacts"
    },
    ("GET", "/projects/{entity}/{project}/artifact-versions"): lambda w, r: {
        "url": f"{V}/projects/acme/vision/artifact-versions",
        "params": {"type": "model", "filters": '{"aliases": "staging"}', "order": "version"},
    },
    ("GET", "/projects/{entity}/{project}/artifact-versions/count"): lambda w, r: {
        "url": f"{V}/projects/acme/vision/artifact-versions/count",
        "params": {"name": "net", "filters": '{"version": 0}'},
    },
    ("GET", "/projects/{entity}/{project}/artifact-types"): lambda w, r: {
        "url": f"{V}/projects/acme/vision/artifact-types"
    },
    ("GET", "/projects/{entity}/{project}/protected-aliases"): lambda w, r: {
        "url": f"{V}/projects/acme/vision/protected-aliases"
    },
    ("PUT", "/projects/{entity}/{project}/protected-aliases"): lambda w, r: {
        "url": f"{V}/projects/acme/vision/protected-aliases",
        "json": {"aliases": ["production"]},
    },
    ("GET", "/projects/{entity}/{project}/retention"): lambda w, r: {
        "url": f"{V}/projects/acme/vision/retention"
    },
    ("PUT", "/projects/{entity}/{project}/retention"): lambda w, r: {
        "url": f"{V}/projects/acme/vision/retention",
        "json": {"keep_last": 50},
    },
    ("POST", "/admin/gc"): lambda w, r: {"url": f"{V}/admin/gc", "json": {"dry_run": True}},
    ("GET", "/storage"): lambda w, r: {"url": f"{V}/storage"},
    ("GET", "/users"): lambda w, r: {"url": f"{V}/users"},
    ("POST", "/users"): lambda w, r: {
        "url": f"{V}/users",
        "json": {"email": f"new-{w.fresh()}@example.com"},
    },
    ("PATCH", "/users/{user}"): lambda w, r: {
        "url": f"{V}/users/out",
        "json": {"disabled": False},
    },
    ("POST", "/users/{user}/password"): lambda w, r: {
        "url": f"{V}/users/{USERNAME.get(r, 'max')}/password",
        "json": {},
    },
    ("GET", "/keys"): lambda w, r: {"url": f"{V}/keys"},
    ("POST", "/keys"): lambda w, r: {"url": f"{V}/keys", "json": {"name": "matrix"}},
    ("DELETE", "/keys/{prefix}"): _revoke_key,
    ("GET", "/teams"): lambda w, r: {"url": f"{V}/teams"},
    ("POST", "/teams"): lambda w, r: {"url": f"{V}/teams", "json": {"name": f"t-{w.fresh()}"}},
    ("GET", "/teams/{team}"): lambda w, r: {"url": f"{V}/teams/acme"},
    ("PUT", "/teams/{team}/members/{user}"): lambda w, r: {
        "url": f"{V}/teams/acme/members/inv-{w.fresh()}@example.com",
        "json": {"role": "viewer"},
    },
    ("DELETE", "/teams/{team}/members/{user}"): _remove_member,
    ("POST", "/teams/{team}/service-accounts"): lambda w, r: {
        "url": f"{V}/teams/acme/service-accounts",
        "json": {"name": f"sa-{w.fresh()}", "role": "viewer"},
    },
    ("DELETE", "/teams/{team}/service-accounts/{name}"): _delete_bot,
    ("GET", "/teams/{team}/audit"): lambda w, r: {"url": f"{V}/teams/acme/audit"},
    ("PUT", "/projects/{entity}/{project}/visibility"): lambda w, r: {
        "url": f"{V}/projects/acme/vision/visibility",
        "json": {"visibility": "team"},
    },
    ("POST", "/artifacts/{entity}/{project}/{name}/{version}/promotions"): lambda w, r: {
        "url": f"{V}/artifacts/acme/vision/net/v0/promotions",
        "json": {"alias": f"gold-{w.fresh()}"},
    },
    ("GET", "/projects/{entity}/{project}/promotions"): lambda w, r: {
        "url": f"{V}/projects/acme/vision/promotions"
    },
    ("POST", "/projects/{entity}/{project}/promotions/{request_id}/decision"): _decide,
    ("GET", "/projects/{entity}/{project}/reports"): lambda w, r: {
        "url": f"{V}/projects/acme/vision/reports"
    },
    ("POST", "/projects/{entity}/{project}/reports"): lambda w, r: {
        "url": f"{V}/projects/acme/vision/reports",
        "json": {"spec": {"title": f"made by {r}"}},
    },
    ("GET", "/reports/{report_id}"): lambda w, r: {
        "url": f"{V}/reports/{w.report}",
        "params": {"revision": 1},
    },
    ("PUT", "/reports/{report_id}"): lambda w, r: {
        "url": f"{V}/reports/{w.report}",
        "json": {"spec": {"title": f"edited by {r}", "blocks": [{"type": "toc"}]}},
    },
    ("DELETE", "/reports/{report_id}"): _delete_report,
    ("GET", "/reports/{report_id}/revisions"): lambda w, r: {
        "url": f"{V}/reports/{w.report}/revisions"
    },
    ("PUT", "/reports/{report_id}/share"): lambda w, r: {
        "url": f"{V}/reports/{w.report}/share",
        "json": {"enabled": True},
    },
    ("GET", "/projects/{entity}/{project}/report-sharing"): lambda w, r: {
        "url": f"{V}/projects/acme/vision/report-sharing"
    },
    ("PUT", "/projects/{entity}/{project}/report-sharing"): lambda w, r: {
        "url": f"{V}/projects/acme/vision/report-sharing",
        "json": {"allowed": True},
    },
    ("GET", "/teams/{team}/webhooks"): lambda w, r: {"url": f"{V}/teams/acme/webhooks"},
    ("POST", "/teams/{team}/webhooks"): lambda w, r: {
        "url": f"{V}/teams/acme/webhooks",
        "json": {"url": WEBHOOK_URL, "events": ["report.saved"]},
    },
    ("DELETE", "/teams/{team}/webhooks/{webhook_id}"): lambda w, r: {
        "url": f"{V}/teams/acme/webhooks/{_webhook(w, fresh=True)}"
    },
    ("POST", "/teams/{team}/webhooks/{webhook_id}/test"): lambda w, r: {
        "url": f"{V}/teams/acme/webhooks/{_webhook(w)}/test"
    },
    ("GET", "/teams/{team}/webhooks/{webhook_id}/deliveries"): lambda w, r: {
        "url": f"{V}/teams/acme/webhooks/{_webhook(w)}/deliveries"
    },
    ("GET", "/audit"): lambda w, r: {"url": f"{V}/audit"},
    ("GET", "/audit/verify"): lambda w, r: {"url": f"{V}/audit/verify"},
    ("GET", "/whoami"): lambda w, r: {"url": f"{V}/whoami"},
}


def _classify(status: int) -> str:
    if 200 <= status < 400:
        return "ok"
    return str(status)


@pytest.fixture
def served_world(store_dir: Path, tmp_path: Path) -> tuple[World, ServerProcess]:
    db = os.environ["STEMMA_DATABASE_URL"]
    store = open_store(store_dir, db)
    world = World(store, tmp_path)
    server = ServerProcess(
        store_dir, database_url=db, extra_env={"STEMMA_WEBHOOK_ALLOW_PRIVATE": "1"}
    ).start()
    yield world, server  # type: ignore[misc]
    server.stop()
    store.close()


def test_every_route_declares_a_rule_and_has_a_recipe(
    served_world: tuple[World, ServerProcess],
) -> None:
    _world, server = served_world
    doc = httpx.get(f"{server.url}/api/v1/openapi.json").json()
    routes = {
        (method.upper(), path.removeprefix("/api/v1")): op
        for path, ops in doc["paths"].items()
        for method, op in ops.items()
    }
    missing_rule = [r for r, op in routes.items() if "x-stemma-access" not in op]
    assert not missing_rule, f"routes without an access rule: {missing_rule}"
    assert set(routes) == set(RECIPES), (
        f"routes without a recipe here: {sorted(set(routes) - set(RECIPES))}; "
        f"recipes for routes that no longer exist: {sorted(set(RECIPES) - set(routes))}"
    )


def test_authorization_matrix(served_world: tuple[World, ServerProcess]) -> None:
    world, server = served_world
    doc = httpx.get(f"{server.url}/api/v1/openapi.json").json()
    failures: list[str] = []
    answered = 0
    with httpx.Client(base_url=server.url, timeout=60, follow_redirects=False) as client:
        for path, ops in doc["paths"].items():
            for method, op in ops.items():
                key = (method.upper(), path.removeprefix("/api/v1"))
                rule = op["x-stemma-access"]
                for role in ROLES:
                    want = expected(rule, role)
                    request = RECIPES[key](world, role)
                    headers = dict(request.pop("headers", {}))
                    if role != "anonymous":
                        headers["authorization"] = f"Bearer {world.keys[role]}"
                    resp = client.request(method.upper(), headers=headers, **request)
                    answered += 1
                    got = _classify(resp.status_code)
                    ok = (
                        resp.status_code < 500 and resp.status_code != 401
                        if want == "answered"
                        else got == want
                    )
                    if not ok:
                        failures.append(
                            f"{method.upper()} {path} [{rule}] as {role}: expected {want}, "
                            f"got {resp.status_code} {resp.text[:160]}"
                        )
                    if resp.status_code in (401, 403, 404):
                        assert resp.json()["code"] in ("unauthenticated", "forbidden", "not_found")
    assert answered == len(RECIPES) * len(ROLES)
    assert not failures, f"{len(failures)} of {answered} answers were wrong:\n" + "\n".join(
        failures
    )


def test_revoked_key_fails_on_the_next_request(served_world: tuple[World, ServerProcess]) -> None:
    world, server = served_world
    key = world.keys["member"]
    auth = {"authorization": f"Bearer {key}"}
    assert httpx.get(f"{server.url}/api/v1/whoami", headers=auth).json()["user"] == "max"
    httpx.delete(f"{server.url}/api/v1/keys/{key.split('_')[1]}", headers=auth).raise_for_status()
    refused = httpx.get(f"{server.url}/api/v1/whoami", headers=auth)
    assert refused.status_code == 401
    assert refused.json()["message"] == "invalid, revoked or expired API key"
    assert refused.headers["www-authenticate"].startswith("Bearer")


def test_malformed_keys_get_one_answer(served_world: tuple[World, ServerProcess]) -> None:
    import base64

    world, server = served_world
    good = world.keys["viewer"]
    basic = base64.b64encode(f"api:{good}".encode()).decode()
    assert (
        httpx.get(
            f"{server.url}/api/v1/whoami", headers={"authorization": f"Basic {basic}"}
        ).json()["user"]
        == "vic"
    )
    messages = set()
    for header in (
        "Bearer",
        "Bearer x",
        f"Bearer {good[:-1]}",
        f"Bearer {good}0",
        f"Bearer stm_{'0' * 12}_{good.split('_', 2)[2]}",
        f"Token {good}",
        "Basic !!!",
        f"Bearer {good.upper()}",
    ):
        resp = httpx.get(f"{server.url}/api/v1/whoami", headers={"authorization": header})
        assert resp.status_code == 401, header
        messages.add(resp.json()["message"])
    assert messages == {"invalid, revoked or expired API key"}  # never which part was wrong

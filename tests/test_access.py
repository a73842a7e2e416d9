"""The access rules, checked in the service layer with real accounts in a real store.

Each principal gets the store bound to it (what the server does per request); the
server's own enforcement of the same rules is the authorization matrix's job.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, select, update

from stemma.backend.embedded import EmbeddedBackend
from stemma.errors import (
    AlreadyExists,
    Conflict,
    NotFound,
    PermissionDenied,
    Unauthenticated,
    UsageError,
)
from stemma.service import identity
from stemma.storage.database import read_tx, write_tx
from stemma.storage.models import audit_log, users
from stemma.wire.history import encode_rows
from stemma.wire.manifest import Entry, Manifest
from stemma.wire.records import ArtifactCommit, ArtifactRef, RunRef
from tests.fixtures.accounts import as_user, make_user, open_store

pytestmark = pytest.mark.embedded_only


def log_run(store: EmbeddedBackend, path: str, steps: int = 3) -> RunRef:
    """A finished run with a little history, written through the store's one write op."""
    entity, project, run_id = path.split("/")
    ref = RunRef(entity, project, run_id)
    now = time.time()
    rows = [(s, now, 0.0, {"loss": 1.0 / (s + 1)}) for s in range(steps)]
    events: list[dict[str, Any]] = [
        {"t": "run", "name": run_id, "config": {"lr": 0.1}, "tags": [], "created_at": now},
        encode_rows(rows) | {"t": "history"},
        {"t": "finish", "state": "finished", "exit_code": 0, "at": now},
    ]
    store.apply(ref, f"spool-{run_id}", 0, 100, events)
    return ref


def log_artifact(
    store: EmbeddedBackend,
    tmp: Path,
    path: str,
    content: str,
    aliases: list[str] | None = None,
    run: RunRef | None = None,
) -> ArtifactRef:
    entity, project, name = path.split("/")
    f = tmp / f"{name}-{content}.txt"
    f.write_text(content)
    digest, size = store.store_files([(f, None)])[0]
    record, _ = store.commit_artifact(
        ArtifactCommit(
            entity,
            project,
            name,
            "model",
            None,
            {},
            Manifest([Entry("f.txt", digest, size)]),
            aliases or [],
            None,
            run,
            {"user": "someone-else-on-the-client"},
        )
    )
    return record.ref


@pytest.fixture
def world(store_dir: Path) -> dict[str, Any]:
    """Team `acme` (ann admin, max member, vic viewer), an outsider, two service
    accounts, and a run and a model logged by max in acme/vision."""
    store = open_store(store_dir, os.environ.get("STEMMA_DATABASE_URL"))
    people = {
        n: make_user(store, f"{n}@example.com", admin=(n == "root"))
        for n in ("root", "ann", "max", "vic", "out")
    }
    ann = as_user(store, "ann")
    ann.create_team("acme")
    ann.add_member("acme", "max@example.com", "member")
    ann.add_member("acme", "vic@example.com", "viewer")
    _info, ci_key = ann.create_service_account("acme", "ci-prod", "member")
    _info, view_key = ann.create_service_account("acme", "ci-view", "viewer")
    stores = {n: as_user(store, n) for n in people}
    stores["ci"] = as_user(store, "ci-prod@acme")
    stores["ci-view"] = as_user(store, "ci-view@acme")
    stores["local"] = store
    run = log_run(stores["max"], "acme/vision/r1")
    return {
        "store": store,
        "people": people,
        "as": stores,
        "run": run,
        "keys": {"ci": ci_key, "ci-view": view_key},
    }


def test_viewers_read_members_write_outsiders_see_nothing(world: dict[str, Any]) -> None:
    s = world["as"]
    ref = world["run"]
    assert s["vic"].get_run(ref).user == "max"
    assert [r.run_id for r in s["vic"].list_runs("acme", "vision")] == ["r1"]
    assert s["vic"].read_history(ref, ["loss"])["loss"].values.tolist()[0] == 1.0
    with pytest.raises(PermissionDenied, match=r"vic \(viewer of acme\) may not write"):
        log_run(s["vic"], "acme/vision/r2")
    with pytest.raises(PermissionDenied):
        s["vic"].update_run(ref, {"notes": "mine now"})
    s["max"].update_run(ref, {"notes": "tuned"})
    assert s["ann"].get_run(ref).notes == "tuned"
    # the outsider cannot tell the project from one that does not exist
    assert s["out"].get_run(ref) is None
    for call in (
        lambda: s["out"].list_runs("acme", "vision"),
        lambda: s["out"].count_runs("acme", "vision"),
        lambda: s["out"].read_history(ref),
        lambda: s["out"].list_artifact_collections("acme", "vision"),
        lambda: log_run(s["out"], "acme/vision/r3"),
    ):
        with pytest.raises(NotFound) as exc:
            call()
        assert "no project or entity 'acme/vision'" in str(exc.value)
    with pytest.raises(NotFound) as missing:
        s["out"].list_runs("acme", "no-such-project")
    assert "no project or entity" in str(missing.value)
    assert s["out"].list_projects() == []
    assert [(e, p) for e, p, _ in s["vic"].list_projects()] == [("acme", "vision")]
    # personal entities are their owner's alone
    log_run(s["out"], "out/mine/r1")
    with pytest.raises(NotFound):
        log_run(s["max"], "out/mine/r2")
    with pytest.raises(NotFound):
        log_run(s["max"], "nobody/proj/r1")  # entities are not created implicitly on a server


def test_deleting_runs_members_their_own_admins_any(world: dict[str, Any]) -> None:
    s = world["as"]
    mine = log_run(s["ann"], "acme/vision/ann1")
    with pytest.raises(PermissionDenied, match="belongs to ann"):
        s["max"].delete_run(mine)
    s["max"].delete_run(log_run(s["max"], "acme/vision/max2"))
    s["ann"].delete_run(world["run"])
    assert s["ann"].get_run(world["run"]) is None


def test_runs_stay_with_their_user_after_removal(world: dict[str, Any]) -> None:
    s = world["as"]
    s["ann"].remove_member("acme", "max@example.com")
    record = s["ann"].get_run(world["run"])
    assert record is not None and record.user == "max"
    assert s["max"].get_run(world["run"]) is None  # and max no longer sees it


def test_artifact_rules(world: dict[str, Any], tmp_path: Path) -> None:
    s = world["as"]
    v0 = log_artifact(s["max"], tmp_path, "acme/vision/net", "a", ["staging"], world["run"])
    record = s["vic"].get_artifact("acme", "vision", "net", "staging")
    assert record.creator["user"] == "max"  # the account, not what the client claimed
    assert record.creator["os_user"] == "someone-else-on-the-client"
    with pytest.raises(PermissionDenied):
        log_artifact(s["vic"], tmp_path, "acme/vision/net", "b")
    # ordinary aliases: members; protected ones (production by default): team admins
    s["max"].update_artifact(v0, {"aliases": ["staging", "candidate"]})
    with pytest.raises(PermissionDenied, match=r"alias 'production' is protected.*--request"):
        s["max"].update_artifact(v0, {"aliases": ["production"]})
    with pytest.raises(PermissionDenied, match="protected"):
        log_artifact(s["max"], tmp_path, "acme/vision/net", "c", ["production"])
    s["ann"].update_artifact(v0, {"aliases": ["production"]})
    with pytest.raises(PermissionDenied, match="protected"):
        s["max"].update_artifact(v0, {"aliases": []})
    # TTLs: your own versions, or a team admin
    s["max"].update_artifact(v0, {"ttl_seconds": 3600.0})
    v1 = log_artifact(s["ann"], tmp_path, "acme/vision/net", "d")
    with pytest.raises(PermissionDenied, match="logged by ann"):
        s["max"].update_artifact(v1, {"ttl_seconds": 60.0})
    s["max"].update_artifact(v1, {"description": "members may describe"})
    # deleting versions and project policies: team admins
    with pytest.raises(PermissionDenied):
        s["max"].delete_artifact(v1)
    with pytest.raises(PermissionDenied):
        s["max"].set_protected_aliases("acme", "vision", ["production", "gold"])
    with pytest.raises(PermissionDenied):
        s["max"].set_retention("acme", "vision", None, 3, None)
    s["ann"].delete_artifact(v1)
    s["ann"].set_protected_aliases("acme", "vision", ["production", "gold"])
    assert s["vic"].get_protected_aliases("acme", "vision") == ["gold", "production"]
    with pytest.raises(PermissionDenied):
        s["local"].as_principal(s["out"].who).gc()


def test_cross_team_use_needs_read_access_and_records_lineage(
    world: dict[str, Any], tmp_path: Path
) -> None:
    s = world["as"]
    bert = log_artifact(s["max"], tmp_path, "acme/pretraining/bert-base", "weights")
    s["out"].create_team("team-b")
    consumer = log_run(s["out"], "team-b/finetuning/ft1")
    with pytest.raises(NotFound):  # out cannot read acme
        s["out"].use_artifact(consumer, bert)
    s["ann"].add_member("acme", "out@example.com", "viewer")
    s["out"].use_artifact(consumer, bert)
    _logged, used_by = s["out"].artifact_runs(bert)
    assert [r.ref.path for r in used_by] == ["team-b/finetuning/ft1"]
    assert s["ann"].artifact_runs(bert)[1] == []  # ann may not read team-b
    # ann (no access to team-b) sees the version but not the run in team-b
    graph = s["ann"].artifact_lineage(bert)
    assert graph["hidden"] == 1
    assert all(not n["path"].startswith("team-b/") for n in graph["nodes"])
    graph_out = s["out"].artifact_lineage(bert)
    assert "run:team-b/finetuning/ft1" in {n["id"] for n in graph_out["nodes"]}
    assert [a.ref.path for a in s["out"].run_artifacts(consumer, "input")] == [bert.path]


def test_private_projects(world: dict[str, Any]) -> None:
    s = world["as"]
    log_run(s["max"], "acme/secret/r1")
    with pytest.raises(PermissionDenied):
        s["max"].set_project_visibility("acme", "secret", "private")
    s["ann"].set_project_visibility("acme", "secret", "private")
    assert s["max"].get_run(RunRef("acme", "secret", "r1")) is not None  # the owner
    assert s["ann"].get_run(RunRef("acme", "secret", "r1")) is not None  # a team admin
    assert s["vic"].get_run(RunRef("acme", "secret", "r1")) is None
    with pytest.raises(NotFound):
        s["vic"].list_runs("acme", "secret")
    assert ("acme", "secret") not in {(e, p) for e, p, _ in s["vic"].list_projects()}
    with pytest.raises(UsageError, match="unknown visibility"):
        s["ann"].set_project_visibility("acme", "secret", "public")


def test_service_accounts(world: dict[str, Any]) -> None:
    s = world["as"]
    assert s["ci"].default_entity() == "acme"
    ref = log_run(s["ci"], "acme/vision/ci1")
    assert s["vic"].get_run(ref).user == "ci-prod@acme"
    with pytest.raises(PermissionDenied):
        log_run(s["ci-view"], "acme/vision/ci2")
    assert s["ci-view"].get_run(ref) is not None
    with pytest.raises(NotFound):
        log_run(s["ci"], "out/anything/ci3")
    with pytest.raises(UsageError, match="unknown role 'admin'"):
        s["ann"].create_service_account("acme", "ci-boss", "admin")
    with pytest.raises(PermissionDenied):
        s["max"].create_service_account("acme", "ci-dev")
    with pytest.raises(AlreadyExists):
        s["ann"].create_service_account("acme", "ci-prod")
    with pytest.raises(UsageError, match="service accounts cannot create teams"):
        s["ci"].create_team("bots")


def test_keys_revocation_expiry_and_disabled_accounts(world: dict[str, Any]) -> None:
    store, s = world["store"], world["as"]

    def auth(key: str) -> str:  # as the server does it: check, then note the use
        with read_tx(store.engine) as conn:
            who, due = identity.authenticate_key(conn, key)
        if due is not None:
            with write_tx(store.engine) as conn:
                identity.touch_key(conn, due)
        return who.name

    key = world["people"]["max"]["key"]
    assert auth(key) == "max"
    assert auth(world["keys"]["ci"]) == "ci-prod@acme"
    for bad in ("", "stm_", "nonsense", key[:-2], key + "x", "stm_aaaaaaaaaaaa_" + "b" * 43):
        with pytest.raises(Unauthenticated, match=r"^invalid, revoked or expired API key$"):
            auth(bad)
    info, short = s["max"].create_api_key(name="laptop", expires_in=3600)
    assert auth(short) == "max" and info["expires_at"] is not None
    with write_tx(store.engine) as conn:  # an hour passes
        from stemma.storage.models import api_keys

        conn.execute(
            update(api_keys)
            .where(api_keys.c.prefix == info["prefix"])
            .values(expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
        )
    with pytest.raises(Unauthenticated):
        auth(short)
    # revoking: by the owner, by an instance admin, by a team admin for its bots only
    with pytest.raises(NotFound):
        s["vic"].revoke_api_key(key.split("_")[1])  # others' keys do not exist for you
    s["max"].revoke_api_key(key)
    with pytest.raises(Unauthenticated):
        auth(key)
    ci_prefix = world["keys"]["ci"].split("_")[1]
    s["ann"].revoke_api_key(ci_prefix)
    with pytest.raises(Unauthenticated):
        auth(world["keys"]["ci"])
    s["root"].set_user_disabled("vic", True)
    with pytest.raises(Unauthenticated):
        auth(world["people"]["vic"]["key"])
    listed = {k["prefix"]: k for k in s["max"].list_api_keys()}
    assert listed[key.split("_")[1]]["revoked"] and listed[key.split("_")[1]]["last_used_at"]
    with read_tx(store.engine) as conn:  # only hashes are stored
        from stemma.storage.models import api_keys

        stored = [r.key_hash for r in conn.execute(select(api_keys))]
    assert key not in stored and all(len(h) == 64 for h in stored)


def test_teams_invites_and_bad_input(world: dict[str, Any]) -> None:
    s = world["as"]
    assert s["ann"].add_member("acme", "New.Person@Example.com", "member")["status"] == "invited"
    detail = s["max"].team_members("acme")
    assert [i["email"] for i in detail["invites"]] == ["new.person@example.com"]
    assert {m["username"]: m["role"] for m in detail["members"]} == {
        "ann": "admin",
        "max": "member",
        "vic": "viewer",
    }
    assert {a["username"] for a in detail["service_accounts"]} == {"ci-prod@acme", "ci-view@acme"}
    user, _pw = s["root"].create_user("new.person@example.com")
    assert s["ann"].team_members("acme")["invites"] == []
    assert as_user(world["store"], user["username"]).list_teams()[0]["role"] == "member"
    with pytest.raises(UsageError, match="invalid email 'not-an-email@'"):
        s["ann"].add_member("acme", "not-an-email@", "member")
    with pytest.raises(UsageError, match="unknown role 'owner'"):
        s["ann"].add_member("acme", "max@example.com", "owner")
    with pytest.raises(UsageError, match="ann is the last admin of acme"):
        s["ann"].remove_member("acme", "ann@example.com")
    with pytest.raises(UsageError, match="last admin"):
        s["ann"].add_member("acme", "ann@example.com", "member")
    with pytest.raises(PermissionDenied):
        s["max"].add_member("acme", "vic@example.com", "admin")
    with pytest.raises(NotFound):
        s["out"].team_members("acme")
    with pytest.raises(PermissionDenied, match="instance administrator"):
        s["ann"].create_user("x@example.com")
    with pytest.raises(AlreadyExists):
        s["root"].create_user("MAX@example.com")
    with pytest.raises(AlreadyExists):
        s["out"].create_team("acme")
    assert [t["name"] for t in s["out"].list_teams()] == []
    s["ann"].add_member("acme", "max@example.com", "admin")
    s["ann"].remove_member("acme", "ann@example.com")  # no longer the last admin
    with pytest.raises(NotFound):
        s["ann"].team_members("acme")


def test_passwords_and_sessions(world: dict[str, Any]) -> None:
    store = world["store"]
    pw = world["people"]["max"]["password"]
    token, csrf, who = store.login("MAX@example.com", pw, "10.0.0.1")
    assert who.name == "max" and csrf
    found = store.session(token)
    assert found is not None and found[0].name == "max" and found[1] == csrf
    with pytest.raises(Unauthenticated, match=r"^wrong email or password$"):
        store.login("max@example.com", "wrong password!", "10.0.0.1")
    with pytest.raises(Unauthenticated, match=r"^wrong email or password$"):
        store.login("nobody@example.com", pw, "10.0.0.1")
    with pytest.raises(Unauthenticated, match="service accounts cannot sign in"):
        store.login("ci-prod@acme", world["keys"]["ci"], "10.0.0.1")
    with pytest.raises(UsageError, match="at least 12 characters"):
        world["as"]["max"].set_password("max", "short")
    new = world["as"]["max"].set_password("max", "a much better passphrase")
    assert store.session(token) is None  # changing the password ends sessions
    store.login("max@example.com", new, "10.0.0.1")
    with read_tx(store.engine) as conn:
        hashed = conn.execute(select(users.c.password_hash).where(users.c.username == "max"))
        assert hashed.scalar().startswith("$argon2id$")


def test_sign_in_rate_limit(world: dict[str, Any]) -> None:
    from stemma.errors import RateLimited

    store = world["store"]
    for _ in range(identity.MAX_FAILURES_PER_EMAIL):
        with pytest.raises(Unauthenticated):
            store.login("vic@example.com", "not the password", "10.0.0.2")
    with pytest.raises(RateLimited, match="too many failed sign-ins"):
        store.login("vic@example.com", world["people"]["vic"]["password"], "10.0.0.2")
    store.login("max@example.com", world["people"]["max"]["password"], "10.0.0.2")


def test_promotion_requests(world: dict[str, Any], tmp_path: Path) -> None:
    s = world["as"]
    v0 = log_artifact(s["max"], tmp_path, "acme/vision/net", "a")
    v1 = log_artifact(s["max"], tmp_path, "acme/vision/net", "b")
    s["ann"].update_artifact(v0, {"aliases": ["production"]})
    req = s["max"].request_promotion(v1, "production", "beats v0 by 2 points")
    assert req["state"] == "pending" and req["requested_by"] == "max"
    with pytest.raises(Conflict, match="already asks"):
        s["max"].request_promotion(v1, "production")
    with pytest.raises(PermissionDenied):
        s["vic"].request_promotion(v1, "production")
    with pytest.raises(PermissionDenied):
        s["max"].decide_promotion(req["id"], True)
    with pytest.raises(NotFound):
        s["out"].decide_promotion(req["id"], True)
    assert [r["id"] for r in s["vic"].list_promotions("acme", "vision")] == [req["id"]]
    done = s["ann"].decide_promotion(req["id"], True, "ship it")
    assert done["state"] == "approved" and done["decided_by"] == "ann"
    assert s["vic"].get_artifact("acme", "vision", "net", "production").ref.version == 1
    with pytest.raises(Conflict, match="already approved"):
        s["ann"].decide_promotion(req["id"], False, "too late")
    trail = [
        (e["event"], e["actor"], e["from_version"], e["to_version"], e["comment"])
        for e in s["vic"].alias_history("acme", "vision", "net", "production")
    ]
    assert trail == [
        ("move", "ann", None, 0, None),
        ("request", "max", 0, 1, "beats v0 by 2 points"),
        ("approve", "ann", 0, 1, "ship it"),
        ("move", "ann", 0, 1, f"request {req['id']}"),
    ]
    second = s["max"].request_promotion(v0, "production")
    with pytest.raises(UsageError, match="say why"):
        s["ann"].decide_promotion(second["id"], False)
    s["ann"].decide_promotion(second["id"], False, "no rollback without an incident")
    assert s["vic"].get_artifact("acme", "vision", "net", "production").ref.version == 1
    actions = [e["action"] for e in s["ann"].audit_log(entity="acme", action="alias.")]
    assert actions[:3] == ["alias.reject", "alias.request", "alias.move"]


def test_audit_log_records_and_scopes(world: dict[str, Any], tmp_path: Path) -> None:
    s = world["as"]
    log_artifact(s["max"], tmp_path, "acme/vision/net", "a")
    entries = s["root"].audit_log(limit=1000)
    actions = {e["action"] for e in entries}
    assert {
        "user.create",
        "key.create",
        "team.create",
        "team.add",
        "service_account.create",
        "run.create",
        "run.finish",
        "artifact.commit",
    } <= actions
    created = next(e for e in entries if e["action"] == "run.create")
    assert (created["actor"], created["actor_kind"], created["target"]) == (
        "max",
        "user",
        "acme/vision/r1",
    )
    # team admins read their teams' entries only; members and bots not at all
    ann_view = s["ann"].audit_log(limit=1000)
    assert ann_view and {e["entity"] for e in ann_view} <= {"acme", "ann"}
    assert {e["entity"] for e in s["max"].audit_log(limit=1000)} == {"max"}  # their own
    with pytest.raises(PermissionDenied):
        s["max"].audit_log(entity="acme")
    with pytest.raises(PermissionDenied):
        s["ci"].audit_log()
    with pytest.raises(NotFound):
        s["ann"].audit_log(entity="out")
    with pytest.raises(PermissionDenied):
        s["ann"].audit_verify()
    only_max = s["root"].audit_log(actor="max", action="run.")
    assert {e["action"] for e in only_max} == {"run.create", "run.finish"}
    future = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    assert s["root"].audit_log(since=future) == []


def test_audit_chain_detects_edits_and_deletions(world: dict[str, Any]) -> None:
    store = world["store"]
    report = store.audit_verify()
    assert report["ok"] and report["checked"] > 10
    with write_tx(store.engine) as conn:
        actor = conn.execute(select(audit_log.c.actor).where(audit_log.c.seq == 5)).scalar()
        conn.execute(update(audit_log).where(audit_log.c.seq == 5).values(actor="mallory"))
    bad = store.audit_verify()
    assert (bad["ok"], bad["first_bad"]) == (False, 5)
    assert "entry 5 was edited" in bad["problem"]
    with write_tx(store.engine) as conn:  # undo the edit, then delete one in the middle
        conn.execute(update(audit_log).where(audit_log.c.seq == 5).values(actor=actor))
    assert store.audit_verify()["ok"]
    with write_tx(store.engine) as conn:
        conn.execute(delete(audit_log).where(audit_log.c.seq == 7))
    gone = store.audit_verify()
    assert (gone["ok"], gone["first_bad"]) == (False, 8)
    assert "entry 7 is missing" in gone["problem"]

"""People, access and audit from the command line: users, keys, teams, service accounts,
project visibility, promotion requests and the audit log, against every store.

Against the shared local-mode server the first account created ends local mode, so the
tests that create accounts first bootstrap an instance administrator through the CLI
(`stemma user create ... --admin`, as a real deployment does) and continue with its
key. The embedded store ignores STEMMA_API_KEY: there the local user acts throughout.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

import stemma
from stemma.backend import reset_backends
from stemma.cli.main import cli

KEY_RE = re.compile(r"stm_[a-z0-9]{12}_[A-Za-z0-9_-]+")


def run_cli(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), input=input)


def ok(*args: str, input: str | None = None) -> str:
    out = run_cli(*args, input=input)
    assert out.exit_code == 0, f"stemma {' '.join(args)}:\n{out.output}"
    return out.output


def fails(*args: str, code: int = 1) -> str:
    out = run_cli(*args)
    assert out.exit_code == code, f"stemma {' '.join(args)} ({out.exit_code}):\n{out.output}"
    return " ".join(out.output.split())  # rich and click wrap long messages


def the_key(output: str) -> str:
    keys = set(KEY_RE.findall(output))
    assert len(keys) == 1, output
    return keys.pop()


def use_key(monkeypatch: pytest.MonkeyPatch, key: str) -> None:
    """Act with this key from now on (a server); the embedded store ignores it."""
    monkeypatch.setenv("STEMMA_API_KEY", key)
    reset_backends()


def bootstrap_admin(monkeypatch: pytest.MonkeyPatch, email: str = "root@example.com") -> str:
    """The first instance administrator, created as a deployment creates it."""
    out = ok("user", "create", email, "--admin")
    assert "instance administrator" in out and "password: " in out
    assert "shown again" in out  # the once-only warning
    key = the_key(out)
    use_key(monkeypatch, key)
    return key


def log_model(project: str, where: Path, versions: int = 1) -> Any:
    """Versions v0.. of artifact ``model`` in ``project``; returns the last one."""
    art = None
    for i in range(versions):
        path = where / f"w{i}.txt"
        path.write_text(f"weights {i}")
        with stemma.init(project=project, job_type="train") as run:
            art = stemma.Artifact("model", "model", metadata={"i": i})
            art.add_file(str(path), name="w.txt")
            run.log_artifact(art)
    return art


# ------------------------------------------------------------------ teams and invites


def test_team_members_invites_and_the_last_admin(monkeypatch: pytest.MonkeyPatch) -> None:
    assert "created team ml-research" in ok("team", "create", "ml-research")
    out = ok("team", "add", "ml-research", "new@example.com")
    assert "invited new@example.com to ml-research as member" in out
    ok("team", "add", "ml-research", "boss@example.com", "--role", "admin")

    bad = fails("team", "add", "ml-research", "not-an-email@")
    assert "invalid email" in bad and "not-an-email@" in bad
    role = fails("team", "add", "ml-research", "x@example.com", "--role", "boss", code=2)
    assert "'boss' is not one of" in role and "--role" in role
    assert "ml-research" in fails("team", "create", "ml-research")  # taken
    assert "invalid team name" in fails("team", "create", "bad name")

    # The invited admin's account redeems the invite (and, on a local-mode server, is
    # the first account: an instance admin, whose key the rest of the test uses).
    bootstrap_admin(monkeypatch, "boss@example.com")
    listing = ok("team", "ls", "ml-research")
    assert "boss" in listing and "admin" in listing
    assert "pending invites to ml-research" in listing and "new@example.com" in listing
    assert "ml-research" in ok("team", "ls")

    refused = fails("team", "rm-member", "ml-research", "boss")
    assert "boss is the last admin of ml-research" in refused

    created = ok("user", "create", "new@example.com", "--name", "New Person")
    assert "created user new (new@example.com)" in created
    listing = ok("team", "ls", "ml-research")
    assert "New Person" in listing and "member" in listing
    assert "no pending invites to ml-research" in listing

    assert "new is now admin of ml-research" in ok(
        "team", "add", "ml-research", "new@example.com", "--role", "admin"
    )
    assert "already admin" in ok("team", "add", "ml-research", "new", "--role", "admin")
    assert "removed boss from ml-research" in ok("team", "rm-member", "ml-research", "boss")
    assert "boss" not in ok("team", "ls", "ml-research").split("members of")[1]

    ok("team", "add", "ml-research", "later@example.com")
    out = ok("team", "rm-member", "ml-research", "later@example.com")
    assert "cancelled the invite of later@example.com" in out
    assert "not a member" in fails("team", "rm-member", "ml-research", "nobody@example.com")

    log = ok("audit", "--team", "ml-research", "--limit", "100")
    for action in ("team.create", "team.invite", "team.join", "team.role", "team.remove"):
        assert action in log
    lines = ok("audit", "--team", "ml-research", "--action", "team.", "--json").splitlines()
    entries = [json.loads(line) for line in lines]
    assert entries[0]["seq"] > entries[-1]["seq"]  # newest first
    assert {e["action"] for e in entries} >= {"team.create", "team.uninvite"}
    assert ok("audit", "--since", "1h", "--limit", "1", "--json").count("\n") == 1
    assert ok("audit", "--since", "2999-01-01", "--json") == ""  # ISO dates too
    assert "neither a duration" in fails("audit", "--since", "someday", code=2)
    assert "audit log intact" in ok("audit", "verify")


# ------------------------------------------------------------------ users and keys


def test_users_and_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    bootstrap_admin(monkeypatch)
    out = ok("user", "create", "ada@example.com", "--username", "ada", "--no-key")
    assert "password: " in out and "API key" not in out
    assert "a user with email ada@example.com exists" in fails("user", "create", "ada@example.com")
    assert "invalid email" in fails("user", "create", "ada-at-example.com")

    out = ok("key", "create", "--user", "ada@example.com", "--name", "laptop", "--expires", "90d")
    key = the_key(out)
    assert "for ada, expires" in out and "shown again" in out
    prefix = key.split("_")[1]
    listing = ok("key", "ls", "--user", "ada")
    assert prefix in listing and "laptop" in listing and "never" in listing
    assert "cannot parse duration" in fails("key", "create", "--user", "ada", "--expires", "soon")

    assert f"revoked API key {prefix} of ada" in ok("key", "revoke", prefix)
    row = next(line for line in ok("key", "ls", "--user", "ada").splitlines() if prefix in line)
    assert "yes" in row
    assert "no API key" in fails("key", "revoke", "000000000000")

    users = ok("user", "ls")
    assert "ada@example.com" in users and "active" in users
    assert "disabled ada" in ok("user", "disable", "ada")
    assert "disabled" in next(line for line in ok("user", "ls").splitlines() if "ada@" in line)
    assert "enabled ada" in ok("user", "enable", "ada")
    assert "no user 'ghost'" in fails("user", "disable", "ghost")

    out = ok("user", "passwd", "ada", "--generate")
    assert "new password of ada" in out and "password: " in out
    out = ok("user", "passwd", "ada", input="correct horse battery\ncorrect horse battery\n")
    assert "password of ada changed" in out
    short = run_cli("user", "passwd", "ada", input="short\nshort\n")
    assert short.exit_code == 1 and "at least 12 characters" in short.output


@pytest.mark.embedded_only
def test_the_local_user_has_no_account_of_its_own() -> None:
    assert "local user has no account" in fails("key", "create")
    assert "local user has no account" in fails("user", "passwd", "--generate")


# ------------------------------------------------------------------ promotions


def test_promotion_request_approve_and_reject(tmp_path: Path) -> None:
    art = log_model("p", tmp_path, versions=2)
    entity = art.entity
    name = f"{entity}/p/model"
    moved = ok("artifact", "promote", f"{name}:v0", "production")
    assert "'production' moved here" in moved
    assert "already holds" in ok("artifact", "promote", f"{name}:v0", "production")
    assert "--request" in fails("artifact", "promote", "p/model:v0", "x", "--comment", "c", code=2)

    out = ok("artifact", "promote", "p/model:v1", "production", "--request", "--comment", "f1 up")
    rid = re.search(r"promotion request (\d+)", out).group(1)  # type: ignore[union-attr]
    assert f"stemma artifact approve {entity}/p {rid}" in out
    pending = ok("artifact", "requests", f"{entity}/p")
    assert "production" in pending and "f1 up" in pending and "pending" in pending
    assert "already asks" in fails("artifact", "promote", "p/model:v1", "production", "--request")

    out = ok("artifact", "approve", f"{entity}/p", rid, "--comment", "lgtm")
    assert f"approved request {rid}" in out and "now points to v1" in out
    assert "no pending promotion requests" in ok("artifact", "requests", "p")
    decided = ok("artifact", "requests", "p", "--all", "--name", "model")
    assert "approved" in decided and "lgtm" in decided
    assert "already approved" in fails("artifact", "approve", f"{entity}/p", rid)
    assert stemma.Api().artifact(f"{name}:production").version == "v1"

    history = ok("artifact", "alias-history", f"{name}:production")
    for word in ("request", "approve", "move", "f1 up", "lgtm"):
        assert word in history

    out = ok("artifact", "promote", "p/model:v0", "production", "--request")
    rid = re.search(r"promotion request (\d+)", out).group(1)  # type: ignore[union-attr]
    assert "--comment" in fails("artifact", "reject", "p", rid, code=2)
    assert f"rejected request {rid}" in ok("artifact", "reject", "p", rid, "--comment", "no")
    assert stemma.Api().artifact(f"{name}:production").version == "v1"
    assert "no promotion request 999" in fails("artifact", "approve", "p", "999")
    assert "reject" in ok("artifact", "alias-history", f"{name}:production")


# ------------------------------------------------------------------ visibility


def test_project_visibility() -> None:
    stemma.init(project="secret").finish()
    api = stemma.Api()
    entity = api.projects()[0]["entity"]
    out = ok("project", "visibility", f"{entity}/secret", "private")
    assert "is now private" in out
    assert "is now team" in ok("project", "visibility", "secret", "team")
    assert "no project" in fails("project", "visibility", f"{entity}/nothing", "private")
    assert "'public' is not one of" in fails("project", "visibility", "secret", "public", code=2)


# ------------------------------------------------------------------ audit


@pytest.mark.embedded_only  # it edits the store's database behind its back
def test_audit_verify_names_an_edited_entry() -> None:
    from sqlalchemy import text

    from stemma.backend import get_backend
    from stemma.settings import Settings

    ok("team", "create", "ml")
    ok("team", "add", "ml", "a@example.com")
    ok("team", "add", "ml", "b@example.com")
    out = ok("audit", "verify")
    assert "audit log intact: 3 entries checked" in out
    store: Any = get_backend(Settings.from_env())
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE audit_log SET target = 'c@example.com' WHERE seq = 2"))
    broken = fails("audit", "verify")
    assert "audit log broken at entry 2" in broken and "edited" in broken


# ------------------------------------------------------------------ a server with accounts


@pytest.mark.server_only
def test_http_backend_as_admin_and_member(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every people/access call over HTTP, as an instance admin and as a team member."""
    import datetime as dt

    from stemma.backend import get_backend
    from stemma.errors import NotFound, Unauthenticated, UsageError
    from stemma.settings import Settings

    admin_key = bootstrap_admin(monkeypatch)
    admin: Any = get_backend(Settings.from_env())
    assert type(admin).__name__ == "HttpBackend"
    me = admin.whoami()
    assert me["is_admin"] and me["mode"] == "auth" and admin.has_users()
    user, password, member_key = admin.create_user_with_key("mia@example.com", username="mia")
    assert user["username"] == "mia" and len(password) >= 12 and member_key.startswith("stm_")
    assert isinstance(admin.list_users()[0]["created_at"], dt.datetime)
    team = admin.create_team("vision")
    assert team["role"] == "admin"
    assert admin.add_member("vision", "mia@example.com", "member")["status"] == "added"
    assert admin.add_member("vision", "zed@example.com", "viewer")["status"] == "invited"
    detail = admin.team_members("vision")
    assert {m["username"] for m in detail["members"]} == {"root", "mia"}
    assert [i["email"] for i in detail["invites"]] == ["zed@example.com"]
    info, bot_key = admin.create_service_account("vision", "ci", "viewer")
    assert info["username"] == "ci@vision" and bot_key.split("_")[1] == info["key_prefix"]
    assert [k["prefix"] for k in admin.list_api_keys("ci@vision")] == [info["key_prefix"]]
    admin.delete_service_account("vision", "ci")
    assert admin.list_api_keys("ci@vision")[0]["revoked"]
    assert admin.remove_member("vision", "zed@example.com")["status"] == "invite cancelled"
    with pytest.raises(UsageError, match="at least 12"):
        admin.set_password("mia", "short")
    with pytest.raises(UsageError, match="name the project"):
        admin.decide_promotion(1, True)

    # The member: their own keys and password, their team; nothing of the instance.
    use_key(monkeypatch, member_key)
    member: Any = get_backend(Settings.from_env())
    assert member.whoami()["teams"] == {"vision": "member"}
    denied = fails("user", "create", "eve@example.com")
    assert "mia may not create users: it needs an instance administrator" in denied
    assert "instance administrator" in fails("user", "ls")
    assert "instance administrator" in fails("user", "disable", "root")
    assert "instance administrator" in fails("key", "ls", "--user", "root")
    mine = [json.loads(line) for line in ok("audit", "--json", "--limit", "1000").splitlines()]
    assert mine and {e["entity"] for e in mine} == {"mia"}  # their own entity's entries only
    assert "team admin" in fails("audit", "--team", "vision")
    assert "instance administrator" in fails("audit", "verify")
    assert "team admin" in fails("team", "add", "vision", "eve@example.com")
    own = ok("key", "create", "--name", "second")
    assert "for mia" in own
    assert "second" in ok("key", "ls")
    assert "new password of mia" in ok("user", "passwd", "--generate")
    assert "vision" in ok("team", "ls")
    assert "mia" in ok("team", "ls", "vision")

    # A member files a request for the protected alias; an admin approves it.
    art = log_model("vision/detector", tmp_path)
    refused = fails("artifact", "promote", "vision/detector/model:v0", "production")
    assert "protected" in refused and "--request" in refused
    req = member.request_promotion(art.ref, "production", "ready")
    assert req["state"] == "pending" and isinstance(req["requested_at"], dt.datetime)
    assert [r["id"] for r in member.list_promotions("vision", "detector")] == [req["id"]]
    assert "team admin" in fails("artifact", "approve", "vision/detector", str(req["id"]))
    assert "team admin" in fails("project", "visibility", "vision/detector", "private")

    use_key(monkeypatch, admin_key)
    admin = get_backend(Settings.from_env())
    done = admin.decide_promotion(req["id"], True, "ok", ("vision", "detector"))
    assert done["state"] == "approved" and done["decided_by"] == "root"
    assert admin.list_promotions("vision", "detector") == []
    assert len(admin.list_promotions("vision", "detector", "model", None)) == 1
    admin.set_project_visibility("vision", "detector", "private")
    entries = admin.audit_log(entity="vision", action="project.visibility")
    assert entries[0]["target"] == "vision/detector"
    assert isinstance(entries[0]["at"], dt.datetime)
    since = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    assert admin.audit_log(actor="mia", since=since, limit=5)
    assert admin.audit_verify()["ok"]
    revoked = admin.revoke_api_key(member_key)
    assert revoked["user"] == "mia" and revoked["revoked"]
    with pytest.raises(NotFound):
        admin.revoke_api_key("stm_000000000000")

    # a disabled account's keys stop working; the last instance admin stays
    _info, fresh = admin.create_api_key("mia", "fresh")
    admin.set_user_disabled("mia", True)
    use_key(monkeypatch, fresh)
    with pytest.raises(Unauthenticated):
        get_backend(Settings.from_env()).whoami()
    use_key(monkeypatch, admin_key)
    assert "last instance administrator" in fails("user", "disable", "root")


@pytest.mark.embedded_only  # it starts its own server over a store with accounts
def test_service_account_key_logs_runs_until_revoked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    from stemma.errors import Unauthenticated
    from tests.fixtures.accounts import make_user, open_store
    from tests.fixtures.server import ServerProcess

    db = os.environ.get("STEMMA_DATABASE_URL")
    store = open_store(tmp_path / "srv", db)
    admin_key = make_user(store, "root@example.com", admin=True)["key"]
    store.close()
    with ServerProcess(tmp_path / "srv", database_url=db) as srv:
        monkeypatch.delenv("STEMMA_DATABASE_URL", raising=False)
        monkeypatch.setenv("STEMMA_BASE_URL", srv.url)
        use_key(monkeypatch, admin_key)
        ok("team", "create", "ml-research")
        out = ok("service-account", "create", "ml-research", "ci-prod")
        assert "created service account ci-prod@ml-research (member of ml-research)" in out
        key = the_key(out)
        assert f"export STEMMA_API_KEY={key}" in out and "shown again" in out
        assert "ci-prod@ml-research" in ok("service-account", "ls", "ml-research")
        assert "ci-prod@ml-research" in ok("team", "ls", "ml-research")
        again = fails("service-account", "create", "ml-research", "ci-prod")
        assert "service account 'ci-prod' exists in ml-research" in again
        assert "'admin' is not one of" in fails(
            "service-account", "create", "ml-research", "x", "--role", "admin", code=2
        )

        use_key(monkeypatch, key)
        with stemma.init(project="nightly") as run:
            run.log({"loss": 0.5})
        assert run.entity == "ml-research"
        runs = list(stemma.Api().runs("ml-research/nightly"))
        assert [r.user for r in runs] == ["ci-prod@ml-research"]
        # A path without an entity means the key owner's home, as for init.
        assert [r.id for r in stemma.Api().runs("nightly")] == [run.id]
        assert "nightly" in ok("runs", "ls", "nightly")

        use_key(monkeypatch, admin_key)
        second = the_key(ok("service-account", "key", "ml-research", "ci-prod"))
        prefix = key.split("_")[1]
        assert prefix in ok("key", "ls", "--user", "ci-prod@ml-research")
        assert f"revoked API key {prefix} of ci-prod@ml-research" in ok("key", "revoke", prefix)
        log = ok("audit", "--team", "ml-research", "--actor", "root")
        assert "service_account.create" in log and "key.revoke" in log

        use_key(monkeypatch, key)
        with pytest.raises(Unauthenticated, match="revoked"):
            list(stemma.Api().runs("ml-research/nightly"))
        assert "invalid, revoked or expired" in fails("team", "ls")
        use_key(monkeypatch, second)  # the new key still works
        assert len(list(stemma.Api().runs("ml-research/nightly"))) == 1

        use_key(monkeypatch, admin_key)
        assert "disabled ci-prod@ml-research" in ok(
            "service-account", "rm", "ml-research", "ci-prod"
        )
        use_key(monkeypatch, second)
        assert "invalid, revoked or expired" in fails("team", "ls")

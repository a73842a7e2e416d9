"""Local mode and login mode: when `stemma server` may serve without accounts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.fixtures.accounts import make_user, open_store
from tests.fixtures.server import REPO, ServerProcess, free_port

pytestmark = pytest.mark.embedded_only


def _env(store_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "STEMMA_BASE_URL"}
    env["STEMMA_DIR"] = str(store_dir)
    return env


def test_a_public_address_without_accounts_refuses_to_start(store_dir: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "stemma.cli.main",
            "server",
            "--host",
            "0.0.0.0",
            "--port",
            str(free_port()),
        ],
        env=_env(store_dir),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "refusing to serve on 0.0.0.0 with no accounts" in proc.stderr
    assert "stemma user create you@example.com --admin" in proc.stderr


def test_a_public_address_with_accounts_requires_keys(store_dir: Path) -> None:
    store = open_store(store_dir, os.environ.get("STEMMA_DATABASE_URL"))
    key = make_user(store, "admin@example.com", admin=True)["key"]
    store.close()
    db = os.environ.get("STEMMA_DATABASE_URL")
    with ServerProcess(store_dir, database_url=db, host="0.0.0.0") as server:
        anonymous = httpx.get(f"{server.url}/api/v1/projects")
        assert anonymous.status_code == 401
        assert "authentication required" in anonymous.json()["message"]
        me = httpx.get(f"{server.url}/api/v1/whoami", headers={"authorization": f"Bearer {key}"})
        assert (me.json()["mode"], me.json()["is_admin"]) == ("auth", True)


def test_local_mode_ends_with_the_first_account(store_dir: Path) -> None:
    db = os.environ.get("STEMMA_DATABASE_URL")
    with ServerProcess(store_dir, database_url=db) as server:
        me = httpx.get(f"{server.url}/api/v1/whoami").json()
        assert me["mode"] == "local" and me["is_admin"] is True
        store = open_store(store_dir, db)
        key = make_user(store, "first@example.com", admin=True)["key"]
        store.close()
        assert httpx.get(f"{server.url}/api/v1/whoami").status_code == 401
        me = httpx.get(f"{server.url}/api/v1/whoami", headers={"authorization": f"Bearer {key}"})
        assert me.json()["user"] == "first" and me.json()["mode"] == "auth"


def test_local_mode_answers_to_localhost_only(store_dir: Path) -> None:
    """No DNS rebinding (a foreign Host) and no cross-site writes from a browser."""
    with ServerProcess(store_dir, database_url=os.environ.get("STEMMA_DATABASE_URL")) as server:
        assert httpx.get(f"{server.url}/api/v1/whoami").status_code == 200
        rebound = httpx.get(f"{server.url}/api/v1/whoami", headers={"host": "evil.example"})
        assert rebound.status_code == 403
        assert "answers to localhost only" in rebound.json()["message"]
        forged = httpx.post(
            f"{server.url}/api/v1/teams",
            json={"name": "forged"},
            headers={"sec-fetch-site": "cross-site"},
        )
        assert forged.status_code == 403
        own = httpx.post(
            f"{server.url}/api/v1/teams",
            json={"name": "mine"},
            headers={"sec-fetch-site": "same-origin"},
        )
        assert own.status_code == 201

"""The client/server path under failure: real server processes, SIGKILLed and restarted."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

import stemma
from stemma.backend import reset_backends
from tests.conftest import spawn_python
from tests.fixtures.server import ServerProcess

pytestmark = pytest.mark.slow


@pytest.fixture
def server(tmp_path: Path) -> ServerProcess:
    srv = ServerProcess(
        tmp_path / "server-store", database_url=os.environ.get("STEMMA_DATABASE_URL")
    )
    srv.start()
    yield srv
    srv.stop()


def _client_env(srv: ServerProcess, tmp_path: Path) -> dict[str, str]:
    return {
        "STEMMA_BASE_URL": srv.url,
        "STEMMA_DIR": str(tmp_path / "client"),
        "STEMMA_DATABASE_URL": "",
        "STEMMA_HEARTBEAT_INTERVAL": "1",
    }


def _api(srv: ServerProcess, monkeypatch: pytest.MonkeyPatch) -> stemma.Api:
    monkeypatch.setenv("STEMMA_BASE_URL", srv.url)
    monkeypatch.delenv("STEMMA_DATABASE_URL", raising=False)
    reset_backends()
    return stemma.Api()


def test_server_killed_during_history_stream(
    server: ServerProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code = """
        import sys, time, stemma
        run = stemma.init(project="rel", id="stream")
        for i in range(6000):
            run.log({"i": i})
            if i % 500 == 0:
                print(i, flush=True)
            time.sleep(0.0005)
        run.finish()
        print("finished", flush=True)
    """
    child = spawn_python(code, env=_client_env(server, tmp_path))
    assert child.stdout is not None
    while int(child.stdout.readline()) < 1500:
        pass
    server.kill()  # mid-stream: frames in flight are lost on the server side
    time.sleep(2)
    server.start()
    out, err = child.communicate(timeout=180)
    assert child.returncode == 0, err
    assert "finished" in out
    run = _api(server, monkeypatch).run("rel/stream")
    assert run.state == "finished"
    values = list(run.history(keys=["i"])["i"])
    assert values == list(range(6000))  # every row, exactly once, in order


def test_server_killed_during_artifact_upload(
    server: ServerProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for i in range(40):
        (data / f"part{i:02d}.bin").write_bytes(os.urandom(4 << 20))
    code = f"""
        import stemma
        run = stemma.init(project="rel", id="upload")
        art = stemma.Artifact("big", type="dataset")
        art.add_dir({str(data)!r})
        print("logging", flush=True)
        run.log_artifact(art)
        print(art.version, flush=True)
        run.finish()
    """
    child = spawn_python(code, env=_client_env(server, tmp_path))
    assert child.stdout is not None and child.stdout.readline().strip() == "logging"
    blobs = server.store_dir / "blobs"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if blobs.exists() and sum(1 for d in blobs.glob("??") for _ in d.iterdir()) >= 5:
            break
        time.sleep(0.01)
    server.kill()
    api = None
    time.sleep(1.5)
    server.start()
    out, err = child.communicate(timeout=300)
    assert child.returncode == 0, err
    assert out.splitlines()[-1] == "v0"
    api = _api(server, monkeypatch)
    versions = api.artifact_versions(None, "rel/big")
    assert [a.version for a in versions] == ["v0"]  # no partial or duplicate version
    got = Path(versions[0].download(tmp_path / "dl"))
    for src in sorted(data.iterdir()):
        assert (got / src.name).read_bytes() == src.read_bytes()


def test_server_down_for_30_seconds(
    server: ServerProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code = """
        import time, stemma
        run = stemma.init(project="rel", id="outage")
        t0 = time.monotonic()
        i = 0
        while time.monotonic() - t0 < 40:
            run.log({"i": i})
            i += 1
            time.sleep(0.002)
        run.finish()
        print(i, flush=True)
    """
    child = spawn_python(code, env=_client_env(server, tmp_path))
    time.sleep(4)
    server.stop()
    time.sleep(30)
    server.start()
    out, err = child.communicate(timeout=240)
    assert child.returncode == 0, err
    logged = int(out.strip().splitlines()[-1])
    run = _api(server, monkeypatch).run("rel/outage")
    assert run.state == "finished"
    assert list(run.history(keys=["i"])["i"]) == list(range(logged))

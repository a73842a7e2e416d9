"""Real processes: concurrent loggers, SIGKILL recovery, crash detection, exit states."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

import stemma
from stemma.sdk.spool import spool_files
from tests.conftest import run_python, spawn_python, store_untouched

pytestmark = pytest.mark.slow


def test_four_processes_log_into_one_store(api: stemma.Api) -> None:
    code = """
        import stemma
        run = stemma.init(project="conc")
        for i in range(20000):
            run.log({"x": i, "y": i * 0.5})
        run.finish()
    """
    procs = [spawn_python(code) for _ in range(4)]
    for p in procs:
        _out, err = p.communicate(timeout=240)
        assert p.returncode == 0, err
    runs = list(api.runs("conc"))
    assert len(runs) == 4
    total = 0
    for r in runs:
        assert r.state == "finished"
        h = r.history(keys=["x", "y"])
        assert list(h["x"]) == list(range(20000))
        assert h["y"].iloc[-1] == 19999 * 0.5
        total += len(h)
    assert total == 80000


def _wait_for_spool(root: Path, min_bytes: int, timeout: float = 60) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        files = spool_files(root) if root.exists() else []
        if files and files[0].stat().st_size >= min_bytes:
            return files[0]
        time.sleep(0.05)
    raise AssertionError("the child never wrote its spool")


def test_sigkill_loses_at_most_the_last_flush_window(store_dir: Path, api: stemma.Api) -> None:
    # The child logs a known sequence and records, after each second, how far it got.
    code = """
        import time, stemma
        run = stemma.init(project="kill", id="victim")
        i = 0
        mark = time.monotonic()
        while True:
            run.log({"i": i})
            i += 1
            if i % 1000 == 0:
                time.sleep(0.01)
            if time.monotonic() - mark > 1.0:
                print(i, flush=True)
                mark = time.monotonic()
    """
    child = spawn_python(code)
    progress = []
    assert child.stdout is not None
    while len(progress) < 3:
        line = child.stdout.readline()
        assert line, child.stderr.read() if child.stderr else ""
        progress.append(int(line))
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    logged_one_second_ago = progress[-2]
    # Recovery by resume: the spool the child left is applied first.
    run = stemma.init(project="kill", id="victim", resume="must")
    run.finish()
    stored = api.run("kill/victim")
    values = list(stored.history(keys=["i"])["i"])
    assert values == list(range(len(values)))  # in order, no gaps, no duplicates
    assert len(values) >= logged_one_second_ago
    assert not spool_files(store_dir / "runs" / stored.entity / "kill" / "victim")


def test_sigkill_then_stemma_sync(store_dir: Path, api: stemma.Api) -> None:
    code = """
        import stemma
        run = stemma.init(project="kill2", id="victim2")
        for i in range(30000):
            run.log({"i": i})
        print("done", flush=True)
        import time
        time.sleep(60)
    """
    child = spawn_python(code, env={"STEMMA_HEARTBEAT_INTERVAL": "0.2"})
    assert child.stdout is not None and child.stdout.readline().strip() == "done"
    _wait_for_spool(store_dir / "runs", 100_000)
    time.sleep(0.5)  # one flush window: everything logged has reached the spool
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    from click.testing import CliRunner

    from stemma.cli.main import cli

    result = CliRunner().invoke(cli, ["sync"])
    assert result.exit_code == 0, result.output
    assert "synced 1 spool(s)" in result.output
    values = list(api.run("kill2/victim2").history(keys=["i"])["i"])
    assert values == list(range(30000))
    again = CliRunner().invoke(cli, ["sync"])  # idempotent: nothing left, no duplicates
    assert again.exit_code == 0
    assert len(api.run("kill2/victim2").history()) == 30000


@pytest.mark.embedded_only  # the crash timeout is the store process's setting
def test_crash_detection(store_dir: Path, api: stemma.Api, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STEMMA_HEARTBEAT_INTERVAL", "0.2")
    monkeypatch.setenv("STEMMA_CRASH_TIMEOUT", "1.5")
    code = """
        import time, stemma
        run = stemma.init(project="crash", id="c1")
        run.log({"x": 1})
        print("up", flush=True)
        time.sleep(60)
    """
    child = spawn_python(code)
    assert child.stdout is not None and child.stdout.readline().strip() == "up"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # the writer creates the run shortly after init
        try:
            if api.run("crash/c1").state == "running":
                break
        except stemma.errors.NotFound:
            pass
        time.sleep(0.1)
    time.sleep(2.0)  # heartbeats keep it running past the timeout
    stemma.backend.reset_backends()
    assert stemma.Api().run("crash/c1").state == "running"
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    deadline = time.monotonic() + 30
    state = None
    while time.monotonic() < deadline:
        stemma.backend.reset_backends()
        state = stemma.Api().run("crash/c1").state
        if state == "crashed":
            break
        time.sleep(0.3)
    assert state == "crashed"


@pytest.mark.parametrize(
    ("body", "state", "code"),
    [
        ("pass", "finished", 0),
        ("raise ValueError('x')", "failed", 1),
        ("import sys; sys.exit(3)", "failed", 3),
        ("import sys; sys.exit(0)", "finished", 0),
    ],
)
def test_exit_states_without_finish(api: stemma.Api, body: str, state: str, code: int) -> None:
    proc = run_python(
        f"""
        import stemma
        run = stemma.init(project="exits", id="e")
        run.log({{"x": 1}})
        {body}
    """,
        check=False,
    )
    assert proc.returncode == code
    stored = api.run("exits/e")
    assert (stored.state, stored.exit_code) == (state, code)
    assert stored.summary["x"] == 1


def test_offline_run_then_sync(store_dir: Path, api: stemma.Api, tmp_path: Path) -> None:
    run_python("""
        import stemma
        run = stemma.init(project="off", id="o1", mode="offline", config={"a": 1})
        for i in range(500):
            run.log({"i": i})
        run.summary["best"] = 7
        run.finish()
    """)
    assert store_untouched(store_dir)  # offline: the store is never touched
    spools = spool_files(store_dir / "runs")
    assert len(spools) == 1
    from click.testing import CliRunner

    from stemma.cli.main import cli

    result = CliRunner().invoke(cli, ["sync", str(spools[0].parent), "--keep"])
    assert result.exit_code == 0, result.output
    stored = api.run("off/o1")
    assert stored.state == "finished"
    assert stored.config["a"] == 1 and stored.summary["best"] == 7
    assert list(stored.history()["i"]) == list(range(500))
    again = CliRunner().invoke(cli, ["sync", str(spools[0].parent)])
    assert "already stored" in again.output
    assert len(api.run("off/o1").history()) == 500
    assert not spools[0].exists()  # removed once stored (and its writer is gone)


@pytest.mark.embedded_only  # it breaks the embedded database URL
def test_store_unavailable_keeps_everything_in_the_spool(
    store_dir: Path, api: stemma.Api, tmp_path: Path
) -> None:
    # A database that cannot be opened (its directory is a file): the run must still
    # log, and keep the data for `stemma sync`.
    (tmp_path / "blocker").write_text("not a directory")
    broken = {
        "STEMMA_DATABASE_URL": f"sqlite:///{tmp_path}/blocker/x.db",
        "STEMMA_SILENT": "0",
        "STEMMA_FINISH_TIMEOUT": "2",
    }
    proc = run_python(
        """
        import stemma
        run = stemma.init(project="down", name="d1")
        for i in range(100):
            run.log({"i": i})
        run.finish()
    """,
        env=broken,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "stemma sync" in proc.stderr
    spools = spool_files(store_dir / "runs")
    assert len(spools) == 1
    from click.testing import CliRunner

    from stemma.cli.main import cli

    result = CliRunner().invoke(cli, ["sync"])
    assert result.exit_code == 0, result.output
    (stored,) = list(api.runs("down"))
    assert stored.name == "d1" and stored.state == "finished"
    assert list(stored.history()["i"]) == list(range(100))
    # With an explicit id, init needs the store now, and says clearly that it cannot.
    proc = run_python(
        """
        import stemma
        stemma.init(project="down", id="d2")
    """,
        env=broken,
        check=False,
    )
    assert proc.returncode != 0
    assert "StoreError: cannot open the store at sqlite:///" in proc.stderr


def test_offline_artifacts_sync_with_lineage(
    store_dir: Path, tmp_path: Path, api: stemma.Api
) -> None:
    """Offline: log an artifact and use one seen while online; sync commits both,
    with their lineage edges, once however often it runs."""
    src = tmp_path / "data"
    src.mkdir()
    (src / "a.txt").write_text("raw rows")
    online = stemma.init(project="off")
    art = stemma.Artifact("raw", type="dataset")
    art.add_dir(src)
    online.log_artifact(art)
    online.use_artifact("raw:latest").download(tmp_path / "seen")  # recorded locally
    online.finish()
    run_python(f"""
        import stemma
        run = stemma.init(project="off", id="o2", mode="offline")
        raw = run.use_artifact("raw:latest", type="dataset")
        assert raw.version == "v0", raw.version
        root = raw.download({str(tmp_path / "offline-dl")!r})
        clean = stemma.Artifact("clean", type="dataset", metadata={{"rows": 1}})
        with clean.new_file("c.txt") as fh:
            fh.write("clean rows")
        run.log_artifact(clean, aliases=["candidate"])
        try:
            run.use_artifact("never-seen:v0")
        except stemma.errors.NotFound as exc:
            assert "not in the local cache" in str(exc)
        else:
            raise AssertionError("an uncached artifact must be a clear error offline")
        run.finish()
    """)
    assert (tmp_path / "offline-dl" / "a.txt").read_text() == "raw rows"
    with pytest.raises(stemma.errors.NotFound):
        api.artifact("off/clean:latest")  # nothing reached the store while offline
    from click.testing import CliRunner

    from stemma.cli.main import cli

    first = CliRunner().invoke(cli, ["sync"])
    assert first.exit_code == 0, first.output
    again = CliRunner().invoke(cli, ["sync"])
    assert again.exit_code == 0
    clean = api.artifact("off/clean:candidate")
    assert clean.version == "v0" and clean.metadata == {"rows": 1}
    assert [a.version for a in api.artifact_versions(None, "off/clean")] == ["v0"]
    assert clean.logged_by().id == "o2"
    assert [r.id for r in api.artifact("off/raw:v0").used_by()] == [online.id, "o2"]
    got = Path(clean.download(tmp_path / "after-sync"))
    assert (got / "c.txt").read_text() == "clean rows"
    assert not (store_dir / "pending-blobs").exists()

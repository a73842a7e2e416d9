"""Artifacts with real processes: concurrent versioning, a commit killed halfway."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

import stemma
from tests.conftest import spawn_python

pytestmark = pytest.mark.slow


def test_eight_processes_log_the_same_name(tmp_path: Path, api: stemma.Api) -> None:
    code = """
        import os, sys, stemma
        run = stemma.init(project="conc")
        art = stemma.Artifact("shared", type="dataset")
        with art.new_file("who.txt") as fh:
            fh.write(f"process {os.getpid()}")
        run.log_artifact(art)
        print(art.version, flush=True)
        run.finish()
    """
    procs = [spawn_python(code) for _ in range(8)]
    versions = []
    for p in procs:
        out, err = p.communicate(timeout=240)
        assert p.returncode == 0, err
        versions.append(out.strip())
    assert sorted(versions, key=lambda v: int(v[1:])) == [f"v{i}" for i in range(8)]
    listed = api.artifact_versions(None, "conc/shared")
    assert [a.version for a in listed] == [f"v{i}" for i in range(8)]
    assert api.artifact("conc/shared:latest").version == "v7"
    contents = {
        Path(a.download(tmp_path / a.version)).joinpath("who.txt").read_text() for a in listed
    }
    assert len(contents) == 8  # each version holds its own process's file


@pytest.mark.embedded_only  # it watches the store's blob directory
def test_killed_mid_commit_leaves_no_version(
    store_dir: Path, tmp_path: Path, api: stemma.Api
) -> None:
    data = tmp_path / "many"
    data.mkdir()
    for i in range(3000):
        (data / f"f{i:05d}.bin").write_bytes(os.urandom(2048))
    code = f"""
        import stemma
        run = stemma.init(project="kill", id="k1")
        art = stemma.Artifact("big", type="dataset")
        art.add_dir({str(data)!r})
        print("adding", flush=True)
        run.log_artifact(art)
        print("committed", flush=True)
    """
    child = spawn_python(code)
    assert child.stdout is not None and child.stdout.readline().strip() == "adding"
    blobs = store_dir / "blobs"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # wait until some (not all) blobs are stored
        stored = sum(1 for d in blobs.glob("??") for _ in d.iterdir()) if blobs.exists() else 0
        if stored >= 200:
            break
        time.sleep(0.005)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    with pytest.raises(stemma.errors.NotFound):
        api.artifact("kill/big:latest")
    assert api.artifact_collections("kill") == []
    leftover = sum(1 for d in blobs.glob("??") for _ in d.iterdir())
    assert leftover > 0
    report = api._backend.gc(grace_seconds=0)
    assert report["blobs"] == leftover  # every blob of the attempt is reclaimed
    assert sum(1 for d in blobs.glob("??") for _ in d.iterdir()) == 0
    # and logging again afterwards works from scratch
    run = stemma.init(project="kill")
    art = stemma.Artifact("big", type="dataset")
    art.add_dir(data)
    run.log_artifact(art)
    run.finish()
    assert api.artifact("kill/big:v0").size == 3000 * 2048

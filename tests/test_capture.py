"""What runs record with no user code: git state and system metrics."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

import stemma
from stemma.sdk.capture import git_metadata


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def test_git_metadata(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    assert git_metadata(str(repo)) == {}
    _git(repo, "init", "-q")
    _git(
        repo,
        "-c",
        "user.email=a@b",
        "-c",
        "user.name=a",
        "commit",
        "-q",
        "--allow-empty",
        "-m",
        "x",
    )
    _git(repo, "remote", "add", "origin", "https://example.invalid/r.git")
    (repo / "f.txt").write_text("1")
    _git(repo, "add", "f.txt")
    meta = git_metadata(str(repo))["git"]
    assert len(meta["commit"]) == 40
    assert meta["dirty"] is True
    assert meta["remote"] == "https://example.invalid/r.git"


def test_run_records_git_and_system(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, api: stemma.Api
) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    _git(
        repo,
        "-c",
        "user.email=a@b",
        "-c",
        "user.name=a",
        "commit",
        "-q",
        "--allow-empty",
        "-m",
        "x",
    )
    monkeypatch.chdir(repo)
    monkeypatch.setenv("STEMMA_SYSTEM_METRICS", "true")
    monkeypatch.setenv("STEMMA_SYSTEM_METRICS_INTERVAL", "0.1")
    from stemma.sdk import system_metrics

    samples: list[dict[str, Any]] = []
    init = system_metrics.SystemSampler.__init__

    def counting_init(self: Any, emit: Any, interval: float) -> None:
        init(self, lambda sample: (samples.append(sample), emit(sample)), interval)

    monkeypatch.setattr(system_metrics.SystemSampler, "__init__", counting_init)
    run = stemma.init(project="p")
    run.log({"x": 1})
    deadline = time.monotonic() + 30  # a loaded machine may start the sampler late
    while len(samples) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    run.finish()
    stored = next(iter(api.runs("p")))
    assert stored.metadata["git"]["dirty"] is False
    assert len(stored.metadata["git"]["commit"]) == 40
    assert stored.metadata["cwd"] == str(repo)
    system = stored.history(stream="system")
    assert len(system) >= 2
    assert {"system/cpu", "system/memory_percent", "system/proc.memory.rssMB"} <= set(
        system.columns
    )
    assert "system/cpu" not in stored.history().columns  # kept out of the user's rows
    assert "system/cpu" not in stored.summary

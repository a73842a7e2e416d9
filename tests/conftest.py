"""Fixtures: every test gets its own empty store in a temp dir, and a clean process state."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

import stemma
from stemma.backend import reset_backends
from stemma.sdk import lifecycle

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def store_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh STEMMA_DIR per test; runs left open by a failing test are finished."""
    d = tmp_path / "stemma"
    for var in list(os.environ):
        if var.startswith(("STEMMA_", "WANDB_")):
            monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("STEMMA_DIR", str(d))
    monkeypatch.setenv("STEMMA_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("STEMMA_SILENT", "1")
    monkeypatch.setenv("STEMMA_SYSTEM_METRICS", "false")
    reset_backends()
    yield d
    for run in list(lifecycle._active):
        run.finish(quiet=True)
    reset_backends()


@pytest.fixture
def api() -> stemma.Api:
    return stemma.Api()


def run_python(
    code: str, env: dict[str, str] | None = None, timeout: float = 120, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter with the test's STEMMA_* environment."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=str(REPO),
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"child failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def spawn_python(code: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=full_env,
        cwd=str(REPO),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )

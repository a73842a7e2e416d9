"""What every run records without user code: who, where, which code, which Python.

``static_metadata`` is cheap and runs in ``init``; ``git_metadata`` spawns git and runs
on the writer thread so that ``init`` stays fast.
"""

from __future__ import annotations

import getpass
import os
import platform
import socket
import subprocess
import sys
from typing import Any


def current_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry (some containers)
        return "unknown"


def static_metadata() -> dict[str, Any]:
    return {
        "user": current_user(),
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "python": platform.python_version(),
        "python_executable": sys.executable,
        "os": platform.platform(),
        "argv": list(sys.argv),
        "program": os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else None,
        "cwd": os.getcwd(),
    }


def _git(args: list[str], cwd: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def git_metadata(cwd: str | None = None) -> dict[str, Any]:
    """Commit, dirty flag, branch and remote of the repository around ``cwd`` (or {})."""
    cwd = cwd or os.getcwd()
    commit = _git(["rev-parse", "HEAD"], cwd)
    if not commit:
        return {}
    status = _git(["status", "--porcelain", "--untracked-files=no"], cwd)
    return {
        "git": {
            "commit": commit,
            "dirty": bool(status),
            "branch": _git(["rev-parse", "--abbrev-ref", "HEAD"], cwd),
            "remote": _git(["remote", "get-url", "origin"], cwd),
            "root": _git(["rev-parse", "--show-toplevel"], cwd),
        }
    }

"""Progress bars for long work: shown on a terminal, silent in logs and pipes."""

from __future__ import annotations

import sys
from typing import Any


def is_tty() -> bool:
    return sys.stderr.isatty()


def progress(total: int, description: str) -> tuple[Any, Any]:
    """A rich byte-count progress bar and its task (disabled off a terminal)."""
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    prog = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        disable=not is_tty(),
        transient=True,
    )
    task = prog.add_task(description, total=total)
    return prog, task

"""Shared CLI plumbing: settings, error display, progress bars."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from stemma.errors import StemmaError

F = TypeVar("F", bound=Callable[..., Any])


def handle_errors(func: F) -> F:
    """Show Stemma's own errors as one readable line and exit 1, not a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except StemmaError as exc:
            raise click.ClickException(exc.message) from exc

    return wrapper  # type: ignore[return-value]


def is_tty() -> bool:
    return sys.stderr.isatty()


def progress(total: int, description: str):
    """A rich progress bar on a terminal; silent otherwise (CI logs stay clean)."""
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

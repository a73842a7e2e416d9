"""Shared CLI plumbing: settings, error display, progress bars."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import click

from stemma.errors import StemmaError
from stemma.sdk.progress import is_tty, progress

__all__ = ["handle_errors", "is_tty", "progress"]

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

"""Active runs in this process, module-level shortcuts, and exit hooks.

Several runs may be open at once (the reference keeps ``run`` and ``run_preprocess``
open together); ``stemma.log`` / ``stemma.config`` / ``stemma.summary`` act on the most
recent. At interpreter exit every open run is finished: ``failed`` when an uncaught
exception or a non-zero ``sys.exit`` code ended the program, else ``finished``.
"""

from __future__ import annotations

import atexit
import sys
import threading
from typing import TYPE_CHECKING, Any

from stemma.errors import UsageError

if TYPE_CHECKING:
    from stemma.sdk.run import Run

_active: list[Run] = []
_lock = threading.Lock()
_hooks_installed = False
_exit_code: int | None = None
_failed = False


class _NoRun:
    """What ``stemma.config`` / ``stemma.summary`` are before ``stemma.init()``."""

    def __init__(self, what: str) -> None:
        self._what = what

    def _fail(self, *_a: Any, **_k: Any) -> Any:
        raise UsageError(f"stemma.{self._what} is not available: call stemma.init() first")

    __getitem__ = __setitem__ = __getattr__ = update = _fail

    def get(self, key: str, default: Any = None) -> Any:
        return default

    def __repr__(self) -> str:
        return f"<stemma.{self._what}: no active run>"


NO_CONFIG = _NoRun("config")
NO_SUMMARY = _NoRun("summary")


def current() -> Run | None:
    return _active[-1] if _active else None


def require_current() -> Run:
    run = current()
    if run is None:
        raise UsageError("no active run: call stemma.init() first")
    return run


def _publish() -> None:
    mod = sys.modules.get("stemma")
    if mod is None:
        return
    run = current()
    mod.run = run  # type: ignore[attr-defined]
    mod.config = run.config if run else NO_CONFIG  # type: ignore[attr-defined]
    mod.summary = run.summary if run else NO_SUMMARY  # type: ignore[attr-defined]


def register(run: Run) -> None:
    with _lock:
        _active.append(run)
        _install_hooks()
        _publish()


def unregister(run: Run) -> None:
    with _lock:
        if run in _active:
            _active.remove(run)
        _publish()


def _install_hooks() -> None:
    global _hooks_installed
    if _hooks_installed:
        return
    _hooks_installed = True
    prev_excepthook = sys.excepthook
    prev_exit = sys.exit

    def excepthook(exc_type, exc, tb):
        global _failed
        if not issubclass(exc_type, SystemExit):  # Ctrl-C counts as a failure too
            _failed = True
        prev_excepthook(exc_type, exc, tb)

    def exit_hook(code: Any = None) -> None:
        global _exit_code
        _exit_code = code if isinstance(code, int) else (0 if code is None else 1)
        prev_exit(code)

    sys.excepthook = excepthook
    sys.exit = exit_hook  # type: ignore[assignment]
    atexit.register(_finish_all)


def _finish_all() -> None:
    code = _exit_code if _exit_code is not None else (1 if _failed else 0)
    for run in reversed(list(_active)):
        try:
            run.finish(exit_code=code)
        except Exception as exc:  # exiting anyway; say what happened
            print(f"stemma: could not finish run {run.path}: {exc}", file=sys.stderr)

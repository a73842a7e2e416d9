"""What the framework integrations share: a run they own, and config/metric cleaning.

Frameworks hand loggers hyper-parameters that are not all storable (callables, modules,
tensors, device objects) and metrics that are tensors; W&B's integrations quietly turn
such values into strings or numbers, and so do these helpers, so that a training script
never fails because of what its trainer decided to report.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from typing import Any

import stemma
from stemma.errors import StemmaError
from stemma.wire.values import to_storable


def missing(package: str, module: str, extra: str = "") -> ImportError:
    """The error an integration raises when its framework is not installed."""
    return ImportError(
        f"stemma.integrations.{module} needs the {package!r} package, which is not "
        f"installed: pip install {package}{extra} (or pip install 'stemma[integrations]')"
    )


def clean_config(value: Any, key: str = "") -> Any:
    """``value`` as something ``run.config`` stores: storable values as they are,
    mappings and sequences element by element, anything else (a callable, a module, a
    device) as its name or ``str()`` rather than an error."""
    if isinstance(value, Mapping):
        return {str(k): clean_config(v, f"{key}.{k}") for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean_config(v, f"{key}[]") for v in value]
    item = getattr(value, "item", None)
    if callable(item) and getattr(value, "numel", lambda: 0)() == 1:  # a one-element tensor
        value = item()
    try:
        return to_storable(value, key)
    except (StemmaError, TypeError, ValueError):
        pass
    if callable(value):
        name = getattr(value, "__qualname__", None) or getattr(value, "__name__", None)
        if isinstance(name, str):
            return name
    return str(value).replace("\x00", "")


def to_number(value: Any) -> Any:
    """A metric value as a Python scalar (tensors and numpy scalars unwrapped), or None
    when it is not a scalar that a history row can hold."""
    if isinstance(value, bool | str):
        return value
    if isinstance(value, numbers.Number) and not isinstance(value, complex):
        return value if isinstance(value, int) else float(value)  # type: ignore[arg-type]
    item = getattr(value, "item", None)
    size = getattr(value, "numel", None) or getattr(value, "size", None)
    n = size() if callable(size) else size
    if callable(item) and n == 1:
        return to_number(item())
    return None


class OwnedRun:
    """The run an integration logs to: the one already open when it first needs one
    (the user's, left open for them), or one it starts with ``init_kwargs`` and
    finishes itself.

    A run it started and finished at the end of training is resumed (same id, steps
    carry on) if the framework logs again afterwards, e.g. ``trainer.test()`` after
    ``trainer.fit()`` or ``trainer.evaluate()`` after ``trainer.train()``.
    """

    def __init__(self, init_kwargs: dict[str, Any], run: stemma.Run | None = None) -> None:
        self.init_kwargs = init_kwargs
        self.run: stemma.Run | None = run
        self.owned = False  # True when this object started the run and so finishes it

    def get(self) -> stemma.Run:
        run = self.run
        if run is not None and not run.finished:
            return run
        if run is not None and self.owned:  # finished by us: continue the same run
            kwargs = {k: v for k, v in self.init_kwargs.items() if k != "config"}
            kwargs.update(id=run.id, resume="allow", project=f"{run.entity}/{run.project}")
            kwargs.pop("entity", None)
            self.run = stemma.init(**kwargs)
            return self.run
        if run is None and stemma.run is not None and not stemma.run.finished:
            self.run = stemma.run  # the user's run: log into it, leave it open
            return self.run
        self.run = stemma.init(**self.init_kwargs)
        self.owned = True
        return self.run

    def finish(self, exit_code: int = 0) -> None:
        """Finish the run if this object started it; a user's run is left open."""
        if self.run is not None and self.owned and not self.run.finished:
            self.run.finish(exit_code=exit_code, quiet=True)


def log_at_step(run: stemma.Run, row: dict[str, Any], step: int | None) -> None:
    """``run.log(row, step=step)``, except that a step the run has already passed (the
    user logged rows of their own in between) starts a new row rather than being dropped:
    the framework's step is in the row under its own key as well."""
    if step is not None and step < run.step:
        step = None
    run.log(row, step=step)

"""Keras 3: ``StemmaMetricsLogger`` (``WandbMetricsLogger``) logs what ``model.fit``
reports to Stemma, as W&B's ``WandbMetricsLogger`` does.

    import os; os.environ["KERAS_BACKEND"] = "torch"   # or jax / tensorflow
    from stemma.integrations.keras import WandbMetricsLogger
    run = stemma.init(project="mnist")
    model.fit(x, y, epochs=3, callbacks=[WandbMetricsLogger()])
"""

from __future__ import annotations

import os
from typing import Any

import stemma
from stemma.errors import UsageError
from stemma.integrations._common import OwnedRun, missing, to_number

try:
    import keras
except ImportError as exc:  # pragma: no cover - depends on what is installed
    if isinstance(exc, ModuleNotFoundError) and exc.name == "keras":
        raise missing("keras", "keras") from None
    raise ImportError(
        f"Keras is installed but could not be imported ({exc}); Keras 3 needs a backend: "
        f"set KERAS_BACKEND to torch, jax or tensorflow (it is "
        f"{os.environ.get('KERAS_BACKEND', 'unset, meaning tensorflow')}) and install it"
    ) from exc


class StemmaMetricsLogger(keras.callbacks.Callback):
    """Logs ``logs`` of each epoch as ``epoch/<metric>`` with ``epoch/epoch`` and
    ``epoch/learning_rate``, and with ``log_freq="batch"`` (or every ``log_freq``
    batches) each batch's as ``batch/<metric>`` with ``batch/batch_step``.

    Logs into the open run, or starts one with ``init_kwargs`` (``project``...) that is
    finished when ``fit`` ends. ``initial_global_step`` continues the batch count of an
    earlier ``fit`` (resumed training), as in W&B.
    """

    def __init__(
        self,
        log_freq: str | int = "epoch",
        initial_global_step: int = 0,
        **init_kwargs: Any,
    ) -> None:
        super().__init__()
        if log_freq == "batch":
            log_freq = 1
        if log_freq != "epoch" and not (isinstance(log_freq, int) and log_freq > 0):
            raise UsageError(f"log_freq must be 'epoch', 'batch' or a positive int: {log_freq!r}")
        self.log_freq: str | int = log_freq
        self.global_step = initial_global_step
        self._owned = OwnedRun(init_kwargs)

    @property
    def run(self) -> stemma.Run | None:
        return self._owned.run

    def _learning_rate(self) -> float | None:
        """The optimizer's current learning rate (a schedule's value at this step)."""
        optimizer = getattr(getattr(self, "model", None), "optimizer", None)
        lr = getattr(optimizer, "learning_rate", None)
        if lr is None:
            return None
        try:
            return float(lr)  # a backend variable converts itself, without copying to numpy
        except (TypeError, ValueError):  # a schedule object or an unusual optimizer
            return None

    def _row(self, prefix: str, logs: dict[str, Any] | None) -> dict[str, Any]:
        row: dict[str, Any] = {}
        for key, value in (logs or {}).items():
            number = to_number(value)
            if number is not None:
                row[f"{prefix}/{key}"] = number
        lr = self._learning_rate()
        if lr is not None:
            row[f"{prefix}/learning_rate"] = lr
        return row

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self._owned.get()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        row = self._row("epoch", logs)
        row["epoch/epoch"] = epoch
        self._owned.get().log(row)

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self.global_step += 1
        if isinstance(self.log_freq, int) and self.global_step % self.log_freq == 0:
            row = self._row("batch", logs)
            row["batch/batch_step"] = self.global_step
            self._owned.get().log(row)

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        self._owned.finish()


WandbMetricsLogger = StemmaMetricsLogger
"""W&B's name, for scripts that write ``from ... import WandbMetricsLogger``."""

__all__ = ["StemmaMetricsLogger", "WandbMetricsLogger"]

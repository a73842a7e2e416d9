"""PyTorch Lightning: ``StemmaLogger`` (``WandbLogger``) logs metrics, hyper-parameters
and checkpoints of a ``lightning.pytorch.Trainer`` to Stemma.

    from stemma.integrations.lightning import WandbLogger
    trainer = Trainer(logger=WandbLogger(project="mnist", log_model="all"))

Uses the ``lightning`` package, or ``pytorch_lightning`` when only that one is installed
(for a ``pytorch_lightning.Trainer`` with both installed, use
:mod:`stemma.integrations.pytorch_lightning`).
"""

from __future__ import annotations

from stemma.integrations._common import missing
from stemma.integrations._lightning_base import StemmaLoggerBase

try:
    from lightning.pytorch.loggers import Logger
except ImportError:  # pragma: no cover - depends on what is installed
    try:
        from pytorch_lightning.loggers import Logger  # type: ignore[assignment]
    except ImportError:
        raise missing("lightning", "lightning") from None


class StemmaLogger(StemmaLoggerBase, Logger):
    __doc__ = StemmaLoggerBase.__doc__


WandbLogger = StemmaLogger
"""W&B's name, for scripts that write ``from ... import WandbLogger``."""

__all__ = ["StemmaLogger", "WandbLogger"]

"""``StemmaLogger`` (``WandbLogger``) for a ``pytorch_lightning.Trainer`` (the older
package name); the same logger as :mod:`stemma.integrations.lightning`."""

from __future__ import annotations

from stemma.integrations._common import missing
from stemma.integrations._lightning_base import StemmaLoggerBase

try:
    from pytorch_lightning.loggers import Logger
except ImportError:  # pragma: no cover - depends on what is installed
    raise missing("pytorch-lightning", "pytorch_lightning") from None


class StemmaLogger(StemmaLoggerBase, Logger):
    __doc__ = StemmaLoggerBase.__doc__


WandbLogger = StemmaLogger
"""W&B's name, for scripts that write ``from ... import WandbLogger``."""

__all__ = ["StemmaLogger", "WandbLogger"]

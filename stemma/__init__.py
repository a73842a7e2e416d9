"""Stemma: experiment runs, versioned artifacts with lineage, and live reports.

``import stemma as wandb`` works for the W&B calls Stemma supports. The public names
are listed in ``__all__``; everything else lives in private modules and may change.
"""

from __future__ import annotations

from typing import Any as _Any

from stemma import errors, media, report, util
from stemma.api.public import Api
from stemma.errors import StemmaError
from stemma.report import Report
from stemma.sdk import lifecycle as _lifecycle
from stemma.sdk.artifact import Artifact
from stemma.sdk.config import Config
from stemma.sdk.init import init
from stemma.sdk.media import Html, Image, Plotly, Table
from stemma.sdk.run import Run
from stemma.sdk.summary import Summary
from stemma.settings import Settings

__version__ = "0.1.0"

# The current run and its config/summary; set by init() and finish().
run: Run | None = None
config: _Any = _lifecycle.NO_CONFIG
summary: _Any = _lifecycle.NO_SUMMARY


def log(data: dict[str, _Any], step: int | None = None, commit: bool | None = None) -> None:
    """``run.log`` on the most recently started run that is still open."""
    _lifecycle.require_current().log(data, step=step, commit=commit)


def finish(exit_code: int | None = None, quiet: bool | None = None) -> None:
    """Finish the most recently started open run (no-op when there is none)."""
    current = _lifecycle.current()
    if current is not None:
        current.finish(exit_code=exit_code, quiet=quiet)


__all__ = [
    "Api",
    "Artifact",
    "Config",
    "Html",
    "Image",
    "Plotly",
    "Report",
    "Run",
    "Settings",
    "StemmaError",
    "Summary",
    "Table",
    "__version__",
    "config",
    "errors",
    "finish",
    "init",
    "log",
    "media",
    "report",
    "run",
    "summary",
    "util",
]

"""Reports: ``stemma.Report`` and the blocks it lists, as in W&B's ``wandb.report``.

::

    import stemma as wandb

    report = wandb.Report(project="text-classifier", title="Week 6")
    report.blocks = [
        wandb.report.H1("Loss"),
        wandb.report.PanelGrid(panels=[
            wandb.report.LinePlot(x="_step", y=["train/loss", "val/loss"],
                                  groupby="config.learning_rate"),
        ]),
    ]
    report.save()
    print(report.url)

The spec a report is stored as, and its checks: :mod:`stemma.report.spec`.
"""

from __future__ import annotations

from stemma.report.blocks import (
    H1,
    H2,
    BarPlot,
    Block,
    LinePlot,
    MarkdownBlock,
    MediaBrowser,
    P,
    Panel,
    PanelGrid,
    ParallelCoordinatesPlot,
    RunComparer,
    Runset,
    RunsTable,
    ScalarChart,
    ScatterPlot,
    TableOfContents,
)
from stemma.report.report import Report

__all__ = [
    "H1",
    "H2",
    "BarPlot",
    "Block",
    "LinePlot",
    "MarkdownBlock",
    "MediaBrowser",
    "P",
    "Panel",
    "PanelGrid",
    "ParallelCoordinatesPlot",
    "Report",
    "RunComparer",
    "RunsTable",
    "Runset",
    "ScalarChart",
    "ScatterPlot",
    "TableOfContents",
]

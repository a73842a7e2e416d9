"""The blocks of a report, as Python objects: ``stemma.report.PanelGrid``, ``LinePlot``...

Each class is a dataclass mirroring one entry of the spec (:mod:`stemma.report.spec`):
its fields are the spec's fields, ``to_spec()`` gives the entry and
:func:`block_from_spec` builds the object back, so a report loaded from the store
compares equal (``==``) to the one saved. Nothing is checked here: ``Report.save()``
validates the whole spec, naming the block and field at fault.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, ClassVar

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
    "RunComparer",
    "RunsTable",
    "Runset",
    "ScalarChart",
    "ScatterPlot",
    "TableOfContents",
    "block_from_spec",
    "panel_from_spec",
]


def _plain(value: Any) -> Any:
    """A field's value as spec JSON: nested blocks as their specs, tuples as lists."""
    if isinstance(value, Block | Panel | Runset):
        return value.to_spec()
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value


class _Spec:
    """to_spec() for the dataclasses below: ``type`` (when the class has one) and
    every field."""

    type: ClassVar[str] = ""

    def to_spec(self) -> dict[str, Any]:
        head = {"type": self.type} if self.type else {}
        fields = dataclasses.fields(self)  # type: ignore[arg-type]
        return {**head, **{f.name: _plain(getattr(self, f.name)) for f in fields}}


class Block(_Spec):
    """Base of the blocks a report lists (text, table of contents, panel grid)."""


class Panel(_Spec):
    """Base of the panels a :class:`PanelGrid` shows."""


# ------------------------------------------------------------------ text blocks


@dataclasses.dataclass
class H1(Block):
    """A heading."""

    text: str
    type: ClassVar[str] = "h1"


@dataclasses.dataclass
class H2(Block):
    """A subheading."""

    text: str
    type: ClassVar[str] = "h2"


@dataclasses.dataclass
class P(Block):
    """A paragraph of plain text."""

    text: str
    type: ClassVar[str] = "p"


@dataclasses.dataclass
class MarkdownBlock(Block):
    """Markdown, rendered safely (no raw HTML runs)."""

    text: str
    type: ClassVar[str] = "markdown"


@dataclasses.dataclass
class TableOfContents(Block):
    """A table of contents of the report's headings."""

    type: ClassVar[str] = "toc"


# ------------------------------------------------------------------ runs and panels


@dataclasses.dataclass
class Runset:
    """The runs a panel grid shows: a project's runs (default: the report's), narrowed
    by ``filters`` (as ``Api().runs(filters=)``) and sorted by ``order``."""

    project: str | None = None
    entity: str | None = None
    filters: dict[str, Any] | None = None
    name: str = "Run set"
    order: str = "-created_at"

    def to_spec(self) -> dict[str, Any]:
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}


@dataclasses.dataclass
class LinePlot(Panel):
    """Metrics over steps (or another x), a line per run, or per group of runs (the
    mean, with a band from the minimum to the maximum) with ``groupby``."""

    x: str = "_step"
    y: str | list[str] | None = None
    title: str | None = None
    groupby: str | None = None
    smoothing: float = 0.0
    log_x: bool = False
    log_y: bool = False
    max_runs: int = 500
    range_x: list[float | None] | None = None
    range_y: list[float | None] | None = None
    type: ClassVar[str] = "line_plot"


@dataclasses.dataclass
class BarPlot(Panel):
    """Summary metrics as bars, per run or per group."""

    metrics: str | list[str]
    groupby: str | None = None
    title: str | None = None
    type: ClassVar[str] = "bar_plot"


@dataclasses.dataclass
class ScalarChart(Panel):
    """One summary metric as a big number (the mean over runs or per group)."""

    metric: str
    groupby: str | None = None
    title: str | None = None
    type: ClassVar[str] = "scalar_chart"


@dataclasses.dataclass
class ScatterPlot(Panel):
    """A point per run: ``x`` against ``y`` (config or summary values)."""

    x: str
    y: str
    title: str | None = None
    type: ClassVar[str] = "scatter_plot"


@dataclasses.dataclass
class ParallelCoordinatesPlot(Panel):
    """A line per run across several config and summary columns."""

    columns: list[str]
    title: str | None = None
    type: ClassVar[str] = "parallel_coordinates_plot"


@dataclasses.dataclass
class RunComparer(Panel):
    """The runs side by side: config and summary values that differ."""

    title: str | None = None
    type: ClassVar[str] = "run_comparer"


@dataclasses.dataclass
class MediaBrowser(Panel):
    """The media (images, tables, figures...) the runs logged under ``media_keys``."""

    media_keys: str | list[str]
    title: str | None = None
    type: ClassVar[str] = "media_browser"


@dataclasses.dataclass
class RunsTable(Panel):
    """A table of the runs with ``columns`` (default: name, state and the summary)."""

    columns: list[str] | None = None
    title: str | None = None
    type: ClassVar[str] = "runs_table"


@dataclasses.dataclass
class PanelGrid(Block):
    """Panels over one or more runsets (default: every run of the report's project)."""

    runsets: list[Runset] | None = None
    panels: list[Panel] | None = None
    type: ClassVar[str] = "panel_grid"

    def to_spec(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "runsets": [_plain(r) for r in self.runsets or []],
            "panels": [_plain(p) for p in self.panels or []],
        }


BLOCK_CLASSES: dict[str, type[Block]] = {
    c.type: c for c in (H1, H2, P, MarkdownBlock, TableOfContents, PanelGrid)
}
PANEL_CLASSES: dict[str, type[Panel]] = {
    c.type: c
    for c in (
        LinePlot,
        BarPlot,
        ScalarChart,
        ScatterPlot,
        ParallelCoordinatesPlot,
        RunComparer,
        MediaBrowser,
        RunsTable,
    )
}


def _args(spec: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in spec.items() if k != "type"}


def panel_from_spec(spec: Mapping[str, Any]) -> Panel:
    """The panel object of a (validated) panel spec."""
    return PANEL_CLASSES[spec["type"]](**_args(spec))


def block_from_spec(spec: Mapping[str, Any]) -> Block:
    """The block object of a (validated) block spec."""
    if spec["type"] == "panel_grid":
        return PanelGrid(
            runsets=[Runset(**r) for r in spec.get("runsets") or []],
            panels=[panel_from_spec(p) for p in spec.get("panels") or []],
        )
    return BLOCK_CLASSES[spec["type"]](**_args(spec))

"""Exporting a report: one self-contained HTML file, or Markdown for chat and email.

* :func:`to_html`: the report as its page draws it, in one file that opens offline
  (``file://``, no network): the report's live data (:func:`~stemma.report.evaluate.
  evaluate`, read now with the caller's rights), the stylesheet and every script inline,
  media as ``data:`` URIs (logged HTML too: a ``data:text/html`` document in the page's
  ``<iframe sandbox="">``, an opaque origin where none of its scripts run). Plotly's
  library is included only when a media browser shows a Plotly figure.
* :func:`to_markdown`: title, description, headings and text blocks, and for every panel
  grid a table of its top runs by one metric, with the columns the grid's panels use
  (group-by keys, config and table columns): what the reference mails to its team every
  week ("pull the top 10 runs by validation accuracy, generate a Markdown table, and
  Slack it"). Deterministic: the same store gives the same text.

Both read through the store they are given, bound to the reader: the embedded store or
a server's API (``stemma report export`` uses the store of the current settings), so a
runset of a project the reader cannot see shows no runs, as on the report's page.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

from stemma.errors import StemmaError, UsageError
from stemma.report.evaluate import RUN_FIELDS, evaluate, number, value_of

FORMATS = ("html", "md")
DEFAULT_TOP = 10
MAX_TOP = 1000
MEDIA_ITEM_LIMIT = 25 << 20  # bytes of one media blob inlined in an HTML export
MEDIA_TOTAL_LIMIT = 200 << 20  # ... and of all of them
_PLACEHOLDER = "stemma-export-media:"
# Metrics where lower is better: a top-N table lists the lowest first.
_LOWER_IS_BETTER = re.compile(r"(loss|err|error|perplexity|mse|mae|rmse|wer|cer)", re.I)
_NOT_METRICS = frozenset((*RUN_FIELDS, "display_name", "username", "run_id"))


# ------------------------------------------------------------------ entry point


def export_report(
    store: Any,
    report_id: str,
    fmt: str,
    *,
    revision: int | None = None,
    metric: str | None = None,
    top: int = DEFAULT_TOP,
    ascending: bool | None = None,
    base_url: str | None = None,
) -> str:
    """Report ``report_id`` (``revision``, default the newest) as ``fmt`` (``html`` or
    ``md``), read through ``store``. ``metric``, ``top`` and ``ascending`` choose the
    Markdown tables' runs; ``base_url`` is where the report's page is linked from."""
    if fmt not in FORMATS:
        raise UsageError(f"unknown export format {fmt!r}: use html or md", format=fmt)
    record = store.get_report(report_id, revision)
    url = _report_url(base_url, record)
    if fmt == "html":
        return to_html(store, record, url=url)
    return to_markdown(store, record, metric=metric, top=top, ascending=ascending, url=url)


def _report_url(base_url: str | None, record: Mapping[str, Any]) -> str:
    from stemma.report.report import report_url

    return report_url(base_url, record["entity"], record["project"], record["id"])


# ------------------------------------------------------------------ HTML


class _Media:
    """Media URLs for an export: placeholders while the report is evaluated, then
    ``data:`` URIs of the bytes read through the store (with the reader's rights)."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.wanted: list[tuple[str, str, str, str]] = []
        self.total = 0
        self.skipped = 0

    def url(self, entity: str, project: str, run_id: str, digest: str) -> str:
        self.wanted.append((entity, project, run_id, digest))
        return f"{_PLACEHOLDER}{len(self.wanted) - 1}"

    def inline(self, data: dict[str, Any]) -> None:
        """Every media item of ``data`` with its bytes inline: ``url`` a data: URI. Items
        that cannot be included (too large, unreadable) are left out and counted in
        :attr:`skipped`. Logged HTML is a ``data:text/html`` document, which the page
        frames in an iframe sandboxed without scripts: an opaque origin where nothing of
        it runs."""
        for panel in _media_panels(data):
            kept = []
            for item in panel.get("items") or []:
                kind = str(item.get("kind") or "")
                fmt = str((item.get("meta") or {}).get("format") or "")
                item["url"] = self._resolve(item.get("url"), kind, fmt)
                if item["url"] is None:
                    self.skipped += 1
                    continue
                subs = (item.get("meta") or {}).get("items") or []
                for sub in subs:
                    if isinstance(sub, dict) and "url" in sub:
                        sub["url"] = self._resolve(sub["url"], "image", str(sub.get("format", "")))
                kept.append(item)
            panel["items"] = kept

    def _resolve(self, url: Any, kind: str, fmt: str) -> str | None:
        if not isinstance(url, str) or not url.startswith(_PLACEHOLDER):
            return url if isinstance(url, str) and url.startswith("data:") else None
        from stemma.wire.records import RunRef

        entity, project, run_id, digest = self.wanted[int(url[len(_PLACEHOLDER) :])]
        try:
            blob = self.store.read_media(RunRef(entity, project, run_id), digest)
        except StemmaError:
            return None
        if len(blob) > MEDIA_ITEM_LIMIT or self.total + len(blob) > MEDIA_TOTAL_LIMIT:
            return None
        self.total += len(blob)
        return f"data:{_content_type(blob, kind, fmt)};base64,{_b64(blob)}"


def _b64(blob: bytes) -> str:
    return base64.b64encode(blob).decode("ascii")


def _content_type(blob: bytes, kind: str, fmt: str) -> str:
    from stemma.wire.media import IMAGE_CONTENT_TYPES, JSON_CONTENT_TYPE

    if kind in ("table", "plotly"):
        return JSON_CONTENT_TYPE
    if kind == "html":
        return "text/html;charset=utf-8"
    for magic, name in (
        (b"\x89PNG", "png"),
        (b"\xff\xd8\xff", "jpeg"),
        (b"GIF8", "gif"),
        (b"BM", "bmp"),
    ):
        if blob.startswith(magic):
            return IMAGE_CONTENT_TYPES[name]
    if blob[:4] == b"RIFF" and blob[8:12] == b"WEBP":
        return IMAGE_CONTENT_TYPES["webp"]
    return IMAGE_CONTENT_TYPES.get(fmt.lower(), "application/octet-stream")


def _media_panels(data: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    for block in data.get("blocks") or []:
        if block.get("type") != "panel_grid":
            continue
        for panel in (block.get("data") or {}).get("panels") or []:
            if panel.get("kind") == "media":
                yield panel


def _script(text: str) -> str:
    """JavaScript safe inside an inline <script>: the HTML parser must not end the
    element early (``</script``) or enter its escaped states (``<!--``). Both only
    occur inside string literals in our files and the vendored libraries, where the
    backslash changes nothing."""
    text = re.sub(r"</(script)", r"<\\/\1", text, flags=re.I)
    return text.replace("<!--", "<\\!--")


def _data_json(data: Any) -> Any:
    """``data`` as JSON safe inside <script type=application/json> (``<``, ``>``, ``&``
    and ``'`` escaped), as the report page embeds it."""
    import functools

    from jinja2.utils import htmlsafe_json_dumps

    dumps = functools.partial(json.dumps, separators=(",", ":"), allow_nan=False)
    return htmlsafe_json_dumps(data, dumps=dumps)


def _iso(value: Any) -> str:
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return value.isoformat(timespec="seconds")
    return str(value or "")


def _reader(store: Any) -> str | None:
    """Who the export reads as (its header says whose view of the runs it is)."""
    try:
        me = store.whoami()
    except StemmaError:
        return None
    return str(me.get("user") or "") or None


def _style(text: str) -> str:
    return re.sub(r"</(style)", r"<\\/\1", text, flags=re.I)


# The export is a file, not our origin: nothing is fetched from anywhere (scripts and
# styles are inline, media are data: URIs, logged HTML is srcdoc); framed HTML gets no
# scripts from its sandbox attribute.
EXPORT_CSP = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "img-src data: blob:; font-src data:; connect-src data:; frame-src 'self' data: about:; "
    "base-uri 'none'; form-action 'none'"
)


def to_html(store: Any, record: Mapping[str, Any], *, url: str | None = None) -> str:
    """The report of ``record`` (a ``get_report`` record) as one self-contained HTML
    page, its data read now through ``store``."""
    from stemma import __version__
    from stemma.ui.render import ENV, STATIC_DIR, VENDOR_DIR

    media = _Media(store)
    data = evaluate(store, record["spec"], media_url=media.url, run_links=False)
    media.inline(data)
    plotly = any(
        item.get("kind") == "plotly" for panel in _media_panels(data) for item in panel["items"]
    )

    def read(path: Any) -> str:
        try:
            return str(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise UsageError(
                f"cannot export HTML: the web UI's file {path.name} is missing "
                "(run `make ui`, which puts the chart libraries in stemma/ui/static/vendor/)",
                path=str(path),
            ) from None

    styles = [read(STATIC_DIR / "stemma.css"), read(VENDOR_DIR / "uPlot.min.css")]
    names = ["uPlot.iife.min.js"] + (["plotly.min.js"] if plotly else [])
    scripts = [read(VENDOR_DIR / n) for n in names]
    scripts += [read(STATIC_DIR / n) for n in ("app.js", "charts.js", "report.js")]
    return ENV.get_template("report_export.html").render(
        title=record.get("title") or "Report",
        record=record,
        report=data,
        report_data=_data_json(data),
        reader=_reader(store),
        saved_at=_iso(record.get("updated_at")),
        exported_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        report_url=url,
        version=__version__,
        csp=EXPORT_CSP,
        styles=[_style(s) for s in styles],
        scripts=[_script(s) for s in scripts],
        media_skipped=media.skipped,
    )


# ------------------------------------------------------------------ Markdown


def _inline(text: Any) -> str:
    """Text on one line (a heading, a table cell): newlines as spaces, ``|`` escaped."""
    flat = " ".join(str(text if text is not None else "").split())
    return flat.replace("\\", "\\\\").replace("|", "\\|")


def _code(text: str) -> str:
    """``text`` as an inline code span (a metric name: underscores stay underscores)."""
    flat = " ".join(str(text).split()).replace("|", "\\|")
    fence = "``" if "`" in flat else "`"
    return f"{fence}{flat}{fence}" if fence == "`" else f"{fence} {flat} {fence}"


def format_value(value: Any) -> str:
    """A table cell: numbers short (6 significant digits), lists joined, None empty."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list | tuple):
        return ", ".join(format_value(v) for v in value)
    if isinstance(value, Mapping):
        if "$float" in value:
            return str(value["$float"])
        if "_type" in value:
            return f"[{value['_type']}]"
        return json.dumps(value, sort_keys=True, default=str)
    return str(value)


def markdown_table(headers: list[str], rows: list[list[Any]], numeric: list[bool]) -> str:
    """A GitHub-flavoured table: cells on one line, ``|`` escaped, numbers right-aligned."""
    lines = ["| " + " | ".join(_inline(h) for h in headers) + " |"]
    lines.append("|" + "|".join("---:" if n else "---" for n in numeric) + "|")
    for row in rows:
        lines.append("| " + " | ".join(_inline(format_value(v)) for v in row) + " |")
    return "\n".join(lines)


def metric_of_panel(panel: Mapping[str, Any]) -> str | None:
    """The metric a panel is about: a line plot's first y, a bar plot's first metric, a
    scalar chart's metric, a scatter plot's y, the last column of a parallel
    coordinates plot or the first metric column of a runs table."""
    kind = panel.get("type")
    candidates: list[Any] = []
    if kind == "line_plot":
        y = panel.get("y")
        candidates = [y] if isinstance(y, str) else list(y or [])
    elif kind == "bar_plot":
        candidates = list(panel.get("metrics") or [])
    elif kind == "scalar_chart":
        candidates = [panel.get("metric")]
    elif kind == "scatter_plot":
        candidates = [panel.get("y")]
    elif kind == "parallel_coordinates_plot":
        candidates = list(reversed(panel.get("columns") or []))
    elif kind == "runs_table":
        candidates = [c for c in panel.get("columns") or [] if not str(c).startswith("config.")]
    for c in candidates:
        if isinstance(c, str) and c and c not in _NOT_METRICS and not c.startswith("_"):
            return c
    return None


def default_metric(spec: Mapping[str, Any]) -> str | None:
    """The first metric named by the report's panels (its first panel's, normally)."""
    for block in spec.get("blocks") or []:
        if block.get("type") != "panel_grid":
            continue
        for panel in block.get("panels") or []:
            found = metric_of_panel(panel)
            if found:
                return found
    return None


def lower_is_better(metric: str) -> bool:
    """Whether a metric's name says lower is better (a loss, an error rate...)."""
    return bool(_LOWER_IS_BETTER.search(re.split(r"[./]", metric)[-1]))


def _filter_field(metric: str) -> str:
    """The field of a run filter (and order) holding ``metric``."""
    if metric.startswith("config."):
        return metric
    if metric.startswith("summary."):
        return "summary_metrics." + metric[len("summary.") :]
    if metric.startswith("summary_metrics."):
        return metric
    return "summary_metrics." + metric


def _value_path(metric: str) -> str:
    if metric.startswith("summary_metrics."):
        return "summary." + metric[len("summary_metrics.") :]
    if metric.startswith(("config.", "summary.")):
        return metric
    return "summary." + metric


def _check_metric(metric: str) -> str:
    metric = metric.strip()
    if not metric or metric in _NOT_METRICS or metric.endswith("."):
        raise UsageError(
            f"cannot rank runs by {metric!r}: name a number metric, a summary key "
            "(val/acc) or config.KEY",
            metric=metric,
        )
    return metric


def grid_columns(grid: Mapping[str, Any], metric: str) -> list[str]:
    """The columns a grid's panels use, besides name and the metric: group-by keys,
    config keys plotted, the columns of its parallel coordinates plots and runs tables."""
    found: list[str] = []

    def add(path: Any) -> None:
        if isinstance(path, str) and path and path not in (metric, "name") and path not in found:
            found.append(path)

    for panel in grid.get("panels") or []:
        kind = panel.get("type")
        add(panel.get("groupby") or None)
        if kind == "scatter_plot":
            for axis in (panel.get("x"), panel.get("y")):
                if isinstance(axis, str) and axis.startswith("config."):
                    add(axis)
        elif kind in ("parallel_coordinates_plot", "runs_table"):
            for column in panel.get("columns") or []:
                add(column)
    return found


class _TopRuns:
    """The top runs of one grid's runsets by one metric, read through the store."""

    def __init__(self, store: Any, spec: Mapping[str, Any], metric: str, ascending: bool) -> None:
        self.store = store
        self.entity = str(spec.get("entity") or "")
        self.project = str(spec.get("project") or "")
        self.metric = metric
        self.ascending = ascending

    def runsets(self, grid: Mapping[str, Any]) -> list[dict[str, Any]]:
        raw = [r for r in grid.get("runsets") or [] if isinstance(r, Mapping)] or [{}]
        return [
            {
                "name": r.get("name") or "Run set",
                "entity": r.get("entity") or self.entity,
                "project": r.get("project") or self.project,
                "filters": r.get("filters") or None,
            }
            for r in raw
        ]

    def read(self, grid: Mapping[str, Any], top: int) -> tuple[list[Any], int, list[str]]:
        """(the top runs, how many runs have a number for the metric, notes)."""
        field = _filter_field(self.metric)
        is_number = {"$or": [{field: {"$gte": 0}}, {field: {"$lt": 0}}]}
        order = field if self.ascending else f"-{field}"
        runs: dict[tuple[str, str, str], Any] = {}
        counted = 0
        notes: list[str] = []
        for rs in self.runsets(grid):
            filters = {"$and": [rs["filters"], is_number]} if rs["filters"] else is_number
            where = f"{rs['entity']}/{rs['project']}"
            try:
                found = self.store.list_runs(
                    rs["entity"], rs["project"], order=order, limit=top, filters=filters
                )
                counted += int(self.store.count_runs(rs["entity"], rs["project"], filters))
            except StemmaError as exc:
                if exc.code in ("not_found", "forbidden", "unauthenticated"):
                    why = f"{where} does not exist or you cannot read it"
                    notes.append(f"{rs['name']}: no runs ({why}).")
                else:
                    notes.append(f"{rs['name']}: no runs ({exc.message}).")
                continue
            for rec in found:
                runs.setdefault((rec.entity, rec.project, rec.run_id), rec)
        path = _value_path(self.metric)

        def rank(rec: Any) -> tuple[float, str, str]:
            v = number(value_of(rec, path))
            score = float("inf") if v is None else (v if self.ascending else -v)
            return (score, str(rec.name or ""), rec.run_id)

        return sorted(runs.values(), key=rank)[:top], counted, notes


def to_markdown(
    store: Any,
    record: Mapping[str, Any],
    *,
    metric: str | None = None,
    top: int = DEFAULT_TOP,
    ascending: bool | None = None,
    url: str | None = None,
) -> str:
    """The report of ``record`` as Markdown: its text blocks, and per panel grid a table
    of the ``top`` runs by ``metric`` (default: :func:`default_metric`; lowest first for
    losses and errors unless ``ascending`` says otherwise)."""
    if not 1 <= top <= MAX_TOP:
        raise UsageError(f"top must be between 1 and {MAX_TOP}, got {top}", top=top)
    spec = record["spec"]
    blocks = [b for b in spec.get("blocks") or [] if isinstance(b, Mapping)]
    grids = [b for b in blocks if b.get("type") == "panel_grid"]
    chosen = metric
    if grids and chosen is None:
        chosen = default_metric(spec)
        if chosen is None:
            raise UsageError(
                "no panel of this report names a metric to rank runs by: pass --metric",
                report=record.get("id"),
            )
    why = ""
    if chosen is not None:
        chosen = _check_metric(chosen)
        why = "" if metric is not None else ", the first metric of the report's panels"
    asc = ascending if ascending is not None else bool(chosen and lower_is_better(chosen))
    ranking = _TopRuns(store, spec, chosen or "", asc)

    out: list[str] = [f"# {_inline(record.get('title') or spec.get('title') or 'Report')}"]
    description = str(record.get("description") or spec.get("description") or "").strip()
    if description:
        out.append(description)
    headings = [b for b in blocks if b.get("type") in ("h1", "h2")]
    for block in blocks:
        kind = block.get("type")
        if kind == "h1":
            out.append(f"## {_inline(block.get('text'))}")
        elif kind == "h2":
            out.append(f"### {_inline(block.get('text'))}")
        elif kind in ("p", "markdown"):
            text = str(block.get("text") or "").strip()
            if text:
                out.append(text)
        elif kind == "toc" and headings:
            out.append(
                "\n".join(
                    ("  " if h.get("type") == "h2" else "") + f"- {_inline(h.get('text'))}"
                    for h in headings
                )
            )
        elif kind == "panel_grid":
            assert chosen is not None
            out.append(_grid_markdown(ranking, block, top, why))
    where = f"{record.get('entity')}/{record.get('project')}"
    footer = f"Report {record.get('id')}, revision {record.get('revision')}, of {where}"
    out.append(f"---\n{footer}" + (f": <{url}>" if url else "."))
    return "\n\n".join(out) + "\n"


def _grid_markdown(ranking: _TopRuns, grid: Mapping[str, Any], top: int, why: str) -> str:
    metric = ranking.metric
    runs, counted, notes = ranking.read(grid, top)
    columns = grid_columns(grid, metric)
    runsets = ranking.runsets(grid)
    projects = {(rs["entity"], rs["project"]) for rs in runsets}
    show_project = len(projects) > 1
    order = "lowest first" if ranking.ascending else "highest first"
    lines = [
        f"**Top {len(runs)} run{'s' if len(runs) != 1 else ''} by {_code(metric)}** "
        f"({order}{why}; {counted:,} run{'s' if counted != 1 else ''} with a value)"
    ]
    panels = [_panel_caption(p) for p in grid.get("panels") or [] if isinstance(p, Mapping)]
    if panels:
        lines.append("Panels: " + "; ".join(panels) + ".")
    lines.extend(notes)
    text = "\n\n".join(lines)
    if not runs:
        return text + "\n\nNo run of this panel grid has a number for " + _code(metric) + "."
    headers = ["#", "run", *(["project"] if show_project else []), metric, *columns]
    value_path = _value_path(metric)
    rows = []
    for i, rec in enumerate(runs, 1):
        row: list[Any] = [i, rec.name or rec.run_id]
        if show_project:
            row.append(f"{rec.entity}/{rec.project}")
        row.append(value_of(rec, value_path))
        row.extend(value_of(rec, c) for c in columns)
        rows.append(row)
    numeric = [True, False, *([False] if show_project else []), True]
    base = len(numeric)
    for j in range(len(columns)):
        present = [r[base + j] for r in rows if r[base + j] is not None]
        numeric.append(bool(present) and all(number(v) is not None for v in present))
    return text + "\n\n" + markdown_table(headers, rows, numeric)


_PANEL_NAMES = {
    "line_plot": "line plot",
    "bar_plot": "bar plot",
    "scalar_chart": "scalar chart",
    "scatter_plot": "scatter plot",
    "parallel_coordinates_plot": "parallel coordinates",
    "run_comparer": "run comparer",
    "media_browser": "media",
    "runs_table": "runs table",
}


def _panel_caption(panel: Mapping[str, Any]) -> str:
    """'Training Loss (line plot of train/loss, val/loss by config.learning_rate)'."""
    kind = str(panel.get("type"))
    name = _PANEL_NAMES.get(kind, kind)
    keys: list[str] = []
    for field in ("y", "metrics", "metric", "media_keys", "columns"):
        value = panel.get(field)
        if isinstance(value, str):
            keys.append(value)
        elif isinstance(value, list):
            keys.extend(str(v) for v in value)
    if kind == "scatter_plot":
        keys = [f"{panel.get('y')} vs {panel.get('x')}"]
    what = name + (" of " + ", ".join(keys) if keys else "")
    if panel.get("groupby"):
        what += f" by {panel.get('groupby')}"
    title = panel.get("title")
    return _inline(f"{title} ({what})" if title else what)


def write_text(path: Any, text: str) -> int:
    """Write ``text`` (UTF-8) to ``path`` whole (a temporary name, then renamed)."""
    import os
    from pathlib import Path

    target = Path(path)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    data = text.encode("utf-8")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return len(data)

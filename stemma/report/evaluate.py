"""A report's live data: what every block shows, read now, with the reader's rights.

:func:`evaluate` takes a store bound to the reader (the web UI's request store, a share
link's read-only principal, the SDK's backend) and a report spec (the JSON of
:mod:`stemma.report.spec`) and answers, JSON-serializable::

    {"version": 1, "entity", "project", "title", "description",
     "toc": [{"anchor", "level", "text"}],
     "blocks": [{...the block's spec..., "data": {...}}]}

Per block type, ``data`` holds:

* ``h1`` / ``h2``: ``{"anchor"}`` (the element id the table of contents links to);
  ``p``: ``{}`` (its text is shown as text); ``toc``: ``{"entries": toc}``;
  ``markdown``: ``{"html"}``, safe HTML (:func:`render_markdown`).
* ``panel_grid``: ``{"runsets": [...], "runs": [...], "panels": [...]}``. A runset
  entry is its spec filled in (entity/project defaulted) plus ``count`` (runs that
  match), ``shown`` (runs read) and ``note`` (why it has no or fewer runs: a project
  the reader cannot see, an invalid filter, a cap), never an error. ``runs`` is the
  union of the runsets' runs, each ``{"id", "name", "entity", "project", "runset",
  "color", "state", "created_at", "url"}`` (``color`` is the run's palette index;
  ``url`` its run page, or None when links are off). ``panels`` follow the grid's
  panels one to one, each ``{"kind", "note", ...}`` (see the ``_panel_*`` functions):

  - ``line``: ``x`` (one shared, increasing grid) and ``series``, each ``{"label",
    "key", "run" (index into runs, None for a group), "group", "count", "color",
    "y", "min", "max"}`` with ``y`` (and, grouped, the min-max band) aligned to ``x``
    (None where a series has no point). Grouped: one series per group value (and y
    key): the mean across the group's runs, ``min``/``max`` its band.
  - ``bar``: ``bars`` ``{"label", "run", "group", "color", "count", "values",
    "min", "max"}`` (values by metric; means per group).
  - ``scalar``: ``value`` and ``count`` (the mean over the runs), ``groups``.
  - ``scatter``: ``points`` ``{"run", "x", "y"}``.
  - ``parallel``: ``columns`` and ``rows`` ``{"run", "values"}``.
  - ``table``: ``columns`` and ``rows`` ``{"run", "values"}`` (cells JSON scalars).
  - ``comparer``: ``runs`` (run indices) and ``rows`` ``{"key", "values"}``: the
    config and summary keys whose values differ across those runs.
  - ``media``: ``items`` ``{"run", "key", "step", "kind", "digest", "url",
    "caption", "meta"}``: each run's latest media of each key.

Cost: each runset's runs are listed once; the histories a grid's line plots need are
read once per project and key (several keys per request), downsampled so the points
read stay bounded (:data:`POINT_BUDGET`) whatever the number of runs; grids and
groups are computed with numpy.
"""

from __future__ import annotations

import json
import math
import re
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import quote

from stemma.errors import StemmaError

RUNSET_LIMIT = 1000  # runs read per runset
POINT_BUDGET = 100_000  # history points read per line plot key, whatever the run count
MIN_SAMPLES = 100  # ... but at least this many points per run and key
MAX_SAMPLES = 1000  # ... and at most this many (also: x points per line)
BAR_LIMIT = 100  # bars drawn per bar plot (runs, without groupby)
TABLE_LIMIT = 500  # rows of a runs table
PARALLEL_LIMIT = 1000  # lines of a parallel coordinates plot
COMPARER_LIMIT = 20  # runs side by side in a run comparer
COMPARER_KEYS = 200  # differing keys listed
MEDIA_RUN_LIMIT = 24  # runs whose media a media browser shows
DEFAULT_TABLE_SUMMARY_KEYS = 4  # summary columns of a runs table without columns
RUN_FIELDS = ("name", "state", "created_at", "job_type", "group", "tags", "user", "id")
NONE_LABEL = "(none)"

MediaUrl = Callable[[str, str, str, str], str]


def api_media_url(entity: str, project: str, run_id: str, digest: str) -> str:
    """The API route of a run's media blob (what a signed-in page loads)."""
    parts = (entity, project, run_id, digest)
    e, p, r, d = (quote(str(x), safe="") for x in parts)
    return f"/api/v1/runs/{e}/{p}/{r}/media/{d}"


def run_page_url(entity: str, project: str, run_id: str) -> str:
    e, p, r = (quote(str(x), safe="") for x in (entity, project, run_id))
    return f"/p/{e}/{p}/r/{r}"


def evaluate(
    store: Any,
    spec: Mapping[str, Any],
    *,
    media_url: MediaUrl | None = None,
    run_links: bool = True,
) -> dict[str, Any]:
    """The data of every block of ``spec``, read through ``store`` (bound to the reader).

    ``media_url(entity, project, run_id, digest)`` makes the media URLs (default: the
    API's route); ``run_links=False`` leaves runs without a link to their page (a
    shared or exported report, whose readers may not be signed in).
    """
    ev = _Evaluation(store, spec, media_url or api_media_url, run_links)
    return ev.run()


# ------------------------------------------------------------------ markdown


def _allowed_link(url: str) -> bool:
    """http(s), mailto and relative links only (no javascript:, data:, vbscript:...)."""
    squeezed = re.sub(r"[\x00-\x20\x7f]+", "", url).lower()
    scheme = re.match(r"^([a-z][a-z0-9+.\-]*):", squeezed)
    if scheme:
        return scheme.group(1) in ("http", "https", "mailto")
    # No scheme: relative, or a colon hidden behind characters browsers strip.
    return ":" not in squeezed.split("/", 1)[0] and "&" not in squeezed.split("/", 1)[0]


_MD: Any = None


def _markdown() -> Any:
    global _MD
    if _MD is None:
        from markdown_it import MarkdownIt

        md = MarkdownIt("commonmark", {"html": False})
        md.validateLink = _allowed_link  # type: ignore[method-assign]

        def link_open(self: Any, tokens: Any, idx: int, options: Any, env: Any) -> str:
            tokens[idx].attrSet("rel", "nofollow noopener noreferrer")
            return str(self.renderToken(tokens, idx, options, env))

        md.add_render_rule("link_open", link_open)
        _MD = md
    return _MD


def render_markdown(text: str) -> str:
    """``text`` (CommonMark) as HTML that runs nothing: raw HTML is escaped, links and
    images keep only http(s)/mailto/relative targets, links get rel=nofollow."""
    return str(_markdown().render(str(text or "")))


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-")[:40]


# ------------------------------------------------------------------ values of runs


def _lookup(data: Any, path: str) -> Any:
    """``path`` in ``data``: the flat key first, else the nested path (as filters do)."""
    if not isinstance(data, Mapping):
        return None
    if path in data:
        return data[path]
    for part in path.split("."):
        if not isinstance(data, Mapping) or part not in data:
            return None
        data = data[part]
    return data


def value_of(run: Any, path: str) -> Any:
    """A run's value at a metric path: ``config.X``, ``summary.X``, a run field
    (``name``, ``state``, ``created_at``...), else a summary key."""
    if path.startswith("config."):
        return _lookup(run.config, path[7:])
    if path.startswith("summary."):
        return _lookup(run.summary, path[8:])
    if path in ("name", "display_name"):
        return run.name
    if path in ("id", "run_id"):
        return run.run_id
    if path == "state":
        return run.state
    if path in ("created_at", "createdAt"):
        return run.created_at.isoformat(timespec="seconds") if run.created_at else None
    if path in ("job_type", "jobType"):
        return run.job_type
    if path == "group":
        return run.group
    if path == "tags":
        return list(run.tags or [])
    if path in ("user", "username"):
        return run.user
    if path == "runtime":
        return run.runtime
    if path == "last_step":
        return run.last_step
    return _lookup(run.summary, path)


def number(value: Any) -> float | None:
    """A finite number, or None (bools, text, NaN, objects are not numbers here)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    f = float(value)
    return f if math.isfinite(f) else None


def cell(value: Any) -> Any:
    """A value as a JSON scalar for a table cell (objects as short text)."""
    if value is None or isinstance(value, bool | str | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Mapping):
        if "$float" in value:
            return str(value["$float"])
        if "_type" in value:
            return f"[{value['_type']}]"
    if isinstance(value, list | tuple) and all(isinstance(v, str | int | float) for v in value):
        return ", ".join(str(v) for v in value)
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= 200 else text[:199] + "…"


def group_value(run: Any, groupby: str) -> Any:
    """The value a run is grouped under (tags: the sorted tags, joined)."""
    if groupby == "tags":
        return ", ".join(sorted(run.tags or [])) or None
    return cell(value_of(run, groupby))


def _group_order(value: Any) -> tuple[int, Any]:
    if value is None:
        return (3, "")
    if isinstance(value, bool):
        return (2, str(value))
    if isinstance(value, int | float):
        return (0, float(value))
    return (1, str(value))


def _label(value: Any) -> str:
    if value is None:
        return NONE_LABEL
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _round(values: Any, digits: int = 7) -> list[Any]:
    """A float array as a JSON list: ``digits`` significant digits (shorter JSON; x
    values keep 12, enough for timestamps), NaN -> None."""
    import numpy as np

    arr = np.asarray(values, dtype="f8")
    finite = np.isfinite(arr)
    out = arr.copy()
    if finite.any():
        with np.errstate(divide="ignore", invalid="ignore"):
            mag = np.floor(np.log10(np.abs(np.where(finite & (arr != 0), arr, 1.0))))
            scale = 10.0 ** (digits - 1 - mag)
            rounded = np.round(arr * scale) / scale
        ok = finite & np.isfinite(rounded)
        out = np.where(ok, rounded, arr)
    listed: list[Any] = out.tolist()
    if not finite.all():
        for i in np.flatnonzero(~finite).tolist():
            listed[i] = None
    return listed


# ------------------------------------------------------------------ the evaluation


class _Runset:
    def __init__(self, index: int, spec: dict[str, Any]) -> None:
        self.index = index
        self.spec = spec
        self.records: list[Any] = []
        self.count = 0
        self.note: str | None = None


class _Evaluation:
    def __init__(
        self, store: Any, spec: Mapping[str, Any], media_url: MediaUrl, run_links: bool
    ) -> None:
        self.store = store
        self.spec = spec
        self.entity = str(spec.get("entity") or "")
        self.project = str(spec.get("project") or "")
        self.media_url = media_url
        self.run_links = run_links
        self.runs_cache: dict[str, _Runset] = {}

    def run(self) -> dict[str, Any]:
        blocks = [dict(b) for b in self.spec.get("blocks") or [] if isinstance(b, Mapping)]
        toc: list[dict[str, Any]] = []
        for i, block in enumerate(blocks):
            kind = block.get("type")
            if kind in ("h1", "h2"):
                anchor = f"s{i}-{_slug(block.get('text', ''))}".rstrip("-")
                block["data"] = {"anchor": anchor}
                toc.append({"anchor": anchor, "level": int(kind[1]), "text": block.get("text")})
        for block in blocks:
            kind = block.get("type")
            if kind == "markdown":
                block["data"] = {"html": render_markdown(block.get("text", ""))}
            elif kind == "toc":
                block["data"] = {"entries": toc}
            elif kind == "panel_grid":
                block["data"] = self.panel_grid(block)
            elif "data" not in block:
                block["data"] = {}
        return {
            "version": self.spec.get("version", 1),
            "entity": self.entity,
            "project": self.project,
            "title": self.spec.get("title", ""),
            "description": self.spec.get("description", ""),
            "toc": toc,
            "blocks": blocks,
        }

    # -------------------------------------------------------------- runsets

    def runset(self, index: int, raw: Mapping[str, Any]) -> _Runset:
        spec = {
            "name": raw.get("name") or "Run set",
            "entity": raw.get("entity") or self.entity,
            "project": raw.get("project") or self.project,
            "filters": raw.get("filters") or None,
            "order": raw.get("order") or "-created_at",
        }
        key = json.dumps(spec, sort_keys=True, default=str)
        cached = self.runs_cache.get(key)
        rs = _Runset(index, spec)
        if cached is not None:
            rs.records, rs.count, rs.note = cached.records, cached.count, cached.note
            return rs
        path = f"{spec['entity']}/{spec['project']}"
        try:
            rs.records = list(
                self.store.list_runs(
                    spec["entity"],
                    spec["project"],
                    order=spec["order"],
                    limit=RUNSET_LIMIT,
                    filters=spec["filters"],
                )
            )
            rs.count = len(rs.records)
            if rs.count >= RUNSET_LIMIT:
                rs.count = int(
                    self.store.count_runs(spec["entity"], spec["project"], spec["filters"])
                )
                rs.note = f"Showing the first {RUNSET_LIMIT:,} of {rs.count:,} runs."
        except StemmaError as exc:
            if exc.code in ("not_found", "forbidden", "unauthenticated"):
                rs.note = f"No runs: {path} does not exist or you cannot read it."
            else:
                rs.note = f"No runs: {exc.message}"
        self.runs_cache[key] = rs
        return rs

    def panel_grid(self, block: Mapping[str, Any]) -> dict[str, Any]:
        raw_sets = [r for r in block.get("runsets") or [] if isinstance(r, Mapping)]
        if not raw_sets:
            raw_sets = [{}]
        runsets = [self.runset(i, r) for i, r in enumerate(raw_sets)]
        runs: list[Any] = []
        entries: list[dict[str, Any]] = []
        seen: set[tuple[str, str, str]] = set()
        for rs in runsets:
            for rec in rs.records:
                ident = (rec.entity, rec.project, rec.run_id)
                if ident in seen:
                    continue
                seen.add(ident)
                entries.append(
                    {
                        "id": rec.run_id,
                        "name": rec.name,
                        "entity": rec.entity,
                        "project": rec.project,
                        "runset": rs.index,
                        "color": len(runs),
                        "state": rec.state,
                        "created_at": value_of(rec, "created_at"),
                        "url": run_page_url(rec.entity, rec.project, rec.run_id)
                        if self.run_links
                        else None,
                    }
                )
                runs.append(rec)
        panels = [p for p in block.get("panels") or [] if isinstance(p, Mapping)]
        histories = _Histories(self.store, runs)
        for panel in panels:
            if panel.get("type") == "line_plot":
                chosen, _ = self._line_runs(panel, runs)
                histories.want(chosen, _line_keys(panel))
        histories.fetch()
        out_panels = []
        for panel in panels:
            try:
                drawn = self.panel(panel, runs, histories)
            except StemmaError as exc:
                drawn = {"kind": "error", "note": exc.message}
            drawn["title"] = panel_title(panel)
            out_panels.append(drawn)
        return {
            "runsets": [
                {**rs.spec, "count": rs.count, "shown": len(rs.records), "note": rs.note}
                for rs in runsets
            ],
            "runs": entries,
            "panels": out_panels,
        }

    def panel(self, panel: Mapping[str, Any], runs: list[Any], hist: _Histories) -> dict:
        kind = panel.get("type")
        if kind == "line_plot":
            return self._panel_line(panel, runs, hist)
        if kind == "bar_plot":
            return _panel_bar(panel, runs)
        if kind == "scalar_chart":
            return _panel_scalar(panel, runs)
        if kind == "scatter_plot":
            return _panel_scatter(panel, runs)
        if kind == "parallel_coordinates_plot":
            return _panel_parallel(panel, runs)
        if kind == "runs_table":
            return _panel_table(panel, runs)
        if kind == "run_comparer":
            return _panel_comparer(runs)
        if kind == "media_browser":
            return self._panel_media(panel, runs)
        return {"kind": "unknown", "note": f"unknown panel type {kind!r}"}

    # -------------------------------------------------------------- line plots

    @staticmethod
    def _line_runs(panel: Mapping[str, Any], runs: list[Any]) -> tuple[list[int], int]:
        limit = panel.get("max_runs")
        cap = int(limit) if isinstance(limit, int) and limit > 0 else 500
        return list(range(min(cap, len(runs)))), cap

    def _panel_line(self, panel: Mapping[str, Any], runs: list[Any], hist: _Histories) -> dict:
        import numpy as np

        chosen, cap = self._line_runs(panel, runs)
        ys = _as_list(panel.get("y"))
        x_key = str(panel.get("x") or "_step")
        groupby = panel.get("groupby") or None
        out: dict[str, Any] = {
            "kind": "line",
            "x_key": x_key,
            "x_kind": {"_step": "step", "_runtime": "runtime", "_timestamp": "time"}.get(
                x_key, "value"
            ),
            "y_keys": ys,
            "groupby": groupby,
            "grouped": bool(groupby),
            "smoothing": panel.get("smoothing") or 0.0,
            "log_x": bool(panel.get("log_x")),
            "log_y": bool(panel.get("log_y")),
            "range_x": panel.get("range_x"),
            "range_y": panel.get("range_y"),
            "runs_total": len(runs),
            "runs_drawn": len(chosen),
            "capped": len(runs) > cap,
            "x": [],
            "series": [],
            "groups": 0,
            "points": 0,
            "note": f"Drawing the first {cap:,} of {len(runs):,} runs (max_runs)."
            if len(runs) > cap
            else None,
        }
        if not chosen or not ys:
            return out
        # Points of every (run, key) line: x, y and which line.
        xs_parts: list[Any] = []
        ys_parts: list[Any] = []
        line_parts: list[Any] = []
        lines: list[tuple[int, str]] = []  # line index -> (run index, key)
        for ri in chosen:
            rec = runs[ri]
            cols = hist.get(rec)
            for key in ys:
                col = cols.get(key)
                if col is None or not len(col):
                    continue
                steps, values = _numeric(col)
                if x_key == "_step":
                    xv = steps
                else:
                    xcol = cols.get(x_key)
                    if xcol is None or not len(xcol):
                        continue
                    xs_steps, xs_vals = _numeric(xcol)
                    good = np.isfinite(xs_vals)
                    if not good.any():
                        continue
                    xv = np.interp(steps, xs_steps[good], xs_vals[good])
                keep = np.isfinite(values) & np.isfinite(xv)
                if not keep.any():
                    continue
                xs_parts.append(xv[keep])
                ys_parts.append(values[keep])
                line_parts.append(np.full(int(keep.sum()), len(lines), dtype=np.int64))
                lines.append((ri, key))
        if not lines:
            out["note"] = (out["note"] or "") + " No history of these keys in these runs."
            out["note"] = out["note"].strip()
            return out
        px = np.concatenate(xs_parts)
        py = np.concatenate(ys_parts)
        pl = np.concatenate(line_parts)
        grid_x, gidx = _grid(px, hist.samples)
        g = len(grid_x)
        cells = pl * g + gidx
        size = len(lines) * g
        sums = np.bincount(cells, weights=py, minlength=size).reshape(len(lines), g)
        counts = np.bincount(cells, minlength=size).reshape(len(lines), g)
        with np.errstate(invalid="ignore", divide="ignore"):
            matrix = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
        out["x"] = _round(grid_x, 12)
        series: list[dict[str, Any]] = []
        if not groupby:
            for li, (ri, key) in enumerate(lines):
                name = runs[ri].name
                series.append(
                    {
                        "label": name if len(ys) == 1 else f"{name} · {key}",
                        "key": key,
                        "run": ri,
                        "group": None,
                        "count": 1,
                        "color": ri if len(ys) == 1 else li,
                        "y": _round(matrix[li]),
                        "min": None,
                        "max": None,
                    }
                )
        else:
            values = [group_value(runs[ri], str(groupby)) for ri, _ in lines]
            order = sorted(
                {json.dumps(v, sort_keys=True): v for v in values}.values(), key=_group_order
            )
            index = {json.dumps(v, sort_keys=True): i for i, v in enumerate(order)}
            line_group = np.array([index[json.dumps(v, sort_keys=True)] for v in values])
            line_key = np.array([ys.index(k) for _, k in lines])
            for gi, value in enumerate(order):
                for ki, key in enumerate(ys):
                    rows = matrix[(line_group == gi) & (line_key == ki)]
                    if not len(rows):
                        continue
                    mean, lo, hi = _mean_band(rows)
                    label = _label(value)
                    series.append(
                        {
                            "label": label if len(ys) == 1 else f"{label} · {key}",
                            "key": key,
                            "run": None,
                            "group": value,
                            "count": len(rows),
                            "color": gi if len(ys) == 1 else len(series),
                            "y": _round(mean),
                            "min": _round(lo),
                            "max": _round(hi),
                        }
                    )
            out["groups"] = len(order)
        out["series"] = series
        out["points"] = int(sum(sum(v is not None for v in s["y"]) for s in series))
        return out

    # -------------------------------------------------------------- media

    def _panel_media(self, panel: Mapping[str, Any], runs: list[Any]) -> dict:
        keys = _as_list(panel.get("media_keys"))
        items: list[dict[str, Any]] = []
        note = None
        if len(runs) > MEDIA_RUN_LIMIT:
            note = f"Media of the first {MEDIA_RUN_LIMIT} of {len(runs):,} runs."
        for ri, rec in enumerate(runs[:MEDIA_RUN_LIMIT]):
            try:
                found = self.store.list_media(rec.ref, None)
            except StemmaError:
                continue
            latest: dict[str, dict[str, Any]] = {}
            for item in found:
                key = item.get("key")
                if keys and key not in keys:
                    continue
                if key not in latest or item.get("step", 0) >= latest[key].get("step", 0):
                    latest[key] = item
            for key in sorted(latest, key=lambda k: keys.index(k) if k in keys else len(keys)):
                item = latest[key]
                meta = dict(item.get("meta") or {})
                for sub in meta.get("items") or []:
                    if isinstance(sub, dict) and isinstance(sub.get("sha256"), str):
                        sub["url"] = self.media_url(
                            rec.entity, rec.project, rec.run_id, sub["sha256"]
                        )
                items.append(
                    {
                        "run": ri,
                        "key": key,
                        "step": item.get("step"),
                        "kind": item.get("kind"),
                        "digest": item.get("digest"),
                        "url": self.media_url(
                            rec.entity, rec.project, rec.run_id, str(item.get("digest"))
                        ),
                        "caption": item.get("caption"),
                        "meta": meta,
                    }
                )
        return {"kind": "media", "keys": keys, "items": items, "note": note}


def panel_title(panel: Mapping[str, Any]) -> str:
    """A panel's title: its own, else one made from its keys ("val/loss by config.lr")."""
    if panel.get("title"):
        return str(panel["title"])
    kind = panel.get("type")
    if kind == "line_plot":
        text = ", ".join(_as_list(panel.get("y")))
        x = panel.get("x") or "_step"
        if x != "_step":
            text += f" vs {x}"
        return text + (f" by {panel['groupby']}" if panel.get("groupby") else "")
    if kind == "bar_plot":
        text = ", ".join(_as_list(panel.get("metrics")))
        return text + (f" by {panel['groupby']}" if panel.get("groupby") else "")
    if kind == "scalar_chart":
        text = str(panel.get("metric") or "")
        return text + (f" by {panel['groupby']}" if panel.get("groupby") else "")
    if kind == "scatter_plot":
        return f"{panel.get('y')} vs {panel.get('x')}"
    if kind == "media_browser":
        return ", ".join(_as_list(panel.get("media_keys"))) or "Media"
    return {
        "parallel_coordinates_plot": "Parallel coordinates",
        "run_comparer": "Run comparer",
        "runs_table": "Runs",
    }.get(str(kind), str(kind))


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


def _line_keys(panel: Mapping[str, Any]) -> list[str]:
    keys = _as_list(panel.get("y"))
    x = str(panel.get("x") or "_step")
    if x != "_step" and x not in keys:
        keys.append(x)
    return keys


def _numeric(col: Any) -> tuple[Any, Any]:
    """A history column as float arrays (steps, values); non-numbers become NaN."""
    import numpy as np

    steps = np.asarray(col.steps, dtype="f8")
    if col.kind == "m":
        values = np.array([number(v) if number(v) is not None else np.nan for v in col.values])
        return steps, values.astype("f8") if len(values) else np.zeros(0)
    return steps, np.asarray(col.values, dtype="f8")


def _grid(x: Any, buckets: int) -> tuple[Any, Any]:
    """The shared x grid of a plot's points and each point's place on it: the distinct x
    values when there are at most ``buckets`` of them (exact), else ``buckets`` equal
    ranges, each at its centre."""
    import numpy as np

    distinct, inverse = np.unique(x, return_inverse=True)
    if len(distinct) <= buckets:
        return distinct, inverse.astype(np.int64)
    lo, hi = float(distinct[0]), float(distinct[-1])
    width = (hi - lo) / buckets
    idx = np.minimum(((x - lo) / width).astype(np.int64), buckets - 1)
    used = np.unique(idx)  # only buckets holding points
    centres = lo + (used + 0.5) * width
    return centres, np.searchsorted(used, idx).astype(np.int64)


def _mean_band(rows: Any) -> tuple[Any, Any, Any]:
    """Column-wise mean, min and max of ``rows`` ignoring NaN (NaN where all are)."""
    import numpy as np

    present = ~np.isnan(rows)
    n = present.sum(axis=0)
    total = np.where(present, rows, 0.0).sum(axis=0)
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.where(n > 0, total / np.maximum(n, 1), np.nan)
        lo = np.fmin.reduce(rows, axis=0)
        hi = np.fmax.reduce(rows, axis=0)
    return mean, lo, hi


class _Histories:
    """The history columns a panel grid's line plots need, read once per project and
    set of runs (all their keys in one request), downsampled to :attr:`samples` points
    per run and key so that the points read stay near POINT_BUDGET per key."""

    def __init__(self, store: Any, runs: list[Any]) -> None:
        self.store = store
        self.runs = runs
        self.wanted: dict[tuple[str, str], dict[str, set[str]]] = {}
        self.got: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.samples = MAX_SAMPLES

    def want(self, run_indices: Sequence[int], keys: Iterable[str]) -> None:
        keys = list(keys)
        for ri in run_indices:
            rec = self.runs[ri]
            by_key = self.wanted.setdefault((rec.entity, rec.project), {})
            for key in keys:
                by_key.setdefault(key, set()).add(rec.run_id)

    def fetch(self) -> None:
        from stemma.backend.base import MAX_HISTORY_RUNS

        most = max((len(ids) for k in self.wanted.values() for ids in k.values()), default=1)
        self.samples = max(MIN_SAMPLES, min(MAX_SAMPLES, POINT_BUDGET // max(1, most)))
        for (entity, project), by_key in self.wanted.items():
            plans: dict[tuple[str, ...], list[str]] = {}  # the same runs: one request
            for key, id_set in by_key.items():
                plans.setdefault(tuple(sorted(id_set)), []).append(key)
            for ids, keys in plans.items():
                for i in range(0, len(ids), MAX_HISTORY_RUNS):
                    batch = list(ids[i : i + MAX_HISTORY_RUNS])
                    try:
                        got = self.store.read_histories(
                            entity, project, batch, sorted(keys), samples=self.samples
                        )
                    except StemmaError:
                        continue
                    for run_id, cols in got.items():
                        self.got.setdefault((entity, project, run_id), {}).update(cols)

    def get(self, rec: Any) -> dict[str, Any]:
        return self.got.get((rec.entity, rec.project, rec.run_id), {})


# ------------------------------------------------------------------ other panels


def _groups(runs: list[Any], groupby: str) -> list[tuple[Any, list[int]]]:
    """(value, run indices) per value of ``groupby``, in value order."""
    found: dict[str, tuple[Any, list[int]]] = {}
    for i, rec in enumerate(runs):
        v = group_value(rec, groupby)
        found.setdefault(json.dumps(v, sort_keys=True), (v, []))[1].append(i)
    return sorted(found.values(), key=lambda item: _group_order(item[0]))


def _stats(values: list[float]) -> tuple[float | None, float | None, float | None]:
    if not values:
        return None, None, None
    return sum(values) / len(values), min(values), max(values)


def _panel_bar(panel: Mapping[str, Any], runs: list[Any]) -> dict:
    metrics = _as_list(panel.get("metrics"))
    groupby = panel.get("groupby") or None
    bars: list[dict[str, Any]] = []
    note = None
    if groupby:
        for gi, (value, members) in enumerate(_groups(runs, str(groupby))):
            vals: dict[str, Any] = {}
            mins: dict[str, Any] = {}
            maxs: dict[str, Any] = {}
            count = 0
            for m in metrics:
                nums = [n for i in members if (n := number(value_of(runs[i], m))) is not None]
                vals[m], mins[m], maxs[m] = _stats(nums)
                count = max(count, len(nums))
            bars.append(
                {
                    "label": _label(value),
                    "run": None,
                    "group": value,
                    "color": gi,
                    "count": count,
                    "values": vals,
                    "min": mins,
                    "max": maxs,
                }
            )
    else:
        with_values = [
            i
            for i, r in enumerate(runs)
            if any(number(value_of(r, m)) is not None for m in metrics)
        ]
        if len(with_values) > BAR_LIMIT:
            note = f"The first {BAR_LIMIT} of {len(with_values):,} runs with these metrics."
        for i in with_values[:BAR_LIMIT]:
            vals = {m: number(value_of(runs[i], m)) for m in metrics}
            bars.append(
                {
                    "label": runs[i].name,
                    "run": i,
                    "group": None,
                    "color": i,
                    "count": 1,
                    "values": vals,
                    "min": None,
                    "max": None,
                }
            )
    return {"kind": "bar", "metrics": metrics, "groupby": groupby, "bars": bars, "note": note}


def _panel_scalar(panel: Mapping[str, Any], runs: list[Any]) -> dict:
    metric = str(panel.get("metric") or "")
    groupby = panel.get("groupby") or None
    nums = [n for r in runs if (n := number(value_of(r, metric))) is not None]
    mean, lo, hi = _stats(nums)
    groups = []
    if groupby:
        for gi, (value, members) in enumerate(_groups(runs, str(groupby))):
            g = [n for i in members if (n := number(value_of(runs[i], metric))) is not None]
            gm, glo, ghi = _stats(g)
            groups.append(
                {"label": _label(value), "group": value, "color": gi, "value": gm,
                 "min": glo, "max": ghi, "count": len(g)}
            )  # fmt: skip
    return {
        "kind": "scalar",
        "metric": metric,
        "groupby": groupby,
        "value": mean,
        "min": lo,
        "max": hi,
        "count": len(nums),
        "groups": groups,
        "note": None if nums else f"No run has a number for {metric}.",
    }


def _panel_scatter(panel: Mapping[str, Any], runs: list[Any]) -> dict:
    x, y = str(panel.get("x") or ""), str(panel.get("y") or "")
    points = []
    for i, rec in enumerate(runs):
        px, py = number(value_of(rec, x)), number(value_of(rec, y))
        if px is not None and py is not None:
            points.append({"run": i, "x": px, "y": py})
    return {
        "kind": "scatter",
        "x_key": x,
        "y_key": y,
        "points": points,
        "note": None if points else f"No run has numbers for both {x} and {y}.",
    }


def _panel_parallel(panel: Mapping[str, Any], runs: list[Any]) -> dict:
    columns = _as_list(panel.get("columns"))
    rows = []
    for i, rec in enumerate(runs[:PARALLEL_LIMIT]):
        values = [cell(value_of(rec, c)) for c in columns]
        if any(v is not None for v in values):
            rows.append({"run": i, "values": values})
    note = None
    if len(runs) > PARALLEL_LIMIT:
        note = f"The first {PARALLEL_LIMIT:,} of {len(runs):,} runs."
    return {"kind": "parallel", "columns": columns, "rows": rows, "note": note}


def default_columns(runs: list[Any]) -> list[str]:
    """name, state, created_at and the summary keys most runs have (a few)."""
    counts: dict[str, int] = {}
    for rec in runs[:200]:
        for k, v in (rec.summary or {}).items():
            if not k.startswith("_") and number(v) is not None:
                counts[k] = counts.get(k, 0) + 1
    common = sorted(counts, key=lambda k: (-counts[k], k))[:DEFAULT_TABLE_SUMMARY_KEYS]
    return ["name", "state", "created_at", *sorted(common)]


def _panel_table(panel: Mapping[str, Any], runs: list[Any]) -> dict:
    columns = _as_list(panel.get("columns")) or default_columns(runs)
    rows = [
        {"run": i, "values": [cell(value_of(rec, c)) for c in columns]}
        for i, rec in enumerate(runs[:TABLE_LIMIT])
    ]
    note = None
    if len(runs) > TABLE_LIMIT:
        note = f"The first {TABLE_LIMIT:,} of {len(runs):,} runs."
    return {"kind": "table", "columns": columns, "rows": rows, "note": note}


def _flat(prefix: str, data: Any, out: dict[str, Any]) -> None:
    if isinstance(data, Mapping) and data and not ("_type" in data or "$float" in data):
        for k, v in data.items():
            _flat(f"{prefix}.{k}", v, out)
    else:
        out[prefix] = data


def _panel_comparer(runs: list[Any]) -> dict:
    shown = list(range(min(COMPARER_LIMIT, len(runs))))
    flats: list[dict[str, Any]] = []
    for i in shown:
        flat: dict[str, Any] = {}
        rec = runs[i]
        for k, v in (rec.config or {}).items():
            _flat(f"config.{k}", v, flat)
        for k, v in (rec.summary or {}).items():
            if not str(k).startswith("_"):
                _flat(f"summary.{k}", v, flat)
        flats.append(flat)
    keys = sorted({k for f in flats for k in f}, key=lambda k: (not k.startswith("config."), k))
    rows = []
    missing = object()
    for key in keys:
        raw = [f.get(key, missing) for f in flats]
        distinct = {
            json.dumps(None if v is missing else v, sort_keys=True, default=str) for v in raw
        }
        if len(distinct) > 1 or len(shown) == 1:
            rows.append({"key": key, "values": [None if v is missing else cell(v) for v in raw]})
    note = None
    if len(runs) > COMPARER_LIMIT:
        note = f"The first {COMPARER_LIMIT} of {len(runs):,} runs."
    if len(rows) > COMPARER_KEYS:
        note = (note + " " if note else "") + f"The first {COMPARER_KEYS} differing keys."
        rows = rows[:COMPARER_KEYS]
    return {"kind": "comparer", "runs": shown, "rows": rows, "note": note}

"""Report specs: the JSON document a report is, checked and normalized in one place.

The Python blocks (:mod:`stemma.report.blocks`), the REST API and the web UI's editor
all move the same document; :func:`validate_spec` is the one check every save goes
through, on both backends, so a bad report is refused with the same message wherever
it comes from and nothing is stored. It returns a *normalized* copy: every field
present (defaults filled in), a single metric name given for a list turned into a
one-item list, and every runset's entity and project spelled out (a panel grid with no
runsets gets one of the report's own project). Saving a normalized spec again changes
nothing.

The document (version 1)::

    {"version": 1, "entity": "team-a", "project": "text-classifier",
     "title": "...", "description": "...",
     "blocks": [{"type": "h1", "text": "..."}, {"type": "markdown", "text": "..."},
                {"type": "toc"},
                {"type": "panel_grid",
                 "runsets": [{"name": "Run set", "entity": "team-a",
                              "project": "text-classifier",
                              "filters": {"state": "finished"}, "order": "-created_at"}],
                 "panels": [{"type": "line_plot", "x": "_step", "y": ["val/loss"], ...}]}]}

Block types: ``h1``, ``h2``, ``p``, ``markdown`` (``text``), ``toc``, ``panel_grid``.
Panel types and their fields are in :data:`PANEL_FIELDS`. Metric paths: a bare key
(``val/acc``, ``_step``) is a history or summary key; ``config.X`` (nested with dots)
and ``summary.X`` are explicit. ``groupby`` takes ``config.X`` or one of
:data:`GROUPBY_FIELDS`. Runset ``filters`` and ``order`` are those of
``Api().runs`` (:mod:`stemma.wire.filters`).

Every refusal is an :class:`~stemma.errors.InvalidValueError` whose message names the
block, the panel or runset and the field, e.g. ``block 2 (panel_grid), panel 1
(line_plot): y must be a non-empty list of metric names``, with the same facts in its
context (``block``, ``panel``, ``runset``, ``field``).

Pure Python (no database, no pydantic): ``import stemma`` stays light.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable, Mapping
from typing import Any

from stemma.errors import InvalidValueError, StemmaError

SPEC_VERSION = 1
MAX_SPEC_BYTES = 1 << 20  # the whole spec, as compact JSON
MAX_BLOCKS = 500
MAX_PANELS = 100  # per panel grid
MAX_RUNSETS = 20  # per panel grid
MAX_LIST = 100  # metric names in one list field
MAX_TEXT = 200_000  # characters of one text block
MAX_TITLE = 256
MAX_DESCRIPTION = 10_000
MAX_METRIC = 512
MAX_RUNS = 1000  # a line plot's max_runs (one multi-run history read)

GROUPBY_FIELDS = ("group", "job_type", "state", "tags", "user")
TEXT_BLOCKS = ("h1", "h2", "p", "markdown")
BLOCK_TYPES = (*TEXT_BLOCKS, "toc", "panel_grid")
DEFAULT_RUNSET_NAME = "Run set"
DEFAULT_ORDER = "-created_at"

_REQUIRED = object()


class _Where:
    """Where in the spec a check is: for messages ("block 2 (panel_grid), panel 1
    (line_plot)") and the error's context."""

    def __init__(self, text: str = "", **context: Any) -> None:
        self.text = text
        self.context = context

    def child(self, text: str, **context: Any) -> _Where:
        return _Where(f"{self.text}, {text}" if self.text else text, **self.context, **context)

    def fail(self, message: str, field: str | None = None) -> InvalidValueError:
        prefix = f"{self.text}: " if self.text else ""
        ctx = dict(self.context)
        if field is not None:
            # an unknown field's name is the caller's: keep it printable (JSON-safe)
            ctx["field"] = field if field.isprintable() and field.isascii() else repr(field)
        return InvalidValueError(f"{prefix}{message}", **ctx)


def _show(value: Any) -> str:
    return repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."


# ------------------------------------------------------------------ field checks
# Each takes (value, where, field name) and returns the normalized value or raises.


def _bool(value: Any, where: _Where, name: str) -> bool:
    if not isinstance(value, bool):
        raise where.fail(f"{name} must be true or false, got {_show(value)}", name)
    return value


def _opt_title(value: Any, where: _Where, name: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > MAX_TITLE:
        raise where.fail(
            f"{name} must be a string of at most {MAX_TITLE} characters (or null), "
            f"got {_show(value)}",
            name,
        )
    return value


def _text(value: Any, where: _Where, name: str) -> str:
    if not isinstance(value, str):
        raise where.fail(f"{name} must be a string, got {_show(value)}", name)
    if len(value) > MAX_TEXT:
        raise where.fail(
            f"{name} is {len(value):,} characters long; at most {MAX_TEXT:,} are allowed", name
        )
    return value


def check_metric(value: Any) -> str | None:
    """Why ``value`` is not a metric path (None when it is one)."""
    if not isinstance(value, str):
        return "not a string"
    if not value.strip():
        return "empty"
    if len(value) > MAX_METRIC:
        return f"longer than {MAX_METRIC} characters"
    if any(ord(c) < 32 for c in value):
        return "contains a control character"
    head, dot, rest = value.partition(".")
    if dot and head in ("config", "summary"):
        parts = rest.split(".")
        if any(p == "" for p in parts):
            return f"'{head}.' must be followed by a key (no empty parts)"
        if any('"' in p for p in parts):
            return "a key may not contain '\"'"
    return None


def _metric(value: Any, where: _Where, name: str) -> str:
    problem = check_metric(value)
    if problem is not None:
        raise where.fail(f"{name} must be a metric name, got {_show(value)} ({problem})", name)
    return str(value)


def _metric_list(value: Any, where: _Where, name: str) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple) or not value:
        raise where.fail(
            f"{name} must be a non-empty list of metric names, got {_show(value)}", name
        )
    if len(value) > MAX_LIST:
        raise where.fail(f"{name} has {len(value)} metric names; at most {MAX_LIST}", name)
    out = []
    for i, item in enumerate(value):
        problem = check_metric(item)
        if problem is not None:
            raise where.fail(
                f"{name}[{i}] must be a metric name, got {_show(item)} ({problem})", name
            )
        out.append(item)
    return out


def _opt_metric_list(value: Any, where: _Where, name: str) -> list[str] | None:
    return None if value is None else _metric_list(value, where, name)


def check_groupby(value: Any) -> str | None:
    """Why ``value`` cannot group runs (None when it can)."""
    if isinstance(value, str) and value in GROUPBY_FIELDS:
        return None
    if isinstance(value, str) and value.startswith("config."):
        return check_metric(value)
    return f"use config.<key> or one of {', '.join(GROUPBY_FIELDS)}"


def _groupby(value: Any, where: _Where, name: str) -> str | None:
    if value is None:
        return None
    problem = check_groupby(value)
    if problem is not None:
        raise where.fail(f"{name} cannot be {_show(value)}: {problem}", name)
    return str(value)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _smoothing(value: Any, where: _Where, name: str) -> float:
    if not _number(value) or not 0 <= value <= 1:
        raise where.fail(f"{name} must be a number from 0 to 1, got {_show(value)}", name)
    return float(value)


def _max_runs(value: Any, where: _Where, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_RUNS:
        raise where.fail(
            f"{name} must be a whole number from 1 to {MAX_RUNS}, got {_show(value)}", name
        )
    return value


def _range(value: Any, where: _Where, name: str) -> list[float | None] | None:
    if value is None:
        return None
    ok = (
        isinstance(value, list | tuple)
        and len(value) == 2
        and all(v is None or _number(v) for v in value)
    )
    if not ok or (value[0] is not None and value[1] is not None and value[0] >= value[1]):
        raise where.fail(
            f"{name} must be null or [min, max] with min < max (either may be null), "
            f"got {_show(value)}",
            name,
        )
    return [None if v is None else v for v in value]


Check = Callable[[Any, _Where, str], Any]

# Panel types: field -> (check, default). The Python classes in stemma.report.blocks
# have exactly these fields (a test checks).
PANEL_FIELDS: dict[str, dict[str, tuple[Check, Any]]] = {
    "line_plot": {
        "title": (_opt_title, None),
        "x": (_metric, "_step"),
        "y": (_metric_list, _REQUIRED),
        "groupby": (_groupby, None),
        "smoothing": (_smoothing, 0.0),
        "log_x": (_bool, False),
        "log_y": (_bool, False),
        "max_runs": (_max_runs, 500),
        "range_x": (_range, None),
        "range_y": (_range, None),
    },
    "bar_plot": {
        "title": (_opt_title, None),
        "metrics": (_metric_list, _REQUIRED),
        "groupby": (_groupby, None),
    },
    "scalar_chart": {
        "title": (_opt_title, None),
        "metric": (_metric, _REQUIRED),
        "groupby": (_groupby, None),
    },
    "scatter_plot": {
        "title": (_opt_title, None),
        "x": (_metric, _REQUIRED),
        "y": (_metric, _REQUIRED),
    },
    "parallel_coordinates_plot": {
        "title": (_opt_title, None),
        "columns": (_metric_list, _REQUIRED),
    },
    "run_comparer": {"title": (_opt_title, None)},
    "media_browser": {
        "title": (_opt_title, None),
        "media_keys": (_metric_list, _REQUIRED),
    },
    "runs_table": {
        "title": (_opt_title, None),
        "columns": (_opt_metric_list, None),
    },
}
PANEL_TYPES = tuple(PANEL_FIELDS)

BLOCK_FIELDS: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(TEXT_BLOCKS, ("text",)),
    "toc": (),
    "panel_grid": ("runsets", "panels"),
}
RUNSET_FIELDS = ("name", "entity", "project", "filters", "order")


def _fields(
    obj: Mapping[str, Any], table: Mapping[str, tuple[Check, Any]], kind: str, where: _Where
) -> dict[str, Any]:
    unknown = [k for k in obj if k != "type" and k not in table]
    if unknown:
        raise where.fail(
            f"unknown field {_show(unknown[0])} ({kind} have: {', '.join(table) or 'no fields'})",
            str(unknown[0])[:64],
        )
    out: dict[str, Any] = {"type": obj["type"]}
    for name, (check, default) in table.items():
        if name not in obj:
            if default is _REQUIRED:
                raise where.fail(f"{name} is required", name)
            out[name] = copy.deepcopy(default)
        else:
            out[name] = check(obj[name], where, name)
    return out


def _typed(obj: Any, what: str, known: tuple[str, ...], where: _Where) -> str:
    if not isinstance(obj, Mapping):
        raise where.fail(f"{what} must be an object with a 'type', got {_show(obj)}")
    kind = obj.get("type")
    if kind is None:
        raise where.fail(f"a {what} needs a 'type' (one of {', '.join(known)})", "type")
    if kind not in known:
        raise where.fail(
            f"unknown {what} type {_show(kind)} (use one of {', '.join(known)})", "type"
        )
    return str(kind)


def _name(value: Any, what: str, where: _Where) -> str:
    from stemma.wire.names import check_name

    try:
        return check_name(value, what)
    except StemmaError as exc:
        raise where.fail(exc.message, what) from None


def _runset(obj: Any, entity: str, project: str, where: _Where) -> dict[str, Any]:
    from stemma.wire.filters import RUNS, parse, parse_order

    if not isinstance(obj, Mapping):
        raise where.fail(f"a runset must be an object, got {_show(obj)}")
    unknown = [k for k in obj if k not in RUNSET_FIELDS]
    if unknown:
        raise where.fail(
            f"unknown field {_show(unknown[0])} (a runset has: {', '.join(RUNSET_FIELDS)})",
            str(unknown[0])[:64],
        )
    name = obj.get("name", DEFAULT_RUNSET_NAME)
    if name is None:
        name = DEFAULT_RUNSET_NAME
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_TITLE:
        raise where.fail(
            f"name must be a non-empty string of at most {MAX_TITLE} characters, got {_show(name)}",
            "name",
        )
    out_entity = entity if obj.get("entity") is None else _name(obj["entity"], "entity", where)
    out_project = project if obj.get("project") is None else _name(obj["project"], "project", where)
    filters = obj.get("filters")
    if filters is None:
        filters = {}
    try:
        json.dumps(filters, allow_nan=False)
        parse(filters, RUNS)
    except StemmaError as exc:
        raise where.fail(f"filters: {exc.message}", "filters") from None
    except (TypeError, ValueError, RecursionError) as exc:
        raise where.fail(f"filters must be JSON: {exc}"[:300], "filters") from None
    order = obj.get("order", DEFAULT_ORDER)
    if order is None:
        order = DEFAULT_ORDER
    try:
        parse_order(order, RUNS)
    except StemmaError as exc:
        raise where.fail(f"order: {exc.message}", "order") from None
    return {
        "name": name,
        "entity": out_entity,
        "project": out_project,
        "filters": copy.deepcopy(dict(filters)),
        "order": order,
    }


def default_runset(entity: str, project: str) -> dict[str, Any]:
    """The runset a panel grid without any gets: every run of the report's project."""
    return {
        "name": DEFAULT_RUNSET_NAME,
        "entity": entity,
        "project": project,
        "filters": {},
        "order": DEFAULT_ORDER,
    }


def _list(value: Any, what: str, limit: int, where: _Where, name: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list | tuple):
        raise where.fail(f"{name} must be a list of {what}, got {_show(value)}", name)
    if len(value) > limit:
        raise where.fail(f"{name} has {len(value)} {what}; at most {limit} are allowed", name)
    return list(value)


def _panel_grid(obj: Mapping[str, Any], entity: str, project: str, where: _Where) -> dict[str, Any]:
    runsets = [
        _runset(r, entity, project, where.child(f"runset {i}", runset=i))
        for i, r in enumerate(_list(obj.get("runsets"), "runsets", MAX_RUNSETS, where, "runsets"))
    ]
    panels = []
    for j, panel in enumerate(_list(obj.get("panels"), "panels", MAX_PANELS, where, "panels")):
        at = where.child(f"panel {j}", panel=j)
        kind = _typed(panel, "panel", PANEL_TYPES, at)
        at = where.child(f"panel {j} ({kind})", panel=j)
        panels.append(_fields(panel, PANEL_FIELDS[kind], f"{kind} panels", at))
    return {
        "type": "panel_grid",
        "runsets": runsets or [default_runset(entity, project)],
        "panels": panels,
    }


def _block(obj: Any, entity: str, project: str, where: _Where) -> dict[str, Any]:
    if isinstance(obj, Mapping) and obj.get("type") in PANEL_TYPES:
        raise where.fail(
            f"a {obj['type']} panel is not a block: put panels in a panel_grid "
            "(PanelGrid(panels=[...]))",
            "type",
        )
    kind = _typed(obj, "block", BLOCK_TYPES, where)
    unknown = [k for k in obj if k != "type" and k not in BLOCK_FIELDS[kind]]
    if unknown:
        has = ", ".join(BLOCK_FIELDS[kind]) or "no fields"
        raise where.fail(
            f"unknown field {_show(unknown[0])} ({kind} blocks have: {has})",
            str(unknown[0])[:64],
        )
    if kind == "panel_grid":
        return _panel_grid(obj, entity, project, where)
    if kind == "toc":
        return {"type": "toc"}
    return {"type": kind, "text": _text(obj.get("text", ""), where, "text")}


def validate_spec(
    spec: Any, entity: str | None = None, project: str | None = None
) -> dict[str, Any]:
    """The normalized copy of ``spec``, or InvalidValueError naming what is wrong.

    ``entity``/``project``, when given, are where the report lives: the spec's own must
    be absent or the same. Without them, the spec must name both.
    """
    top = _Where()
    if not isinstance(spec, Mapping):
        raise top.fail(f"a report spec must be an object, got {_show(spec)}")
    known = ("version", "entity", "project", "title", "description", "blocks")
    unknown = [k for k in spec if k not in known]
    if unknown:
        raise top.fail(
            f"unknown report field {_show(unknown[0])} (a report has: {', '.join(known)})",
            str(unknown[0])[:64],
        )
    version = spec.get("version", SPEC_VERSION)
    if version != SPEC_VERSION or isinstance(version, bool):
        raise top.fail(
            f"unsupported spec version {_show(version)} (this Stemma reads version {SPEC_VERSION})",
            "version",
        )
    out_entity = _located(spec.get("entity"), entity, "entity", top)
    out_project = _located(spec.get("project"), project, "project", top)
    title = spec.get("title", "Untitled Report")
    if not isinstance(title, str) or not title.strip() or len(title) > MAX_TITLE:
        raise top.fail(
            f"title must be a non-empty string of at most {MAX_TITLE} characters, "
            f"got {_show(title)}",
            "title",
        )
    description = spec.get("description", "")
    if description is None:
        description = ""
    if not isinstance(description, str) or len(description) > MAX_DESCRIPTION:
        raise top.fail(
            f"description must be a string of at most {MAX_DESCRIPTION:,} characters, "
            f"got {_show(description)}",
            "description",
        )
    raw_blocks = _list(spec.get("blocks"), "blocks", MAX_BLOCKS, top, "blocks")
    blocks = []
    for i, block in enumerate(raw_blocks):
        kind = block.get("type") if isinstance(block, Mapping) else None
        label = (
            f"block {i} ({kind})" if isinstance(kind, str) and kind in BLOCK_TYPES else f"block {i}"
        )
        blocks.append(_block(block, out_entity, out_project, top.child(label, block=i)))
    out = {
        "version": SPEC_VERSION,
        "entity": out_entity,
        "project": out_project,
        "title": title,
        "description": description,
        "blocks": blocks,
    }
    _check_strings(out, top)
    size = spec_size(out)
    if size > MAX_SPEC_BYTES:
        raise top.fail(
            f"the report spec is {size:,} bytes of JSON; at most {MAX_SPEC_BYTES:,} (1 MiB) "
            "are allowed: move some blocks to another report",
            "blocks",
        )
    return out


def _check_strings(value: Any, where: _Where) -> None:
    """Refuse what some database cannot store: NUL characters (PostgreSQL's JSON) and
    lone surrogates (not Unicode), so both backends accept the same specs."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                raise where.fail(f"text may not contain NUL characters: {_show(item)}")
            try:
                item.encode()
            except UnicodeEncodeError:
                raise where.fail(f"text must be valid Unicode: {_show(item)}") from None
        elif isinstance(item, Mapping):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def canonical(spec: Mapping[str, Any]) -> dict[str, Any]:
    """``spec`` (a stored, normalized one) with its keys in the documented order:
    PostgreSQL's JSON keeps objects' keys in its own order, this puts them back."""

    def ordered(obj: Any, keys: tuple[str, ...]) -> Any:
        if not isinstance(obj, Mapping):
            return obj
        return {
            **{k: obj[k] for k in keys if k in obj},
            **{k: v for k, v in obj.items() if k not in keys},
        }

    def block(b: Any) -> Any:
        if not isinstance(b, Mapping):
            return b
        kind = b.get("type")
        out = ordered(b, ("type", *BLOCK_FIELDS.get(str(kind), ())))
        if kind == "panel_grid":
            out["runsets"] = [ordered(r, RUNSET_FIELDS) for r in out.get("runsets") or []]
            out["panels"] = [
                ordered(p, ("type", *PANEL_FIELDS.get(str(p.get("type")), {})))
                if isinstance(p, Mapping)
                else p
                for p in out.get("panels") or []
            ]
        return out

    top = ordered(spec, ("version", "entity", "project", "title", "description", "blocks"))
    top["blocks"] = [block(b) for b in top.get("blocks") or []]
    return top


def spec_size(spec: Mapping[str, Any]) -> int:
    """Bytes of ``spec`` as compact UTF-8 JSON (what :data:`MAX_SPEC_BYTES` limits)."""
    return len(json.dumps(spec, separators=(",", ":"), ensure_ascii=False).encode())


def _located(value: Any, expected: str | None, what: str, where: _Where) -> str:
    if value is None:
        if expected is None:
            raise where.fail(f"a report spec needs its {what}", what)
        return expected
    name = _name(value, what, where)
    if expected is not None and name != expected:
        raise where.fail(
            f"the spec's {what} is {name!r} but the report is saved to {what} {expected!r}", what
        )
    return name

"""The project page: the runs table of one project.

``GET /p/{entity}/{project}`` answers one page of the project's runs, paginated on the
server, with filters, free-text search, sorting, a column picker and grouping. Every
choice lives in the query string (so a link shares the view, and the back button works)
and the filters are a plain ``<form method=get>``: the page works without script;
``runs-table.js`` only adds selection, remembered columns and keyboard moves.

A request costs one ``list_runs`` page and one ``count_runs`` (both with the filter
document built here, in the language of :mod:`stemma.wire.filters`), plus cheap
``GROUP BY`` lookups for the filters' choices and group counts
(:meth:`~stemma.backend.embedded.EmbeddedBackend.run_value_counts`) and the config and
summary keys of a bounded sample of recent runs for the column picker
(:meth:`~stemma.backend.embedded.EmbeddedBackend.run_keys`).

``GET /p/{entity}/{project}/compare-matching`` sends the same query's first 500 runs to
the compare page.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from stemma.errors import UsageError
from stemma.server.deps import Store
from stemma.server.web import page_router
from stemma.service.run_facets import keys_of, merge_keys
from stemma.ui.render import flash, render, urlpart
from stemma.wire.filters import from_query_param, parse
from stemma.wire.names import check_name
from stemma.wire.records import RunRecord

router = page_router()

PAGE_SIZES = (25, 50, 100, 200)
DEFAULT_PER_PAGE = 50
STATES = ("running", "finished", "failed", "crashed")
NONE = "(none)"  # the choice "no value" of job type, group or user
KEY_SAMPLE = 500  # recent runs whose keys the column picker offers
DEFAULT_KEY_COLUMNS = 3  # config and summary columns each, when none were chosen
MAX_COLUMNS = 40
COMPARE_LIMIT = 500
GROUP_FIELDS = {"group": "Group", "job_type": "Job type", "state": "State", "user": "User"}
FACETS = ("state", "job_type", "group", "user", "tags")

# Fixed columns that sort: query name -> label.
SORTS = {
    "name": "Name",
    "state": "State",
    "created_at": "Created",
    "runtime": "Runtime",
    "last_step": "Last step",
}
# Sorted high to low on a first click (the rest low to high).
_DESC_FIRST = ("created_at", "runtime", "last_step")

# Condition operators: URL name -> (label, filter operator).
OPERATORS = {
    "eq": ("=", "$eq"),
    "ne": ("≠", "$ne"),
    "gt": (">", "$gt"),
    "gte": ("≥", "$gte"),
    "lt": ("<", "$lt"),
    "lte": ("≤", "$lte"),
    "contains": ("contains", "$regex"),
    "regex": ("matches regex", "$regex"),
    "exists": ("exists", "$exists"),
    "missing": ("does not exist", "$exists"),
}
# Fields compared as text whatever the value looks like.
_TEXT_FIELDS = {
    "state",
    "name",
    "display_name",
    "notes",
    "group",
    "job_type",
    "jobType",
    "user",
    "username",
    "tags",
    "created_at",
    "createdAt",
}
# The run fields a condition may name besides config.<key> and summary.<key>.
CONDITION_FIELDS = ("name", "state", "job_type", "group", "user", "tags", "notes", "created_at")


@dataclasses.dataclass(frozen=True)
class Condition:
    field: str
    op: str
    value: str

    def document(self) -> dict[str, Any]:
        """This condition in the filter language (UsageError when it cannot be)."""
        field = self.field.strip()
        if self.op not in OPERATORS:
            raise UsageError(f"unknown condition operator {self.op!r}", op=self.op)
        op = OPERATORS[self.op][1]
        if self.op in ("exists", "missing"):
            return {field: {op: self.op == "exists"}}
        if self.op == "contains":
            return {field: {op: "(?i)" + re.escape(self.value)}}
        if self.op == "regex":
            return {field: {op: self.value}}
        return {field: {op: _typed(field, self.value)}}


def _typed(field: str, raw: str) -> Any:
    """A condition's value as typed: text for text fields; otherwise a number, true,
    false or null when it reads as one (a quoted "..." stays text), else the text."""
    if field in _TEXT_FIELDS:
        return raw
    text = raw.strip()
    try:
        value = json.loads(text)
    except ValueError:
        return raw
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return raw


def _as_int(raw: str | None, default: int) -> int:
    try:
        return int(raw) if raw is not None else default
    except ValueError:
        return default


@dataclasses.dataclass
class RunsQuery:
    """Everything the query string of the runs table says."""

    q: str = ""
    states: list[str] = dataclasses.field(default_factory=list)
    job_type: str = ""
    group: str = ""
    user: str = ""
    tags: list[str] = dataclasses.field(default_factory=list)
    conditions: list[Condition] = dataclasses.field(default_factory=list)
    raw: str = ""
    order: str = "-created_at"
    per: int = DEFAULT_PER_PAGE
    page: int = 1
    groupby: str = ""
    columns: list[str] | None = None  # None: not chosen (the defaults, or the saved ones)

    @classmethod
    def parse(cls, params: Any) -> RunsQuery:
        """From the request's query parameters (a Starlette ``QueryParams``)."""

        def one(name: str) -> str:
            return (params.get(name) or "").strip()

        def many(name: str) -> list[str]:
            return [v for v in dict.fromkeys(params.getlist(name)) if v]

        rows = itertools.zip_longest(
            params.getlist("cf"), params.getlist("co"), params.getlist("cv"), fillvalue=""
        )
        conditions = [Condition(f.strip(), o or "eq", v) for f, o, v in rows if f.strip()]
        per = _as_int(params.get("per"), DEFAULT_PER_PAGE)
        groupby = one("groupby")
        columns = None
        if params.get("colset") or params.getlist("col"):
            columns = many("col")[:MAX_COLUMNS]
        return cls(
            q=one("q"),
            states=many("state"),
            job_type=one("job_type"),
            group=one("group"),
            user=one("user"),
            tags=many("tag"),
            conditions=conditions,
            raw=(params.get("filter") or "").strip(),
            order=one("order") or "-created_at",
            per=per if per in PAGE_SIZES else DEFAULT_PER_PAGE,
            page=max(1, _as_int(params.get("page"), 1)),
            groupby=groupby if groupby in GROUP_FIELDS else "",
            columns=columns,
        )

    # ------------------------------------------------------------ the query string

    def params(self, **changes: Any) -> list[tuple[str, str]]:
        """The query string's pairs, with ``changes`` (page=, order=, per=...) applied;
        defaults are left out so links stay short."""
        s = dataclasses.replace(self, **changes)
        out: list[tuple[str, str]] = []
        if s.q:
            out.append(("q", s.q))
        out += [("state", v) for v in s.states]
        for name in ("job_type", "group", "user"):
            if getattr(s, name):
                out.append((name, getattr(s, name)))
        out += [("tag", v) for v in s.tags]
        for c in s.conditions:
            out += [("cf", c.field), ("co", c.op), ("cv", c.value)]
        if s.raw:
            out.append(("filter", s.raw))
        if s.order != "-created_at":
            out.append(("order", s.order))
        if s.groupby:
            out.append(("groupby", s.groupby))
        if s.columns is not None:
            out.append(("colset", "1"))
            out += [("col", c) for c in s.columns]
        if s.per != DEFAULT_PER_PAGE:
            out.append(("per", str(s.per)))
        if s.page > 1:
            out.append(("page", str(s.page)))
        return out

    def url(self, **changes: Any) -> str:
        """``?query`` for a link from this page (``page`` back to 1 unless given)."""
        changes.setdefault("page", 1)
        return "?" + urlencode(self.params(**changes))

    def sort_url(self, field: str) -> str:
        """The link of a column header: this column, the other way round when it is
        the sort already."""
        if self.order.lstrip("+-") == field:
            order = field if self.order.startswith("-") else f"-{field}"
        elif field in _DESC_FIRST or field.startswith("summary."):
            order = f"-{field}"
        else:
            order = field
        return self.url(order=order)

    def sorted_by(self, field: str) -> str | None:
        """``ascending``/``descending`` when the table is sorted by ``field``."""
        if self.order.lstrip("+-") != field:
            return None
        return "descending" if self.order.startswith("-") else "ascending"

    # ------------------------------------------------------------ the filter document

    @property
    def filtered(self) -> bool:
        return bool(
            self.q
            or self.states
            or self.job_type
            or self.group
            or self.user
            or self.tags
            or self.conditions
            or self.raw
        )

    def document(self) -> dict[str, Any] | None:
        """The filter document these choices mean (checked: UsageError when invalid)."""
        parts: list[dict[str, Any]] = []
        if self.q:
            pattern = "(?i)" + re.escape(self.q)
            parts.append({"$or": [{f: {"$regex": pattern}} for f in ("name", "notes", "tags")]})
        if self.states:
            parts.append({"state": {"$in": self.states}})
        for name in ("job_type", "group", "user"):
            value = getattr(self, name)
            if value:
                parts.append({name: None if value == NONE else value})
        if self.tags:
            parts.append({"tags": {"$in": self.tags}})
        parts += [c.document() for c in self.conditions]
        if self.raw:
            raw = from_query_param(self.raw)
            if raw:
                parts.append(raw)
        if not parts:
            return None
        doc = parts[0] if len(parts) == 1 else {"$and": parts}
        parse(doc)  # refuse a bad filter with its message before asking the store
        return doc


# ------------------------------------------------------------------ cells


def lookup(record: RunRecord, column: str) -> Any:
    """The value of ``config.<key>`` / ``summary.<key>`` in ``record`` (a flat key first,
    else the nested path, as filters read it); None when absent."""
    head, _, rest = column.partition(".")
    data: Any = record.config if head == "config" else record.summary
    if rest in data:
        return data[rest]
    for part in rest.split("."):
        if not isinstance(data, dict) or part not in data:
            return None
        data = data[part]
    return data


def _numeric(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _column(name: str) -> dict[str, str]:
    kind, _, key = name.partition(".")
    return {"name": name, "kind": kind, "key": key}


def _grouped(
    records: Sequence[RunRecord], groupby: str, counts: Mapping[Any, int]
) -> list[dict[str, Any]]:
    """The page's rows under their group value, in order of first appearance."""
    attr = {"group": "group", "job_type": "job_type", "state": "state", "user": "user"}[groupby]
    buckets: dict[Any, list[RunRecord]] = {}
    for r in records:
        buckets.setdefault(getattr(r, attr), []).append(r)
    return [
        {"value": value, "runs": rows, "total": counts.get(value)}
        for value, rows in buckets.items()
    ]


def _group_link(query: RunsQuery, value: str | None) -> str:
    """The runs table narrowed to one group (of the field it is grouped by)."""
    if query.groupby == "state":
        return query.url(states=[value])
    return query.url(**{query.groupby: NONE if value is None else value})


def _base(entity: str, project: str) -> str:
    return f"/p/{urlpart(entity)}/{urlpart(project)}"


# ------------------------------------------------------------------ routes


@router.get("/p/{entity}/{project}", response_class=HTMLResponse)
def project_runs(request: Request, store: Store, entity: str, project: str) -> HTMLResponse:
    check_name(entity, "entity")
    check_name(project, "project")
    query = RunsQuery.parse(request.query_params)
    # Choices for the filters (and the project's size): GROUP BYs, not a scan in Python.
    facets = store.run_value_counts(entity, project, FACETS)
    project_total = sum(n for _state, n in facets["state"])
    sample = store.run_keys(entity, project, KEY_SAMPLE)

    error = None
    records: list[RunRecord] = []
    total = 0
    groups: list[tuple[Any, int]] = []
    try:
        doc = query.document()
        total = store.count_runs(entity, project, doc) if doc else project_total
        pages = max(1, math.ceil(total / query.per))
        query.page = min(query.page, pages)
        records = store.list_runs(
            entity,
            project,
            order=query.order,
            offset=(query.page - 1) * query.per,
            limit=query.per,
            filters=doc,
        )
        if query.groupby:
            groups = store.run_value_counts(entity, project, [query.groupby], doc, 500)[
                query.groupby
            ]
    except UsageError as exc:
        error = exc.message
        total = 0
    pages = max(1, math.ceil(total / query.per))

    keys = merge_keys(sample, keys_of((r.config, r.summary) for r in records))
    if query.columns is None:
        chosen = [f"summary.{k}" for k in keys["summary"][:DEFAULT_KEY_COLUMNS]]
        chosen += [f"config.{k}" for k in keys["config"][:DEFAULT_KEY_COLUMNS]]
    else:
        chosen = query.columns
    columns = [_column(c) for c in chosen if c.partition(".")[0] in ("config", "summary")]
    offered = [f"config.{k}" for k in keys["config"]] + [f"summary.{k}" for k in keys["summary"]]
    offered += [c["name"] for c in columns if c["name"] not in offered]

    base = _base(entity, project)
    order_field = query.order.lstrip("+-")
    return render(
        request,
        "project.html",
        f"{project} runs",
        status=400 if error else 200,
        entity=entity,
        project=project,
        base=base,
        query=query,
        error=error,
        records=records,
        rows=_grouped(records, query.groupby, dict(groups)) if query.groupby else None,
        groups=[
            {"label": NONE if v is None else v, "count": n, "url": _group_link(query, v)}
            for v, n in groups
        ],
        total=total,
        project_total=project_total,
        pages=pages,
        facets=facets,
        states=STATES,
        none_value=NONE,
        clear_url=RunsQuery(
            order=query.order, per=query.per, groupby=query.groupby, columns=query.columns
        ).url(),
        columns=columns,
        offered=offered,
        key_sample=KEY_SAMPLE,
        sorts=SORTS,
        order_label=SORTS.get(order_field, order_field),
        operators={k: label for k, (label, _op) in OPERATORS.items()},
        condition_fields=CONDITION_FIELDS,
        group_fields=GROUP_FIELDS,
        page_sizes=PAGE_SIZES,
        compare_limit=COMPARE_LIMIT,
        lookup=lookup,
        numeric=_numeric,
        page_data={
            "project": f"{entity}/{project}",
            "compare": f"{base}/compare",
            "columns": [c["name"] for c in columns],
            "colset": query.columns is not None,
        },
    )


@router.get("/p/{entity}/{project}/compare-matching")
def compare_matching(request: Request, store: Store, entity: str, project: str) -> Response:
    """The compare page for the first 500 runs the runs table's query matches."""
    check_name(entity, "entity")
    check_name(project, "project")
    query = RunsQuery.parse(request.query_params)
    records = store.list_runs(
        entity, project, order=query.order, limit=COMPARE_LIMIT, filters=query.document()
    )
    base = _base(entity, project)
    if not records:
        response = RedirectResponse(f"{base}{query.url()}", status_code=303)
        return flash(response, "No runs match these filters: nothing to compare.")
    ids = ",".join(quote(r.run_id, safe="") for r in records)
    return RedirectResponse(f"{base}/compare?runs={ids}", status_code=303)

"""Filters, parsed: a MongoDB-style document checked and reduced to a small tree.

Pure Python, so the read API can refuse a bad filter before asking any store; the
store compiles the tree to SQL (:mod:`stemma.service.filters`). The tree has three
kinds of node: :class:`Leaf` (one test of one field: ``$eq``, ``$gt``, ``$gte``,
``$lt``, ``$lte``, ``$regex`` or ``$exists``), :class:`Bool` (``and``/``or``/``not``)
and :class:`Const`. ``$ne``, ``$nin``, ``$not`` and ``$nor`` become ``not`` nodes,
``$in`` an ``or`` of equalities, so the compiler needs only the positive tests.

One parser serves every kind of record; a :class:`Schema` says which fields a kind
has and how each is stored (:data:`RUNS`, :data:`ARTIFACT_VERSIONS`).

Semantics (also what ``tests/test_filters.py`` and ``tests/test_artifact_queries.py``
check against a Python evaluator):

- Run fields: ``state``, ``name``/``display_name``, ``notes``, ``group``,
  ``jobType``/``job_type``, ``user``/``username``, ``created_at`` (ISO strings or
  datetimes; naive means UTC), ``tags`` (membership: ``{"tags": "x"}`` means the
  list contains "x"; ``$in`` means it contains any of, ``$nin`` none of; ``$regex`` any
  tag matches), and ``config.<key>`` / ``summary_metrics.<key>`` (or ``summary.<key>``).
- Artifact version fields: ``name``, ``type``, ``state`` (``committed``/``deleted``),
  ``description``, ``digest`` (strings), ``version`` (the index: ``v3`` is 3),
  ``size``, ``file_count`` (numbers), ``created_at``, ``aliases`` (membership, as
  tags; ``latest`` is one), ``metadata.<key>``, ``creator.<key>`` and
  ``user``/``username`` (``creator.user``: who logged it).
- Keys: ``config.a.b`` names the flat key ``"a.b"`` when the run's config holds it,
  else the nested path ``a`` -> ``b``. Only these two readings are tried (a mix such as
  ``{"a": {"b.c": 1}}`` for ``config.a.b.c`` is not found). A ``/`` is an ordinary
  character (``summary_metrics.val/loss`` is the key ``"val/loss"``). Key parts may
  not be empty or contain ``"``.
- JSON values compare within their type only: numbers numerically, strings as strings
  (by code point), booleans as booleans (false < true). A value of another type, a
  missing key, an object or a list never matches ``$eq``/``$gt``/``$gte``/``$lt``/
  ``$lte``/``$in``/``$regex``. ``$ne``, ``$nin`` and ``$not`` are their exact
  negations, so they do match missing keys (as in MongoDB). ``null`` equals a stored
  JSON null only, not a missing key (``$exists`` tests presence).
- Columns compare with values of their own type only (a string column with strings or
  ``null``, which matches an empty column; a number column with numbers; a date-time
  with date-times), else the filter is refused. ``$exists`` on a column: not empty.
- NaN and infinities are stored as ``{"$float": ...}`` objects, so they never match a
  comparison (they do match ``$ne``/``$nin``/``$not`` and ``$exists: true``). A filter
  operand may not itself be NaN or infinite.
- ``$regex`` is an unanchored search: Python ``re`` on SQLite, ``~`` on PostgreSQL, so
  keep to the syntax both share.
- Order (``order="-metadata.auc"``): a column or a JSON key, ``-`` for descending. By a
  JSON key: numbers first, then strings, then booleans (reversed when descending); a
  missing value (or null, an object, a list, NaN) sorts last either way.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import re
from collections.abc import Mapping
from typing import Any

from stemma.errors import UsageError

_LOGICAL = ("$and", "$or", "$nor", "$not")
_COMPARE = ("$eq", "$ne", "$gt", "$gte", "$lt", "$lte")
_FIELD_OPS = (*_COMPARE, "$in", "$nin", "$not", "$regex", "$exists")


@dataclasses.dataclass(frozen=True)
class Schema:
    """The filterable fields of one kind of record, by the names users write.

    ``columns``: field -> (column, type), type ``string``, ``number`` or ``datetime``;
    ``lists``: field -> a list of strings tested by membership; ``prefixes``:
    ``prefix.<key>`` -> JSON column; ``json_fields``: a field that is one fixed key of a
    JSON column (``user`` -> ``creator.user``).
    """

    noun: str
    columns: Mapping[str, tuple[str, str]]
    lists: Mapping[str, str] = dataclasses.field(default_factory=dict)
    prefixes: Mapping[str, str] = dataclasses.field(default_factory=dict)
    json_fields: Mapping[str, tuple[str, tuple[str, ...]]] = dataclasses.field(default_factory=dict)

    def names(self) -> str:
        """The fields, as an error message lists them."""
        return ", ".join(
            [*self.columns, *self.json_fields, *self.lists, *(f"{p}.<key>" for p in self.prefixes)]
        )


def _strings(*names: str) -> dict[str, tuple[str, str]]:
    return {n: (n, "string") for n in names}


RUNS = Schema(
    "runs",
    columns={
        **_strings("state", "name", "notes"),
        "display_name": ("name", "string"),
        "group": ("group_name", "string"),
        "jobType": ("job_type", "string"),
        "job_type": ("job_type", "string"),
        "user": ("username", "string"),
        "username": ("username", "string"),
        "created_at": ("created_at", "datetime"),
        "createdAt": ("created_at", "datetime"),
    },
    lists={"tags": "tags"},
    prefixes={"config": "config", "summary_metrics": "summary", "summary": "summary"},
)

ARTIFACT_VERSIONS = Schema(
    "artifact versions",
    columns={
        **_strings("name", "type", "state", "description", "digest"),
        "version": ("version_index", "number"),
        "size": ("size", "number"),
        "file_count": ("file_count", "number"),
        "created_at": ("created_at", "datetime"),
        "createdAt": ("created_at", "datetime"),
    },
    lists={"aliases": "aliases"},
    prefixes={"metadata": "metadata", "creator": "creator"},
    json_fields={"user": ("creator", ("user",)), "username": ("creator", ("user",))},
)


@dataclasses.dataclass(frozen=True)
class Field:
    """``kind`` is ``column`` (``name`` a column of type ``type``), ``list`` (``name``
    a list of strings) or ``json`` (``name`` a JSON column, ``path`` the key's parts)."""

    kind: str
    name: str = ""
    path: tuple[str, ...] = ()
    type: str = "string"
    label: str = dataclasses.field(default="", compare=False)  # as the user wrote it


@dataclasses.dataclass(frozen=True)
class Leaf:
    field: Field
    op: str  # $eq $gt $gte $lt $lte $regex $exists (always true)
    value: Any


@dataclasses.dataclass(frozen=True)
class Bool:
    op: str  # and | or | not
    children: tuple[Node, ...]


@dataclasses.dataclass(frozen=True)
class Const:
    value: bool


Node = Leaf | Bool | Const


def _bad(message: str, part: Any) -> UsageError:
    quoted = repr(part)[:200]
    return UsageError(f"{message}: {quoted}", part=quoted)


def parse_field(field: Any, schema: Schema = RUNS) -> Field:
    """The field a filter key (or an ``order``) names, or UsageError."""
    if not isinstance(field, str):
        raise _bad("a filter field must be a string", field)
    if field in schema.columns:
        column, type_ = schema.columns[field]
        return Field("column", column, type=type_, label=field)
    if field in schema.lists:
        return Field("list", schema.lists[field], label=field)
    if field in schema.json_fields:
        column, path = schema.json_fields[field]
        return Field("json", column, path, label=field)
    head, dot, rest = field.partition(".")
    if head in schema.prefixes:
        parts = rest.split(".")
        if not dot or any(p == "" for p in parts):
            raise _bad("malformed filter key (an empty part)", field)
        if any('"' in p or "\x00" in p for p in parts):
            raise _bad("malformed filter key (a key may not contain '\"' or NUL)", field)
        return Field("json", schema.prefixes[head], path=tuple(parts), label=field)
    raise _bad(f"unknown filter field (use one of {schema.names()})", field)


def parse_order(order: Any, schema: Schema) -> tuple[Field, bool]:
    """(field, descending) of an ``order`` such as ``-created_at`` or ``metadata.auc``:
    a column or a JSON key, ``-`` (or ``+``) first; UsageError for anything else."""
    if not isinstance(order, str):
        raise _bad("order must be a field name", order)
    name = order.lstrip("+-")
    try:
        field = parse_field(name, schema)
    except UsageError as exc:
        raise UsageError(f"cannot order {schema.noun} by {name!r}: {exc}", order=order) from None
    if field.kind == "list":
        raise _bad(f"cannot order {schema.noun} by a list", order)
    return field, order.startswith("-")


def _scalar(field: Field, op: str, value: Any) -> Any:
    if field.kind == "list":
        if op != "$eq":
            raise _bad(
                f"{field.label} support equality, $in, $nin, $ne, $not and $regex only",
                {op: value},
            )
        if not isinstance(value, str):
            raise _bad(f"{field.label} are compared with a string", {op: value})
        return value
    if field.type == "datetime":
        return _as_datetime(field, op, value)
    if field.type == "number":
        if not _is_number(value):
            raise _bad(f"{field.label} is compared with numbers", {op: value})
        return _finite(op, value)
    if value is None:
        if op != "$eq":
            raise _bad(f"{op} cannot compare with null", {op: value})
        return None
    if field.kind == "column":
        if not isinstance(value, str):
            raise _bad(f"{field.label} is compared with strings", {op: value})
        return value
    if isinstance(value, bool | str):
        return value
    if _is_number(value):
        return _finite(op, value)
    raise _bad(f"{op} takes a number, string, boolean or null", {op: value})


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _finite(op: str, value: float) -> float:
    if not math.isfinite(value):
        raise _bad(f"{op} takes finite numbers only", {op: value})
    return value


def _as_datetime(field: Field, op: str, value: Any) -> dt.datetime:
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise _bad(f"{field.label} takes ISO 8601 date-times", {op: value}) from None
    elif isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        value = dt.datetime(value.year, value.month, value.day)
    if not isinstance(value, dt.datetime):
        raise _bad(f"{field.label} takes ISO 8601 strings or datetimes", {op: value})
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


def _not(node: Node) -> Node:
    return Bool("not", (node,))


def _op(field: Field, op: str, value: Any) -> Node:
    if op == "$not":
        if isinstance(value, Mapping):
            return _not(_conditions(field, value, {"$not": value}))
        return _not(_op(field, "$eq", value))
    if op == "$ne":
        return _not(_op(field, "$eq", value))
    if op in ("$in", "$nin"):
        if not isinstance(value, list | tuple):
            raise _bad(f"{op} takes a list", {op: value})
        any_of: Node = (
            Bool("or", tuple(_op(field, "$eq", v) for v in value)) if value else Const(False)
        )
        return any_of if op == "$in" else _not(any_of)
    if op == "$exists":
        if not isinstance(value, bool):
            raise _bad("$exists takes true or false", {op: value})
        if field.kind == "list":
            raise _bad(f"{field.label} do not support $exists", {op: value})
        leaf = Leaf(field, "$exists", True)
        return leaf if value else _not(leaf)
    if op == "$regex":
        if not isinstance(value, str):
            raise _bad("$regex takes a string pattern", {op: value})
        try:
            re.compile(value)
        except re.error as exc:
            raise _bad(f"$regex pattern is invalid ({exc})", {op: value}) from None
        if field.kind == "column" and field.type != "string":
            raise _bad(f"{field.label} does not support $regex", {op: value})
        return Leaf(field, "$regex", value)
    if op not in _COMPARE:
        raise _bad(f"unknown filter operator (use one of {', '.join(_FIELD_OPS)})", op)
    return Leaf(field, op, _scalar(field, op, value))


def _conditions(field: Field, spec: Mapping[Any, Any], whole: Any) -> Node:
    if not spec:
        raise _bad("an empty condition", whole)
    keys = [str(k) for k in spec]
    if all(k.startswith("$") for k in keys):
        return Bool("and", tuple(_op(field, str(k), v) for k, v in spec.items()))
    if any(k.startswith("$") for k in keys):
        bad = {k: v for k, v in spec.items() if not str(k).startswith("$")}
        raise _bad("a filter condition mixes operators and keys", bad)
    raise _bad("compare with a number, string, boolean or null, not a map", whole)


def _field_spec(key: str, spec: Any, schema: Schema) -> Node:
    field = parse_field(key, schema)
    if isinstance(spec, Mapping):
        return _conditions(field, spec, {key: spec})
    if isinstance(spec, list | tuple):
        raise _bad("compare with a single value; use $in for a list", {key: spec})
    return _op(field, "$eq", spec)


def parse(doc: Any, schema: Schema = RUNS) -> Node:
    """The checked tree of filter ``doc`` over ``schema``'s fields; UsageError quoting
    any bad part."""
    if not isinstance(doc, Mapping):
        raise _bad("a filter must be a map", doc)
    nodes: list[Node] = []
    for key, value in doc.items():
        if key in ("$and", "$or", "$nor"):
            if not isinstance(value, list | tuple) or not value:
                raise _bad(f"{key} takes a non-empty list of filters", {key: value})
            subs = tuple(parse(d, schema) for d in value)
            if key == "$and":
                nodes.append(Bool("and", subs))
            elif key == "$or":
                nodes.append(Bool("or", subs))
            else:
                nodes.append(_not(Bool("or", subs)))
        elif key == "$not":
            nodes.append(_not(parse(value, schema)))
        elif isinstance(key, str) and key.startswith("$"):
            raise _bad(f"unknown top-level filter operator (use {', '.join(_LOGICAL)})", key)
        else:
            nodes.append(_field_spec(key, value, schema))
    return Bool("and", tuple(nodes))


def from_query_param(raw: str | None) -> dict[str, Any] | None:
    """A ``filters`` query parameter (a JSON object) as a document; UsageError quoting
    it when it is not one."""
    if raw is None or raw == "":
        return None
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise UsageError(
            f"filters is not valid JSON ({exc}): {raw[:200]!r}", filters=raw[:200]
        ) from None
    if not isinstance(value, dict):
        raise UsageError(f"filters must be a JSON object: {raw[:200]!r}", filters=raw[:200])
    return value

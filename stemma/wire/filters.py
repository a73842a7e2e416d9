"""Run filters, parsed: a MongoDB-style document checked and reduced to a small tree.

Pure Python, so the read API can refuse a bad filter before asking any store; the
store compiles the tree to SQL (:mod:`stemma.service.filters`). The tree has three
kinds of node: :class:`Leaf` (one test of one field: ``$eq``, ``$gt``, ``$gte``,
``$lt``, ``$lte``, ``$regex`` or ``$exists``), :class:`Bool` (``and``/``or``/``not``)
and :class:`Const`. ``$ne``, ``$nin``, ``$not`` and ``$nor`` become ``not`` nodes,
``$in`` an ``or`` of equalities, so the compiler needs only the positive tests.

Semantics (also what ``tests/test_filters.py`` checks against a Python evaluator):

- Fields: ``state``, ``name``/``display_name``, ``group``, ``jobType``/``job_type``,
  ``user``/``username``, ``created_at`` (ISO strings or datetimes; naive means UTC),
  ``tags`` (membership: ``{"tags": "x"}`` means the list contains "x"; ``$in`` means it
  contains any of, ``$nin`` none of; ``$regex`` any tag matches), and
  ``config.<key>`` / ``summary_metrics.<key>`` (or ``summary.<key>``).
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
- NaN and infinities are stored as ``{"$float": ...}`` objects, so they never match a
  comparison (they do match ``$ne``/``$nin``/``$not`` and ``$exists: true``). A filter
  operand may not itself be NaN or infinite.
- ``$regex`` is an unanchored search: Python ``re`` on SQLite, ``~`` on PostgreSQL, so
  keep to the syntax both share.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import re
from collections.abc import Mapping
from typing import Any

from stemma.errors import UsageError

COLUMNS = {
    "state": "state",
    "name": "name",
    "display_name": "name",
    "group": "group_name",
    "jobType": "job_type",
    "job_type": "job_type",
    "user": "username",
    "username": "username",
    "created_at": "created_at",
    "createdAt": "created_at",
}
JSON_PREFIXES = {"config": "config", "summary_metrics": "summary", "summary": "summary"}
_FIELDS = (*COLUMNS, "tags", "config.<key>", "summary_metrics.<key>")
_LOGICAL = ("$and", "$or", "$nor", "$not")
_COMPARE = ("$eq", "$ne", "$gt", "$gte", "$lt", "$lte")
_FIELD_OPS = (*_COMPARE, "$in", "$nin", "$not", "$regex", "$exists")


@dataclasses.dataclass(frozen=True)
class Field:
    """``kind`` is ``column`` (``name`` a column), ``tags``, ``config`` or ``summary``
    (``path`` the key's parts)."""

    kind: str
    name: str = ""
    path: tuple[str, ...] = ()


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


def parse_field(field: Any) -> Field:
    """The field a filter key (or an ``order``) names, or UsageError."""
    if not isinstance(field, str):
        raise _bad("a filter field must be a string", field)
    if field in COLUMNS:
        return Field("column", COLUMNS[field])
    if field == "tags":
        return Field("tags")
    head, dot, rest = field.partition(".")
    if head in JSON_PREFIXES:
        parts = rest.split(".")
        if not dot or any(p == "" for p in parts):
            raise _bad("malformed filter key (an empty part)", field)
        if any('"' in p or "\x00" in p for p in parts):
            raise _bad("malformed filter key (a key may not contain '\"' or NUL)", field)
        return Field(JSON_PREFIXES[head], path=tuple(parts))
    raise _bad(f"unknown filter field (use one of {', '.join(_FIELDS)})", field)


def _scalar(field: Field, op: str, value: Any) -> Any:
    if field.kind == "tags":
        if op != "$eq":
            raise _bad("tags support equality, $in, $nin, $ne, $not and $regex only", {op: value})
        if not isinstance(value, str):
            raise _bad("tags are compared with a string", {op: value})
        return value
    if field.kind == "column" and field.name == "created_at":
        return _as_datetime(op, value)
    if value is None:
        if op != "$eq":
            raise _bad(f"{op} cannot compare with null", {op: value})
        return None
    if field.kind == "column":
        if not isinstance(value, str):
            raise _bad(f"{field.name} is compared with strings", {op: value})
        return value
    if isinstance(value, bool | str):
        return value
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise _bad(f"{op} takes finite numbers only", {op: value})
        return value
    raise _bad(f"{op} takes a number, string, boolean or null", {op: value})


def _as_datetime(op: str, value: Any) -> dt.datetime:
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise _bad("created_at takes ISO 8601 date-times", {op: value}) from None
    elif isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        value = dt.datetime(value.year, value.month, value.day)
    if not isinstance(value, dt.datetime):
        raise _bad("created_at takes ISO 8601 strings or datetimes", {op: value})
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
        if field.kind == "tags":
            raise _bad("tags do not support $exists", {op: value})
        leaf = Leaf(field, "$exists", True)
        return leaf if value else _not(leaf)
    if op == "$regex":
        if not isinstance(value, str):
            raise _bad("$regex takes a string pattern", {op: value})
        try:
            re.compile(value)
        except re.error as exc:
            raise _bad(f"$regex pattern is invalid ({exc})", {op: value}) from None
        if field.kind == "column" and field.name == "created_at":
            raise _bad("created_at does not support $regex", {op: value})
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


def _field_spec(key: str, spec: Any) -> Node:
    field = parse_field(key)
    if isinstance(spec, Mapping):
        return _conditions(field, spec, {key: spec})
    if isinstance(spec, list | tuple):
        raise _bad("compare with a single value; use $in for a list", {key: spec})
    return _op(field, "$eq", spec)


def parse(doc: Any) -> Node:
    """The checked tree of filter ``doc``; UsageError quoting any bad part."""
    if not isinstance(doc, Mapping):
        raise _bad("a filter must be a map", doc)
    nodes: list[Node] = []
    for key, value in doc.items():
        if key in ("$and", "$or", "$nor"):
            if not isinstance(value, list | tuple) or not value:
                raise _bad(f"{key} takes a non-empty list of filters", {key: value})
            subs = tuple(parse(d) for d in value)
            if key == "$and":
                nodes.append(Bool("and", subs))
            elif key == "$or":
                nodes.append(Bool("or", subs))
            else:
                nodes.append(_not(Bool("or", subs)))
        elif key == "$not":
            nodes.append(_not(parse(value)))
        elif isinstance(key, str) and key.startswith("$"):
            raise _bad(f"unknown top-level filter operator (use {', '.join(_LOGICAL)})", key)
        else:
            nodes.append(_field_spec(key, value))
    return Bool("and", tuple(nodes))

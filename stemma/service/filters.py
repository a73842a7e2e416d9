"""Filters compiled to SQL: one boolean expression over a table (runs, or artifact
versions joined to their collections).

The filter document is parsed and checked by :mod:`stemma.wire.filters` (which also
states the semantics); this module turns the parsed tree into SQL per dialect
(``json_extract``/``json_type``/``json_each``/``REGEXP`` on SQLite; ``#>``, ``#>>``,
``jsonb_typeof``, ``@>`` and ``~`` on PostgreSQL). Nothing is filtered in Python, and
every value and every JSON key path is a bound parameter: no filter can change the
shape of the SQL.

A :class:`Target` maps a :class:`~stemma.wire.filters.Schema`'s fields to SQL: its
columns, JSON columns and lists (a JSON array column, or rows of another table).
:data:`RUN_TARGET` and :data:`ARTIFACT_TARGET` are the two there are.

Every test compiles to a two-valued expression (never NULL: a comparison with a
missing value is false), so ``$not``/``$ne``/``$nin``/``$nor`` are exact negations.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import (
    Boolean,
    Integer,
    Numeric,
    String,
    Table,
    Text,
    and_,
    bindparam,
    case,
    cast,
    collate,
    exists,
    false,
    func,
    literal,
    not_,
    or_,
    select,
    true,
)
from sqlalchemy.sql.elements import ColumnElement

from stemma.errors import UsageError
from stemma.storage.models import artifact_aliases, artifact_collections, artifact_versions, runs
from stemma.wire.filters import (
    ARTIFACT_VERSIONS,
    RUNS,
    Bool,
    Const,
    Leaf,
    Node,
    Schema,
    parse,
    parse_field,
    parse_order,
)

Expr = ColumnElement[Any]
Predicate = Callable[[Any], Any]


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, str):
        return "string"
    return "number"


class _JsonRef:
    """One JSON path into a JSON column (``config``, ``metadata``...), per dialect."""

    def __init__(self, dialect: str, col: Any, parts: list[str]) -> None:
        self.dialect = dialect
        self.col = col
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import ARRAY

            def path(p: list[str]) -> Any:
                return bindparam(None, p, type_=ARRAY(Text()))

            nested = path(parts)
            if len(parts) > 1:
                flat = path([".".join(parts)])
                self.path: Any = case(
                    (self._get(flat).is_not(None), path([".".join(parts)])), else_=nested
                )
            else:
                self.path = nested
        else:

            def spath(p: list[str]) -> Any:
                return bindparam(None, "$" + "".join(f'."{k}"' for k in p), type_=String())

            nested = spath(parts)
            if len(parts) > 1:
                flat = spath([".".join(parts)])
                self.path = case(
                    (func.json_type(self.col, flat).is_not(None), spath([".".join(parts)])),
                    else_=nested,
                )
            else:
                self.path = nested

    def _get(self, path: Any) -> Expr:
        from sqlalchemy.dialects.postgresql import JSONB

        return self.col.op("#>", return_type=JSONB())(path)

    def type_is(self, *kinds: str) -> Expr:
        """The value exists and has one of the JSON kinds (number, string, ...)."""
        if self.dialect == "postgresql":
            t = func.jsonb_typeof(self._get(self.path))
            return t.in_(kinds)
        names = {
            "number": ("integer", "real"),
            "string": ("text",),
            "boolean": ("true", "false"),
            "null": ("null",),
        }
        return func.json_type(self.col, self.path).in_([n for k in kinds for n in names[k]])

    def exists(self) -> Expr:
        if self.dialect == "postgresql":
            return self._get(self.path).is_not(None)
        return func.json_type(self.col, self.path).is_not(None)

    def typed(self, kind: str) -> Expr:
        """The value as an SQL value of ``kind``, NULL when of another kind or missing."""
        if self.dialect == "postgresql":
            text_value = self.col.op("#>>", return_type=Text())(self.path)
            if kind == "number":
                value: Any = cast(text_value, Numeric())
            elif kind == "boolean":
                value = case((text_value == "true", 1), else_=0)
            else:
                value = collate(text_value, "C")
        else:
            value = func.json_extract(self.col, self.path)
        return case((self.type_is(kind), value), else_=None)

    def bind(self, kind: str, value: Any) -> Any:
        if kind == "boolean":
            return literal(int(value), Integer())
        if kind == "number":
            return literal(value, Numeric()) if self.dialect == "postgresql" else literal(value)
        return literal(value, String())


def _coalesced(expr: Any) -> Expr:
    """Never NULL: a test of a missing value is false, so that NOT is exact."""
    return func.coalesce(expr, false())


class JsonArray:
    """A list of strings kept as a JSON array column (a run's tags)."""

    def __init__(self, col: Any) -> None:
        self.col = col

    def any(self, dialect: str, predicate: Predicate) -> Expr:
        fn = func.jsonb_array_elements_text if dialect == "postgresql" else func.json_each
        elements = fn(self.col).table_valued("value").alias("elem")
        return exists(
            select(literal(1)).select_from(elements).where(_coalesced(predicate(elements.c.value)))
        )

    def contains(self, dialect: str, value: str) -> Expr:
        if dialect == "postgresql":  # containment, which a GIN index can serve
            from sqlalchemy.dialects.postgresql import JSONB

            return self.col.op("@>", return_type=Boolean())(bindparam(None, [value], type_=JSONB()))
        return self.any(dialect, lambda v: v == literal(value, String()))


class RelatedRows:
    """A list of strings kept as rows of another table (an artifact version's aliases):
    ``table.value`` where ``table.owner == owner``."""

    def __init__(self, table: Table, owner: str, value: str, of: Any) -> None:
        self.table, self.owner, self.value, self.of = table, owner, value, of

    def any(self, dialect: str, predicate: Predicate) -> Expr:
        del dialect
        t = self.table.alias("member")
        return exists(
            select(literal(1))
            .select_from(t)
            .where(and_(t.c[self.owner] == self.of, _coalesced(predicate(t.c[self.value]))))
        )

    def contains(self, dialect: str, value: str) -> Expr:
        return self.any(dialect, lambda v: v == literal(value, String()))


@dataclasses.dataclass(frozen=True)
class Target:
    """Where a schema's fields live in SQL: its column names, JSON column names and list
    names (as :class:`~stemma.wire.filters.Field` carries them) -> SQL; ``id`` breaks
    ties in ORDER BY."""

    schema: Schema
    columns: Mapping[str, Any]
    json: Mapping[str, Any]
    lists: Mapping[str, JsonArray | RelatedRows]
    id: Any


RUN_TARGET = Target(
    RUNS,
    columns={c: runs.c[c] for c, _type in RUNS.columns.values()},
    json={c: runs.c[c] for c in RUNS.prefixes.values()},
    lists={"tags": JsonArray(runs.c.tags)},
    id=runs.c.id,
)

# Over ``artifact_versions JOIN artifact_collections``.
ARTIFACT_TARGET = Target(
    ARTIFACT_VERSIONS,
    columns={
        c: (artifact_collections.c[c] if c in ("name", "type") else artifact_versions.c[c])
        for c, _type in ARTIFACT_VERSIONS.columns.values()
    },
    json={c: artifact_versions.c[c] for c in ARTIFACT_VERSIONS.prefixes.values()},
    lists={"aliases": RelatedRows(artifact_aliases, "version_id", "alias", artifact_versions.c.id)},
    id=artifact_versions.c.id,
)


_CMP = {
    "$eq": lambda a, b: a == b,
    "$gt": lambda a, b: a > b,
    "$gte": lambda a, b: a >= b,
    "$lt": lambda a, b: a < b,
    "$lte": lambda a, b: a <= b,
}


def _list(target: Target, dialect: str, leaf: Leaf) -> Expr:
    members = target.lists[leaf.field.name]
    if leaf.op == "$regex":
        return members.any(dialect, lambda v: v.regexp_match(leaf.value))
    return members.contains(dialect, leaf.value)


def _by_code_point(col: Any, type_: str, dialect: str) -> Any:
    """A string column as SQLite compares it (by code point), whatever the PostgreSQL
    database's locale."""
    return collate(col, "C") if dialect == "postgresql" and type_ == "string" else col


def _column(target: Target, dialect: str, leaf: Leaf) -> Expr:
    col = target.columns[leaf.field.name]
    if leaf.op == "$exists":
        return col.is_not(None)
    if leaf.op == "$regex":
        return _coalesced(col.regexp_match(leaf.value))
    if leaf.value is None:
        return col.is_(None)
    if leaf.op != "$eq":
        col = _by_code_point(col, leaf.field.type, dialect)
    return _coalesced(_CMP[leaf.op](col, leaf.value))


def _json(target: Target, dialect: str, leaf: Leaf) -> Expr:
    ref = _JsonRef(dialect, target.json[leaf.field.name], list(leaf.field.path))
    if leaf.op == "$exists":
        return ref.exists()
    if leaf.op == "$regex":
        return _coalesced(ref.typed("string").regexp_match(leaf.value))
    if leaf.value is None:
        return _coalesced(ref.type_is("null"))
    kind = _kind(leaf.value)
    return _coalesced(_CMP[leaf.op](ref.typed(kind), ref.bind(kind, leaf.value)))


def _compile(node: Node, dialect: str, target: Target) -> Expr:
    if isinstance(node, Const):
        return true() if node.value else false()
    if isinstance(node, Bool):
        subs = [_compile(c, dialect, target) for c in node.children]
        if node.op == "not":
            return not_(subs[0])
        if not subs:
            return true() if node.op == "and" else false()
        return and_(*subs) if node.op == "and" else or_(*subs)
    if node.field.kind == "list":
        return _list(target, dialect, node)
    if node.field.kind == "column":
        return _column(target, dialect, node)
    return _json(target, dialect, node)


def compile_filters(
    filters: Mapping[str, Any] | None, dialect: str, target: Target = RUN_TARGET
) -> Expr:
    """The WHERE expression for ``filters`` on ``dialect`` (``sqlite``/``postgresql``)."""
    if filters is None:
        return true()
    return _compile(parse(filters, target.schema), dialect, target)


def _json_order(
    target: Target, column: str, path: tuple[str, ...], desc: bool, dialect: str
) -> list[Any]:
    ref = _JsonRef(dialect, target.json[column], list(path))
    missing = case((ref.type_is("number", "string", "boolean"), 0), else_=1)
    rank = case((ref.type_is("number"), 0), (ref.type_is("string"), 1), (ref.type_is("boolean"), 2))
    if dialect == "postgresql":
        num: Any = case(
            (ref.type_is("number"), ref.typed("number")),
            (ref.type_is("boolean"), ref.typed("boolean")),
        )
    else:
        num = case((ref.type_is("number", "boolean"), func.json_extract(ref.col, ref.path)))
    text_value = ref.typed("string")
    terms = [rank, num, text_value, target.id]
    return [missing.asc(), *[t.desc() if desc else t.asc() for t in terms]]


def order_clause(
    field: str, desc: bool, dialect: str, target: Target = RUN_TARGET
) -> list[Any] | None:
    """ORDER BY terms for a JSON key (``config.<key>``, ``metadata.<key>``...), or None
    for another field. Numbers first, then strings, then booleans (reversed when
    descending); a missing value (or null, an object, a list, NaN) sorts last either
    way; ties by id."""
    parsed = parse_field(field, target.schema)
    if parsed.kind != "json":
        return None
    return _json_order(target, parsed.name, parsed.path, desc, dialect)


def order_terms(order: str, dialect: str, target: Target) -> list[Any]:
    """ORDER BY terms for ``order`` (a column or a JSON key, ``-`` for descending), ties
    by id in the same direction; UsageError for a field the target cannot order by."""
    field, desc = parse_order(order, target.schema)
    if field.kind == "json":
        return _json_order(target, field.name, field.path, desc, dialect)
    if field.kind != "column":  # pragma: no cover - parse_order refuses lists
        raise UsageError(f"cannot order by {order!r}", order=order)
    col = target.columns[field.name]
    terms = [_by_code_point(col, field.type, dialect), target.id]
    ordered = [t.desc() if desc else t.asc() for t in terms]
    if col.nullable:  # an empty value last either way, as a missing JSON key
        return [case((col.is_(None), 1), else_=0).asc(), *ordered]
    return ordered

"""Run filters compiled to SQL: one boolean expression over the ``runs`` table.

The filter document is parsed and checked by :mod:`stemma.wire.filters` (which also
states the semantics); this module turns the parsed tree into SQL per dialect
(``json_extract``/``json_type``/``json_each``/``REGEXP`` on SQLite; ``#>``, ``#>>``,
``jsonb_typeof``, ``@>`` and ``~`` on PostgreSQL). Nothing is filtered in Python, and
every value and every JSON key path is a bound parameter: no filter can change the
shape of the SQL.

Every test compiles to a two-valued expression (never NULL: a comparison with a
missing value is false), so ``$not``/``$ne``/``$nin``/``$nor`` are exact negations.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import (
    Boolean,
    Integer,
    Numeric,
    String,
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

from stemma.storage.models import runs
from stemma.wire.filters import Bool, Const, Field, Leaf, Node, parse, parse_field

Expr = ColumnElement[Any]


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, str):
        return "string"
    return "number"


class _JsonRef:
    """One JSON path into ``config`` or ``summary``, per dialect."""

    def __init__(self, dialect: str, column: str, parts: list[str]) -> None:
        self.dialect = dialect
        self.col = runs.c[column]
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


_CMP = {
    "$eq": lambda a, b: a == b,
    "$gt": lambda a, b: a > b,
    "$gte": lambda a, b: a >= b,
    "$lt": lambda a, b: a < b,
    "$lte": lambda a, b: a <= b,
}


def _any_tag(dialect: str, predicate: Any) -> Expr:
    fn = func.jsonb_array_elements_text if dialect == "postgresql" else func.json_each
    elements = fn(runs.c.tags).table_valued("value").alias("tag")
    return exists(
        select(literal(1)).select_from(elements).where(_coalesced(predicate(elements.c.value)))
    )


def _tags(dialect: str, leaf: Leaf) -> Expr:
    if leaf.op == "$regex":
        return _any_tag(dialect, lambda v: v.regexp_match(leaf.value))
    if dialect == "postgresql":  # containment, which a GIN index on tags can serve
        from sqlalchemy.dialects.postgresql import JSONB

        return runs.c.tags.op("@>", return_type=Boolean())(
            bindparam(None, [leaf.value], type_=JSONB())
        )
    return _any_tag(dialect, lambda v: v == literal(leaf.value, String()))


def _column(leaf: Leaf) -> Expr:
    col = runs.c[leaf.field.name]
    if leaf.op == "$exists":
        return col.is_not(None)
    if leaf.op == "$regex":
        return _coalesced(col.regexp_match(leaf.value))
    if leaf.value is None:
        return col.is_(None)
    return _coalesced(_CMP[leaf.op](col, leaf.value))


def _json(dialect: str, leaf: Leaf) -> Expr:
    ref = _JsonRef(dialect, leaf.field.kind, list(leaf.field.path))
    if leaf.op == "$exists":
        return ref.exists()
    if leaf.op == "$regex":
        return _coalesced(ref.typed("string").regexp_match(leaf.value))
    if leaf.value is None:
        return _coalesced(ref.type_is("null"))
    kind = _kind(leaf.value)
    return _coalesced(_CMP[leaf.op](ref.typed(kind), ref.bind(kind, leaf.value)))


def _compile(node: Node, dialect: str) -> Expr:
    if isinstance(node, Const):
        return true() if node.value else false()
    if isinstance(node, Bool):
        subs = [_compile(c, dialect) for c in node.children]
        if node.op == "not":
            return not_(subs[0])
        if not subs:
            return true() if node.op == "and" else false()
        return and_(*subs) if node.op == "and" else or_(*subs)
    if node.field.kind == "tags":
        return _tags(dialect, node)
    if node.field.kind == "column":
        return _column(node)
    return _json(dialect, node)


def compile_filters(filters: Mapping[str, Any] | None, dialect: str) -> Expr:
    """The WHERE expression for ``filters`` on ``dialect`` (``sqlite``/``postgresql``)."""
    if filters is None:
        return true()
    return _compile(parse(filters), dialect)


def order_clause(field: str, desc: bool, dialect: str) -> list[Any] | None:
    """ORDER BY terms for ``config.<key>``/``summary_metrics.<key>``, or None for another
    field. Numbers first, then strings, then booleans (reversed when descending); a
    missing value (or null, an object, a list, NaN) sorts last either way; ties by id."""
    parsed: Field = parse_field(field)
    if parsed.kind not in ("config", "summary"):
        return None
    ref = _JsonRef(dialect, parsed.kind, list(parsed.path))
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
    terms = [rank, num, text_value, runs.c.id]
    return [missing.asc(), *[t.desc() if desc else t.asc() for t in terms]]

"""What a project's runs hold, in a few cheap queries: the values of a field with their
counts (for filter choices and group summaries), and the config/summary keys in use (for
a column picker).

``value_counts`` is one ``GROUP BY`` per field over the project's runs (tags: over the
elements of each run's tag list), with an optional filter document, on SQLite and
PostgreSQL alike. ``sample_keys`` reads the config and summary of the latest runs only
(a bounded sample): listing every key of every run of a large project would read all of
their JSON.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, and_, func, select, true

from stemma.storage.models import entities, projects, runs

# The fields whose values can be counted, by the names the filter language uses.
COUNTED = {
    "state": runs.c.state,
    "job_type": runs.c.job_type,
    "group": runs.c.group_name,
    "user": runs.c.username,
}
FIELDS = (*COUNTED, "tags")


def _project_id(conn: Connection, entity: str, project: str) -> int | None:
    return conn.execute(
        select(projects.c.id)
        .select_from(projects.join(entities, projects.c.entity_id == entities.c.id))
        .where(and_(entities.c.name == entity, projects.c.name == project))
    ).scalar()


def value_counts(
    conn: Connection,
    entity: str,
    project: str,
    fields: Iterable[str],
    filters: Mapping[str, Any] | None = None,
    limit: int = 200,
) -> dict[str, list[tuple[str | None, int]]]:
    """{field: [(value, runs), ...]} for each of ``fields`` (see :data:`FIELDS`), most
    runs first then by value, at most ``limit`` values each, over the project's runs that
    match ``filters``. An empty column counts as the value None; a run counts once per
    tag it carries."""
    wanted = list(fields)
    unknown = [f for f in wanted if f not in FIELDS]
    if unknown:
        raise ValueError(f"cannot count runs by {unknown}: use {', '.join(FIELDS)}")
    pid = _project_id(conn, entity, project)
    if pid is None:
        return {f: [] for f in wanted}
    where: list[Any] = [runs.c.project_id == pid]
    if filters:
        from stemma.service.filters import compile_filters

        where.append(compile_filters(filters, conn.dialect.name))
    out: dict[str, list[tuple[str | None, int]]] = {}
    for field in wanted:
        if field == "tags":
            fn = (
                func.jsonb_array_elements_text
                if conn.dialect.name == "postgresql"
                else func.json_each
            )
            tag = fn(runs.c.tags).table_valued("value").alias("tag")
            # runs JOIN <function of runs.tags>: implicitly lateral on both databases.
            value: Any = tag.c.value
            q = select(value, func.count()).select_from(runs.join(tag, true()))
        else:
            value = COUNTED[field]
            q = select(value, func.count()).select_from(runs)
        n = func.count()
        q = q.where(*where).group_by(value).order_by(n.desc(), value).limit(limit)
        out[field] = [(v, int(c)) for v, c in conn.execute(q)]
    return out


def _flat_keys(data: Any, prefix: str, into: set[str], depth: int) -> None:
    """Dotted paths to the leaves of ``data`` (a media or table dict is one leaf)."""
    for key, value in data.items():
        if not isinstance(key, str):
            continue
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value and depth > 0 and "_type" not in value:
            if "$float" in value and len(value) == 1:
                into.add(path)
            else:
                _flat_keys(value, f"{path}.", into, depth - 1)
        else:
            into.add(path)


def keys_of(
    records: Iterable[tuple[Mapping[str, Any] | None, Mapping[str, Any] | None]],
    depth: int = 3,
) -> dict[str, set[str]]:
    """{"config": keys, "summary": keys} of (config, summary) pairs: leaves of nested
    dicts as dotted paths; summary keys starting with ``_`` (``_step``, ``_runtime``...)
    are left out."""
    config: set[str] = set()
    summary: set[str] = set()
    for conf, summ in records:
        if conf:
            _flat_keys(conf, "", config, depth)
        if summ:
            _flat_keys({k: v for k, v in summ.items() if not k.startswith("_")}, "", summary, depth)
    return {"config": config, "summary": summary}


def sample_keys(
    conn: Connection, entity: str, project: str, sample: int = 500
) -> dict[str, list[str]]:
    """{"config": [...], "summary": [...]}: the keys used by the project's latest
    ``sample`` runs (by creation), sorted."""
    pid = _project_id(conn, entity, project)
    if pid is None:
        return {"config": [], "summary": []}
    q = (
        select(runs.c.config, runs.c.summary)
        .where(runs.c.project_id == pid)
        .order_by(runs.c.created_at.desc(), runs.c.id.desc())
        .limit(sample)
    )
    found = keys_of((row.config, row.summary) for row in conn.execute(q))
    return {kind: sorted(keys) for kind, keys in found.items()}


def merge_keys(*parts: Mapping[str, Sequence[str] | set[str]]) -> dict[str, list[str]]:
    """The union of several {"config": keys, "summary": keys}, sorted."""
    out: dict[str, set[str]] = {"config": set(), "summary": set()}
    for part in parts:
        for kind in out:
            out[kind].update(part.get(kind, ()))
    return {kind: sorted(keys) for kind, keys in out.items()}

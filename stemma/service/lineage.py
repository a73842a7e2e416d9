"""Lineage: which run logged a version, which runs used it, and the graph around it."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, and_, select

from stemma.errors import UsageError
from stemma.service import runs as run_service
from stemma.service.artifacts import _aliases_of, _record, resolve
from stemma.service.runs import to_record
from stemma.storage.models import (
    artifact_collections,
    artifact_usage,
    artifact_versions,
    entities,
    projects,
    runs,
)
from stemma.wire.records import ArtifactRecord, ArtifactRef, RunRecord, RunRef


def _run_record(conn: Connection, run_pk: int) -> RunRecord | None:
    row = conn.execute(run_service._run_query().where(runs.c.id == run_pk)).first()
    return None if row is None else to_record(row)


def _version_by_id(conn: Connection, vid: int) -> ArtifactRecord:
    ver = conn.execute(select(artifact_versions).where(artifact_versions.c.id == vid)).one()
    coll = conn.execute(
        select(artifact_collections).where(artifact_collections.c.id == ver.collection_id)
    ).one()
    ent, proj = conn.execute(
        select(entities.c.name, projects.c.name)
        .select_from(projects.join(entities, projects.c.entity_id == entities.c.id))
        .where(projects.c.id == coll.project_id)
    ).one()
    return _record(conn, coll, ver, ent, proj, _aliases_of(conn, [vid])[vid], False)


def version_runs(conn: Connection, ref: ArtifactRef) -> tuple[RunRecord | None, list[RunRecord]]:
    """(the run that logged the version, the runs that used it)."""
    _coll, ver = resolve(conn, ref.entity, ref.project, ref.name, f"v{ref.version}")
    logged = _run_record(conn, ver.run_pk) if ver.run_pk is not None else None
    users = (
        conn.execute(
            select(artifact_usage.c.run_pk)
            .where(
                and_(artifact_usage.c.version_id == ver.id, artifact_usage.c.direction == "input")
            )
            .order_by(artifact_usage.c.id)
        )
        .scalars()
        .all()
    )
    return logged, [r for r in (_run_record(conn, pk) for pk in users) if r is not None]


def run_artifacts(conn: Connection, run_ref: RunRef, direction: str) -> list[ArtifactRecord]:
    run_pk = run_service.require_run_pk(conn, run_ref)
    vids = (
        conn.execute(
            select(artifact_usage.c.version_id)
            .where(and_(artifact_usage.c.run_pk == run_pk, artifact_usage.c.direction == direction))
            .order_by(artifact_usage.c.id)
        )
        .scalars()
        .all()
    )
    return [_version_by_id(conn, v) for v in vids]


def lineage(
    conn: Connection, ref: ArtifactRef, depth: int = 2, direction: str = "both"
) -> dict[str, Any]:
    """The lineage graph around a version, ``depth`` run-hops each way.

    Nodes: ``artifact:entity/project/name:vN`` and ``run:entity/project/id``; edges
    point along the data flow (artifact -> run that used it, run -> artifact it logged).
    """
    if direction not in ("both", "upstream", "downstream"):
        raise UsageError("direction must be both, upstream or downstream")
    _coll, start = resolve(conn, ref.entity, ref.project, ref.name, f"v{ref.version}")
    nodes: dict[str, dict[str, Any]] = {}
    edges: set[tuple[str, str]] = set()

    def art_node(vid: int) -> str:
        rec = _version_by_id(conn, vid)
        key = f"artifact:{rec.ref.path}"
        nodes.setdefault(
            key,
            {
                "id": key,
                "kind": "artifact",
                "path": rec.ref.path,
                "type": rec.type,
                "aliases": rec.aliases,
                "state": rec.state,
            },
        )
        return key

    def run_node(run_pk: int) -> str | None:
        rec = _run_record(conn, run_pk)
        if rec is None:
            return None
        key = f"run:{rec.ref.path}"
        nodes.setdefault(
            key,
            {
                "id": key,
                "kind": "run",
                "path": rec.ref.path,
                "name": rec.name,
                "job_type": rec.job_type,
                "state": rec.state,
            },
        )
        return key

    def usage(filter_col: Any, value: int, direction_: str) -> list[int]:
        other = (
            artifact_usage.c.run_pk
            if filter_col is artifact_usage.c.version_id
            else artifact_usage.c.version_id
        )
        return list(
            conn.execute(
                select(other).where(
                    and_(filter_col == value, artifact_usage.c.direction == direction_)
                )
            ).scalars()
        )

    art_node(start.id)
    for way in ("upstream", "downstream"):
        if direction not in ("both", way):
            continue
        frontier = [start.id]
        for _ in range(depth):
            next_frontier: list[int] = []
            for vid in frontier:
                a = art_node(vid)
                # upstream: the run that logged this version, then what that run used
                run_pks = usage(
                    artifact_usage.c.version_id, vid, "output" if way == "upstream" else "input"
                )
                for pk in run_pks:
                    r = run_node(pk)
                    if r is None:
                        continue
                    edges.add((r, a) if way == "upstream" else (a, r))
                    for v2 in usage(
                        artifact_usage.c.run_pk, pk, "input" if way == "upstream" else "output"
                    ):
                        a2 = art_node(v2)
                        edges.add((a2, r) if way == "upstream" else (r, a2))
                        next_frontier.append(v2)
            frontier = next_frontier
    return {
        "root": f"artifact:{ref.path}",
        "nodes": list(nodes.values()),
        "edges": [{"source": s, "target": t} for s, t in sorted(edges)],
    }

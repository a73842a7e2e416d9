"""Retention (TTL and policies) and storage accounting of artifacts."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Connection, Row, and_, delete, insert, select

from stemma.errors import UsageError
from stemma.service import audit, media
from stemma.service import chunks as chunk_service
from stemma.service.access import Gate, Level
from stemma.service.artifacts import (
    LATEST,
    _aliases_of,
    _project_id,
    load_manifest,
    protected_aliases,
)
from stemma.service.clock import aware
from stemma.service.runs import ensure_project
from stemma.storage.models import (
    artifact_collections,
    artifact_versions,
    blobs,
    entities,
    projects,
    retention_policies,
)
from stemma.wire.names import check_name
from stemma.wire.records import ArtifactRef
from stemma.wire.values import MAX_SECONDS


def set_retention(
    conn: Connection,
    gate: Gate,
    entity: str,
    project: str,
    name: str | None,
    keep_last: int | None,
    delete_unaliased_older_than: float | None,
    default_ttl: float | None = None,
) -> None:
    """Replace the policy of ``name`` (None: every artifact of the project); all None
    removes it. ``default_ttl`` is the TTL a new version gets when logged without one."""
    gate.require(conn, entity, project, Level.ADMIN, f"set retention policies of {project}")
    if keep_last is not None and keep_last < 1:
        raise UsageError("keep_last must be at least 1")
    if (
        delete_unaliased_older_than is not None
        and not 0 < delete_unaliased_older_than <= MAX_SECONDS
    ):
        raise UsageError(
            "delete_unaliased_older_than must be a positive duration of at most 100 years"
        )
    if default_ttl is not None and not 0 < default_ttl <= MAX_SECONDS:
        raise UsageError("default_ttl must be a positive duration of at most 100 years")
    if name is not None:
        check_name(name, "artifact")
    pid = ensure_project(conn, entity, project, gate.who)
    cond = and_(
        retention_policies.c.project_id == pid,
        retention_policies.c.collection_name.is_(None)
        if name is None
        else retention_policies.c.collection_name == name,
    )
    conn.execute(delete(retention_policies).where(cond))
    if keep_last is not None or delete_unaliased_older_than is not None or default_ttl:
        conn.execute(
            insert(retention_policies).values(
                project_id=pid,
                collection_name=name,
                keep_last=keep_last,
                delete_unaliased_older_than=delete_unaliased_older_than,
                default_ttl_seconds=default_ttl,
            )
        )
    audit.append(
        conn,
        gate.who,
        "project.retention",
        f"{entity}/{project}",
        entity=entity,
        details={
            "artifact": name,
            "keep_last": keep_last,
            "delete_unaliased_older_than": delete_unaliased_older_than,
            "default_ttl": default_ttl,
        },
    )


def get_retention(conn: Connection, entity: str, project: str) -> list[dict[str, Any]]:
    pid = _project_id(conn, entity, project)
    if pid is None:
        return []
    return [
        {
            "name": r.collection_name,
            "keep_last": r.keep_last,
            "delete_unaliased_older_than": r.delete_unaliased_older_than,
            "default_ttl": r.default_ttl_seconds,
        }
        for r in conn.execute(
            select(retention_policies).where(retention_policies.c.project_id == pid)
        )
    ]


def expired_versions(conn: Connection, now: dt.datetime) -> list[tuple[ArtifactRef, str]]:
    """Versions TTL or retention would delete, never one with a protected alias."""
    out: list[tuple[ArtifactRef, str]] = []
    rows = conn.execute(
        select(
            artifact_versions.c.id,
            artifact_versions.c.version_index,
            artifact_versions.c.created_at,
            artifact_versions.c.ttl_seconds,
            artifact_collections.c.name,
            artifact_collections.c.id.label("coll_id"),
            artifact_collections.c.project_id,
            entities.c.name.label("entity"),
            projects.c.name.label("project"),
        )
        .select_from(
            artifact_versions.join(
                artifact_collections, artifact_versions.c.collection_id == artifact_collections.c.id
            )
            .join(projects, artifact_collections.c.project_id == projects.c.id)
            .join(entities, projects.c.entity_id == entities.c.id)
        )
        .where(artifact_versions.c.state == "committed")
        .order_by(artifact_collections.c.id, artifact_versions.c.version_index.desc())
    ).all()
    aliases = _aliases_of(conn, [r.id for r in rows])
    policies: dict[int, list[Row[Any]]] = {}
    for p in conn.execute(select(retention_policies)):
        policies.setdefault(p.project_id, []).append(p)
    protected_by_project: dict[int, set[str]] = {}
    rank: dict[int, int] = {}
    for r in rows:
        if r.project_id not in protected_by_project:
            protected_by_project[r.project_id] = set(protected_aliases(conn, r.project_id))
        rank[r.coll_id] = rank.get(r.coll_id, 0) + 1
        held = set(aliases[r.id]) - {LATEST}
        if held & protected_by_project[r.project_id]:
            continue
        created = aware(r.created_at)
        assert created is not None
        age = (now - created).total_seconds()
        ref = ArtifactRef(r.entity, r.project, r.name, r.version_index)
        if r.ttl_seconds is not None and age > r.ttl_seconds:
            out.append((ref, "ttl"))
            continue
        for pol in policies.get(r.project_id, []):
            if pol.collection_name not in (None, r.name):
                continue
            if pol.keep_last is not None and rank[r.coll_id] > pol.keep_last and not held:
                out.append((ref, f"retention: keep last {pol.keep_last}"))
                break
            if (
                pol.delete_unaliased_older_than is not None
                and not held
                and age > pol.delete_unaliased_older_than
                and rank[r.coll_id] > 1
            ):
                out.append((ref, "retention: unaliased and old"))
                break
    return out


# ------------------------------------------------------------------ storage and diff


def storage_stats(
    conn: Connection, entity: str | None = None, project: str | None = None
) -> list[dict[str, Any]]:
    """Per project and artifact type, three levels of bytes:

    * ``logical_bytes``: what the versions add up to (each version's full size);
    * ``file_dedup_bytes``: after whole-file deduplication (each distinct file once);
    * ``physical_bytes``: what is stored: whole blobs, plus each distinct chunk of the
      chunked files once, as stored (after compression).
    """
    q = (
        select(
            artifact_versions.c.id,
            artifact_versions.c.size,
            artifact_collections.c.type,
            entities.c.name.label("entity"),
            projects.c.name.label("project"),
        )
        .select_from(
            artifact_versions.join(
                artifact_collections, artifact_versions.c.collection_id == artifact_collections.c.id
            )
            .join(projects, artifact_collections.c.project_id == projects.c.id)
            .join(entities, projects.c.entity_id == entities.c.id)
        )
        .where(artifact_versions.c.state == "committed")
    )
    if entity is not None:
        q = q.where(entities.c.name == entity)
    if project is not None:
        q = q.where(projects.c.name == project)
    groups: dict[tuple[str, str, str], dict[str, Any]] = {}
    for r in conn.execute(q):
        g = groups.setdefault(
            (r.entity, r.project, r.type),
            {
                "entity": r.entity,
                "project": r.project,
                "type": r.type,
                "versions": 0,
                "logical_bytes": 0,
                "files": {},
                "chunks": set(),
            },
        )
        g["versions"] += 1
        g["logical_bytes"] += r.size
        for e in load_manifest(conn, r.id):
            if e.digest and e.ref is None:
                g["files"][e.digest] = e.size or 0
                if e.chunks is not None:
                    g["chunks"].update(d for d, _ in e.chunks)
    out = []
    for g in groups.values():
        files: dict[str, int] = g.pop("files")
        chunk_set: set[str] = g.pop("chunks")
        blob_sizes = _blob_sizes(conn, files)  # the files stored whole
        g["file_dedup_bytes"] = sum(files.values())
        g["physical_bytes"] = sum(blob_sizes.values()) + sum(
            chunk_service.chunk_sizes(conn, chunk_set).values()
        )
        g["blobs"] = len(files)
        g["chunks"] = len(chunk_set)
        out.append(g)
    return sorted(out, key=lambda g: (g["entity"], g["project"], g["type"]))


def _blob_sizes(conn: Connection, digests: Any) -> dict[str, int]:
    keys = list(digests)
    out: dict[str, int] = {}
    for i in range(0, len(keys), 500):
        out.update(
            conn.execute(
                select(blobs.c.digest, blobs.c.size).where(blobs.c.digest.in_(keys[i : i + 500]))
            ).all()
        )
    return out


def live_digests(conn: Connection) -> set[str]:
    """Every blob a committed version or an existing run's media references."""
    live: set[str] = media.live_digests(conn)
    for vid in conn.execute(
        select(artifact_versions.c.id).where(artifact_versions.c.state == "committed")
    ).scalars():
        live |= load_manifest(conn, vid).blob_digests()
    return live

"""Promotion requests: a member asks for a protected alias to move; a team admin decides.

The request, the decision and (on approval) the move all land in the alias history, so
"who put this model in production, and who signed it off?" has one answer, and each is
also in the audit log.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, and_, insert, select, update

from stemma.errors import Conflict, NotFound, UsageError
from stemma.service import artifacts as artifact_service
from stemma.service.access import Gate, Level
from stemma.service.clock import aware, utcnow
from stemma.storage.models import (
    artifact_collections,
    entities,
    projects,
    promotion_requests,
)
from stemma.wire.records import ArtifactRef

MAX_COMMENT = 4000


def _comment(comment: str | None) -> str | None:
    if comment is not None and len(comment) > MAX_COMMENT:
        raise UsageError(f"a comment must be at most {MAX_COMMENT} characters")
    return comment or None


def _out(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "artifact": f"{row.entity}/{row.project}/{row.name}",
        "alias": row.alias,
        "version": f"v{row.version_index}",
        "requested_by": row.requested_by,
        "requested_at": aware(row.requested_at),
        "comment": row.comment,
        "state": row.state,
        "decided_by": row.decided_by,
        "decided_at": aware(row.decided_at),
        "decision_comment": row.decision_comment,
    }


def _query() -> Any:
    return select(
        promotion_requests,
        artifact_collections.c.name,
        projects.c.name.label("project"),
        entities.c.name.label("entity"),
    ).select_from(
        promotion_requests.join(
            artifact_collections, artifact_collections.c.id == promotion_requests.c.collection_id
        )
        .join(projects, projects.c.id == artifact_collections.c.project_id)
        .join(entities, entities.c.id == projects.c.entity_id)
    )


def request(
    conn: Connection, gate: Gate, ref: ArtifactRef, alias: str, comment: str | None = None
) -> dict[str, Any]:
    """File a request to point ``alias`` at ``ref`` (members; viewers may not)."""
    gate.require(conn, ref.entity, ref.project, Level.WRITE, f"request promotions in {ref.project}")
    alias = artifact_service.check_alias(alias)
    comment = _comment(comment)
    coll, ver = artifact_service.resolve(conn, ref.entity, ref.project, ref.name, f"v{ref.version}")
    if ver.state != "committed":
        raise Conflict(f"artifact {ref.path} was deleted and cannot be promoted")
    if alias == artifact_service.LATEST:
        raise UsageError("'latest' always points to the newest version; it cannot be requested")
    pending = conn.execute(
        select(promotion_requests.c.id).where(
            and_(
                promotion_requests.c.collection_id == coll.id,
                promotion_requests.c.alias == alias,
                promotion_requests.c.version_index == ref.version,
                promotion_requests.c.state == "pending",
            )
        )
    ).first()
    if pending is not None:
        raise Conflict(
            f"request {pending.id} already asks to move {alias!r} to {ref.path}",
            request=pending.id,
        )
    now = utcnow()
    rid = conn.execute(
        insert(promotion_requests).values(
            collection_id=coll.id,
            alias=alias,
            version_index=ref.version,
            requested_by=gate.who.name,
            requested_at=now,
            comment=comment,
            state="pending",
        )
    ).inserted_primary_key[0]  # type: ignore[index]
    current = artifact_service.alias_version(conn, coll.id, alias)
    artifact_service._record_alias(
        conn, coll.id, alias, current, ref.version, gate.who, "request", comment
    )
    return get(conn, gate, int(rid))


def get(conn: Connection, gate: Gate, request_id: int) -> dict[str, Any]:
    row = conn.execute(_query().where(promotion_requests.c.id == request_id)).first()
    if row is None or not gate.can(conn, row.entity, row.project, Level.READ):
        raise NotFound(f"no promotion request {request_id}", request=request_id)
    return _out(row)


def list_requests(
    conn: Connection,
    gate: Gate,
    entity: str,
    project: str,
    name: str | None = None,
    state: str | None = "pending",
) -> list[dict[str, Any]]:
    gate.require(conn, entity, project, Level.READ)
    if state not in (None, "pending", "approved", "rejected"):
        raise UsageError(f"unknown state {state!r}: use pending, approved or rejected")
    q = _query().where(and_(entities.c.name == entity, projects.c.name == project))
    if name is not None:
        q = q.where(artifact_collections.c.name == name)
    if state is not None:
        q = q.where(promotion_requests.c.state == state)
    return [_out(r) for r in conn.execute(q.order_by(promotion_requests.c.id))]


def decide(
    conn: Connection,
    gate: Gate,
    request_id: int,
    approve: bool,
    comment: str | None = None,
    project: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """Approve (the alias moves now) or reject a pending request: team admins only."""
    comment = _comment(comment)
    row = conn.execute(_query().where(promotion_requests.c.id == request_id)).first()
    if (
        row is None
        or not gate.can(conn, row.entity, row.project, Level.READ)
        or (project is not None and project != (row.entity, row.project))
    ):
        raise NotFound(f"no promotion request {request_id}", request=request_id)
    gate.require(
        conn, row.entity, row.project, Level.ADMIN, f"decide promotion request {request_id}"
    )
    if row.state != "pending":
        raise Conflict(
            f"request {request_id} was already {row.state} by {row.decided_by}",
            state=row.state,
        )
    if not approve and not comment:
        raise UsageError("say why a request is rejected (--comment)")
    state = "approved" if approve else "rejected"
    conn.execute(
        update(promotion_requests)
        .where(promotion_requests.c.id == request_id)
        .values(
            state=state,
            decided_by=gate.who.name,
            decided_at=utcnow(),
            decision_comment=comment,
        )
    )
    current = artifact_service.alias_version(conn, row.collection_id, row.alias)
    artifact_service._record_alias(
        conn,
        row.collection_id,
        row.alias,
        current,
        row.version_index,
        gate.who,
        "approve" if approve else "reject",
        comment,
    )
    if approve:
        ref = ArtifactRef(row.entity, row.project, row.name, row.version_index)
        _coll, ver = artifact_service.resolve(
            conn, ref.entity, ref.project, ref.name, f"v{ref.version}", lock=True
        )
        if ver.state != "committed":
            raise Conflict(f"artifact {ref.path} was deleted since the request")
        artifact_service._move_alias(
            conn, row.collection_id, row.alias, ver, gate.who, "move", f"request {request_id}"
        )
    return get(conn, gate, request_id)

"""Reports: saved specs with every revision kept, and revocable read-only share links.

A report lives in a project and follows its rules: reading it needs READ there,
saving, deleting and sharing need WRITE, and switching share links off for the whole
project needs ADMIN. A report the caller may not read is "not found", as one that does
not exist. Every save stores the whole (validated, normalized) spec as a new revision;
earlier revisions stay readable.

A share link is a random token (256 bits, ``secrets.token_urlsafe``); only its SHA-256
is stored, as for API keys, so the token is shown once, in the answer that enables the
link. Enabling again makes a new token (the old one stops working); disabling clears
it; a project's admins can switch share links off, which also revokes every link of the
project's reports. :func:`by_share_token` turns a token into the report and a
``share`` principal that may read that report's project and nothing else.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from typing import Any

from sqlalchemy import Connection, and_, delete, insert, select, update

from stemma.errors import NotFound, PermissionDenied, UsageError
from stemma.report.spec import canonical, validate_spec
from stemma.service import audit
from stemma.service.access import Gate, Level, Principal
from stemma.service.clock import aware, utcnow
from stemma.storage.models import (
    entities,
    project_settings,
    projects,
    report_revisions,
    reports,
)
from stemma.wire.names import check_name

_ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,32}")
ID_LENGTH = 10


def new_report_id() -> str:
    """Ten random base-36 characters (3.7e15 values), unique across the store."""
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(ID_LENGTH))


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _missing(report_id: object) -> NotFound:
    shown = str(report_id)[:64]
    return NotFound(f"no report {shown!r} (or no access to it)", report=shown)


def _query() -> Any:
    return select(
        reports, entities.c.name.label("entity"), projects.c.name.label("project")
    ).select_from(
        reports.join(projects, projects.c.id == reports.c.project_id).join(
            entities, entities.c.id == projects.c.entity_id
        )
    )


def _row(conn: Connection, report_id: object, lock: bool = False) -> Any:
    if not isinstance(report_id, str) or not _ID_RE.fullmatch(report_id):
        return None
    q = _query().where(reports.c.report_id == report_id)
    if lock:  # serialise revision numbering on PostgreSQL (SQLite writes are already)
        q = q.with_for_update(of=reports)
    return conn.execute(q).first()


def _readable(conn: Connection, gate: Gate, report_id: object, lock: bool = False) -> Any:
    """The report's row, or NotFound when it does not exist or the caller cannot read
    it (a share link reads only its own report)."""
    row = _row(conn, report_id, lock)
    shared = gate.who.shared_report
    if (
        row is None
        or not gate.can(conn, row.entity, row.project, Level.READ)
        or (shared is not None and shared != row.report_id)
    ):
        raise _missing(report_id)
    return row


def sharing_allowed(conn: Connection, project_id: int) -> bool:
    value = conn.execute(
        select(project_settings.c.report_sharing).where(project_settings.c.project_id == project_id)
    ).scalar()
    return True if value is None else bool(value)


def _share(row: Any, allowed: bool, token: str | None = None) -> dict[str, Any]:
    return {
        "enabled": row.share_token_hash is not None,
        "token": token,
        "allowed": allowed,
        "enabled_by": row.shared_by,
        "enabled_at": aware(row.shared_at),
    }


def _summary(row: Any, allowed: bool) -> dict[str, Any]:
    return {
        "id": row.report_id,
        "entity": row.entity,
        "project": row.project,
        "title": row.title,
        "description": row.description,
        "revision": row.revision,
        "revisions": row.revision,  # numbered 1, 2, 3... and never deleted one by one
        "created_by": row.created_by,
        "created_at": aware(row.created_at),
        "updated_by": row.updated_by,
        "updated_at": aware(row.updated_at),
        "share": _share(row, allowed),
    }


def _record(
    conn: Connection, row: Any, revision: int | None = None, token: str | None = None
) -> dict[str, Any]:
    number = row.revision if revision is None else revision
    if isinstance(number, bool) or not isinstance(number, int) or number < 1:
        raise UsageError(f"a revision is a whole number from 1, got {number!r}"[:200])
    rev = conn.execute(
        select(report_revisions.c.spec).where(
            and_(report_revisions.c.report_pk == row.id, report_revisions.c.revision == number)
        )
    ).first()
    if rev is None:
        raise NotFound(
            f"report {row.report_id} has no revision {number} (it has 1 to {row.revision})",
            report=row.report_id,
            revision=number,
        )
    out = _summary(row, sharing_allowed(conn, row.project_id))
    spec = canonical(rev.spec)
    out.update(
        revision=number,
        title=spec.get("title", row.title),
        description=spec.get("description", row.description),
        spec=spec,
    )
    if token is not None:
        out["share"]["token"] = token
    return out


def _target(row: Any) -> str:
    return f"{row.entity}/{row.project}/reports/{row.report_id}"


# ------------------------------------------------------------------ reads


def get(
    conn: Connection, gate: Gate, report_id: str, revision: int | None = None
) -> dict[str, Any]:
    """The report with the spec of ``revision`` (default: the newest)."""
    return _record(conn, _readable(conn, gate, report_id), revision)


def location(conn: Connection, gate: Gate, report_id: str) -> tuple[str, str]:
    """(entity, project) of a report the caller may read."""
    row = _readable(conn, gate, report_id)
    return row.entity, row.project


def list_reports(conn: Connection, gate: Gate, entity: str, project: str) -> list[dict[str, Any]]:
    """The project's reports (without specs), most recently saved first."""
    check_name(entity, "entity")
    check_name(project, "project")
    gate.require(conn, entity, project, Level.READ)
    q = _query().where(and_(entities.c.name == entity, projects.c.name == project))
    if gate.who.shared_report is not None:
        q = q.where(reports.c.report_id == gate.who.shared_report)
    rows = conn.execute(q.order_by(reports.c.updated_at.desc(), reports.c.id.desc())).all()
    if not rows:
        return []
    allowed = sharing_allowed(conn, rows[0].project_id)
    return [_summary(r, allowed) for r in rows]


def revisions(conn: Connection, gate: Gate, report_id: str) -> list[dict[str, Any]]:
    """``{revision, saved_by, saved_at, title}`` of every revision, oldest first."""
    row = _readable(conn, gate, report_id)
    rows = conn.execute(
        select(
            report_revisions.c.revision,
            report_revisions.c.saved_by,
            report_revisions.c.saved_at,
            report_revisions.c.title,
        )
        .where(report_revisions.c.report_pk == row.id)
        .order_by(report_revisions.c.revision)
    ).all()
    return [
        {
            "revision": r.revision,
            "saved_by": r.saved_by,
            "saved_at": aware(r.saved_at),
            "title": r.title,
        }
        for r in rows
    ]


# ------------------------------------------------------------------ writes


def save(
    conn: Connection,
    gate: Gate,
    entity: str,
    project: str,
    spec: Any,
    report_id: str | None = None,
) -> dict[str, Any]:
    """Validate ``spec`` and store it: a new report (``report_id`` None) or a new
    revision of one. Needs WRITE on the project. Returns the record."""
    from stemma.service.runs import ensure_project

    check_name(entity, "entity")
    check_name(project, "project")
    now, who = utcnow(), gate.who
    if report_id is None:
        gate.require(conn, entity, project, Level.WRITE, f"save reports in {entity}/{project}")
        clean = validate_spec(spec, entity, project)
        pid = ensure_project(conn, entity, project, who)
        new_id = new_report_id()
        while _row(conn, new_id) is not None:  # pragma: no cover - 1 in 3.7e15
            new_id = new_report_id()
        pk = conn.execute(
            insert(reports).values(
                report_id=new_id,
                project_id=pid,
                title=clean["title"],
                description=clean["description"],
                revision=1,
                created_by=who.name[:128],
                created_at=now,
                updated_by=who.name[:128],
                updated_at=now,
            )
        ).inserted_primary_key[0]  # type: ignore[index]
        number = 1
        row_id = new_id
    else:
        row = _readable(conn, gate, report_id, lock=True)
        if (row.entity, row.project) != (entity, project):
            raise UsageError(
                f"report {report_id} belongs to {row.entity}/{row.project}, not {entity}/{project}",
                report=report_id,
            )
        gate.require(conn, entity, project, Level.WRITE, f"save report {report_id}")
        clean = validate_spec(spec, entity, project)
        pk, number, row_id = row.id, row.revision + 1, row.report_id
        conn.execute(
            update(reports)
            .where(reports.c.id == pk)
            .values(
                title=clean["title"],
                description=clean["description"],
                revision=number,
                updated_by=who.name[:128],
                updated_at=now,
            )
        )
    conn.execute(
        insert(report_revisions).values(
            report_pk=pk,
            revision=number,
            spec=clean,
            title=clean["title"],
            saved_by=who.name[:128],
            saved_at=now,
        )
    )
    saved = _row(conn, row_id)
    audit.append(
        conn,
        who,
        "report.save",
        _target(saved),
        entity=entity,
        details={"revision": number, "title": clean["title"]},
    )
    return _record(conn, saved)


def delete_report(conn: Connection, gate: Gate, report_id: str) -> None:
    """Delete a report and every revision (WRITE)."""
    row = _readable(conn, gate, report_id, lock=True)
    gate.require(conn, row.entity, row.project, Level.WRITE, f"delete report {report_id}")
    conn.execute(delete(reports).where(reports.c.id == row.id))
    audit.append(
        conn,
        gate.who,
        "report.delete",
        _target(row),
        entity=row.entity,
        details={"title": row.title, "revisions": row.revision},
    )


def set_share(conn: Connection, gate: Gate, report_id: str, enabled: bool) -> dict[str, Any]:
    """Enable (a fresh token, returned in ``share.token`` this once) or revoke the
    report's share link (WRITE; refused when the project's admins switched links off)."""
    if not isinstance(enabled, bool):
        raise UsageError(f"enabled must be true or false, got {enabled!r}"[:200])
    row = _readable(conn, gate, report_id, lock=True)
    gate.require(conn, row.entity, row.project, Level.WRITE, f"share report {report_id}")
    token = None
    if enabled:
        if not sharing_allowed(conn, row.project_id):
            raise PermissionDenied(
                f"the admins of {row.entity}/{row.project} have turned share links off for "
                "its reports",
                path=f"{row.entity}/{row.project}",
            )
        token = secrets.token_urlsafe(32)
        values: dict[str, Any] = {
            "share_token_hash": token_hash(token),
            "shared_by": gate.who.name[:128],
            "shared_at": utcnow(),
        }
    else:
        values = {"share_token_hash": None, "shared_by": None, "shared_at": None}
    conn.execute(update(reports).where(reports.c.id == row.id).values(**values))
    audit.append(
        conn,
        gate.who,
        "report.share",
        _target(row),
        entity=row.entity,
        details={"enabled": enabled},
    )
    return _record(conn, _row(conn, row.report_id), token=token)


def _project_id(conn: Connection, entity: str, project: str) -> int | None:
    return conn.execute(
        select(projects.c.id)
        .select_from(projects.join(entities, projects.c.entity_id == entities.c.id))
        .where(and_(entities.c.name == entity, projects.c.name == project))
    ).scalar()


def get_sharing_allowed(conn: Connection, gate: Gate, entity: str, project: str) -> bool:
    """Whether the project's reports may have share links (READ; default True)."""
    check_name(entity, "entity")
    check_name(project, "project")
    gate.require(conn, entity, project, Level.READ)
    pid = _project_id(conn, entity, project)
    return True if pid is None else sharing_allowed(conn, pid)


def set_sharing_allowed(
    conn: Connection, gate: Gate, entity: str, project: str, allowed: bool
) -> None:
    """Allow or forbid share links for the project's reports (ADMIN). Forbidding also
    revokes every link its reports have, so allowing again revives none."""
    from stemma.service.artifacts import DEFAULT_PROTECTED
    from stemma.service.runs import ensure_project

    check_name(entity, "entity")
    check_name(project, "project")
    if not isinstance(allowed, bool):
        raise UsageError(f"allowed must be true or false, got {allowed!r}"[:200])
    gate.require(conn, entity, project, Level.ADMIN, f"change report sharing of {entity}/{project}")
    pid = ensure_project(conn, entity, project, gate.who)
    res = conn.execute(
        update(project_settings)
        .where(project_settings.c.project_id == pid)
        .values(report_sharing=allowed)
    )
    if not res.rowcount:
        conn.execute(
            insert(project_settings).values(
                project_id=pid, protected_aliases=list(DEFAULT_PROTECTED), report_sharing=allowed
            )
        )
    revoked = 0
    if not allowed:
        revoked = conn.execute(
            update(reports)
            .where(and_(reports.c.project_id == pid, reports.c.share_token_hash.is_not(None)))
            .values(share_token_hash=None, shared_by=None, shared_at=None)
        ).rowcount
    audit.append(
        conn,
        gate.who,
        "project.report_sharing",
        f"{entity}/{project}",
        entity=entity,
        details={"allowed": allowed, "revoked": int(revoked or 0)},
    )


def by_share_token(
    conn: Connection, token: object, source: str | None = None
) -> tuple[dict[str, Any], Principal]:
    """(the report's record, a principal reading only its project) for a live share
    token; NotFound for anything else (unknown, revoked, or links switched off)."""
    if not isinstance(token, str) or not 16 <= len(token) <= 128:
        raise NotFound("no such share link (it may have been revoked)")
    row = conn.execute(_query().where(reports.c.share_token_hash == token_hash(token))).first()
    if row is None or not sharing_allowed(conn, row.project_id):
        raise NotFound("no such share link (it may have been revoked)")
    who = Principal.share_link(row.report_id, row.entity, row.project, source)
    return _record(conn, row), who

"""Administration pages: a project's settings, the audit log, and storage.

* ``/p/{entity}/{project}/settings``: visibility, protected aliases, retention policies
  and pending promotion requests (everyone who can read the project sees them; team
  admins get the forms).
* ``/admin/audit``: the whole audit log for instance administrators, with filters,
  paging by sequence number and a check of the hash chain. Team admins read their
  team's log at ``/teams/{team}/audit`` (same template, :func:`audit_listing`).
* ``/storage``: logical vs physical bytes of the artifacts the caller can read.

Forms post to these routes, call the store (which checks every permission itself) and
redirect back with a flash message; a refused or invalid change re-renders the page with
the store's message and its status (403, 400, 409...).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated, Any

from fastapi import Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import and_, func, select

from stemma.errors import NotFound, PermissionDenied, StemmaError, UsageError
from stemma.server.deps import Store
from stemma.server.errors import STATUS_BY_CODE
from stemma.server.web import page_router
from stemma.service.access import Level
from stemma.storage.database import read_tx
from stemma.storage.models import blobs, entities, projects
from stemma.ui.access import abilities
from stemma.ui.render import flash, render, urlpart
from stemma.util import parse_time
from stemma.wire.names import check_name

router = page_router()

AUDIT_PAGE = 50
# Actions (and prefixes) offered as suggestions in the audit filter.
AUDIT_ACTIONS = (
    "alias.",
    "artifact.",
    "key.",
    "project.",
    "run.",
    "service_account.",
    "session.",
    "team.",
    "user.",
    "key.create",
    "key.revoke",
    "project.protected_aliases",
    "project.retention",
    "project.visibility",
    "session.login_failed",
    "team.add",
    "team.role",
    "team.remove",
    "team.invite",
)


# ------------------------------------------------------------------ shared helpers


def back(url: str, message: str) -> Response:
    """The answer to a form that worked: back to ``url``, with ``message`` shown once."""
    return flash(RedirectResponse(url, status_code=303), message)


def status_of(error: StemmaError | None) -> int:
    return 200 if error is None else STATUS_BY_CODE.get(error.code, 500)


def duration_text(seconds: float | None) -> str:
    """86400 * 30 -> '30d': a duration as the forms accept it back."""
    if seconds is None:
        return ""
    s = int(seconds)
    for size, unit in ((7 * 86400, "w"), (86400, "d"), (3600, "h"), (60, "m")):
        if s >= size and s % size == 0:
            return f"{s // size}{unit}"
    return f"{s}s"


def optional_duration(text: str, what: str) -> float | None:
    """A form's duration field ('30d', '12h'; blank: none) in seconds."""
    text = text.strip()
    if not text:
        return None
    try:
        return parse_time(text).total_seconds()
    except UsageError as exc:
        raise UsageError(f"{what}: {exc.message}") from None


def _date(text: str | None, what: str) -> dt.date | None:
    if not text:
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise UsageError(f"{what}: expected a date such as 2026-10-01, got {text!r}") from None


def _details(details: Any) -> str:
    if not details:
        return ""
    return json.dumps(details, default=str, ensure_ascii=False, sort_keys=True)


def audit_listing(store: Any, params: dict[str, str], entity: str | None = None) -> dict[str, Any]:
    """One page of audit entries for the filters in ``params`` (query string values).

    ``entity`` fixes the scope (a team's page); otherwise the ``entity`` filter is free.
    Paging walks back by sequence number: ``before`` is the seq the page starts below.
    """
    filters = {k: (params.get(k) or "").strip() for k in ("actor", "action", "target", "entity")}
    filters["since"] = (params.get("since") or "").strip()
    filters["until"] = (params.get("until") or "").strip()
    if entity is not None:
        filters["entity"] = entity
    since = _date(filters["since"], "since")
    until = _date(filters["until"], "until")
    before = params.get("before") or ""
    before_seq = int(before) if before.isdigit() else None
    rows = store.audit_log(
        entity=filters["entity"] or None,
        actor=filters["actor"] or None,
        action=filters["action"] or None,
        target=filters["target"] or None,
        since=None if since is None else dt.datetime.combine(since, dt.time(), dt.UTC),
        until=None
        if until is None
        else dt.datetime.combine(until + dt.timedelta(days=1), dt.time(), dt.UTC),
        limit=AUDIT_PAGE + 1,
        before_seq=before_seq,
    )
    more = len(rows) > AUDIT_PAGE
    rows = rows[:AUDIT_PAGE]
    for r in rows:
        r["details_text"] = _details(r.get("details"))
    query = {k: v for k, v in filters.items() if v and not (entity and k == "entity")}
    return {
        "entries": rows,
        "filters": filters,
        "query": query,
        "paged": before_seq is not None,
        "older": rows[-1]["seq"] if more and rows else None,
        "actions": AUDIT_ACTIONS,
    }


# ------------------------------------------------------------------ project settings


def _visibility(store: Any, entity: str, project: str) -> str:
    """The project's visibility (NotFound when it does not exist or cannot be read)."""
    with read_tx(store.engine) as conn:
        store.gate.require(conn, entity, project, Level.READ)
        value = conn.execute(
            select(projects.c.visibility)
            .join(entities, entities.c.id == projects.c.entity_id)
            .where(and_(entities.c.name == entity, projects.c.name == project))
        ).scalar()
    if value is None:
        raise NotFound(f"no project {entity}/{project}", path=f"{entity}/{project}")
    return str(value)


def _settings_url(entity: str, project: str) -> str:
    return f"/p/{urlpart(entity)}/{urlpart(project)}/settings"


def _project_settings(
    request: Request, store: Any, entity: str, project: str, error: StemmaError | None = None
) -> HTMLResponse:
    check_name(entity, "entity")
    check_name(project, "project")
    visibility = _visibility(store, entity, project)
    policies = sorted(
        store.get_retention(entity, project), key=lambda p: (p["name"] is not None, p["name"])
    )
    for p in policies:
        p["older_text"] = duration_text(p["delete_unaliased_older_than"])
        p["ttl_text"] = duration_text(p.get("default_ttl"))
    requests = store.list_promotions(entity, project, state=None)
    pending = [r for r in requests if r["state"] == "pending"]
    decided = sorted(
        (r for r in requests if r["state"] != "pending"),
        key=lambda r: r["decided_at"] or r["requested_at"],
        reverse=True,
    )[:10]
    return render(
        request,
        "project_settings.html",
        f"Settings · {entity}/{project}",
        status=status_of(error),
        error=error and error.message,
        entity=entity,
        project=project,
        can=abilities(store, entity, project),
        entity_is_team=any(t["name"] == entity for t in store.list_teams()),
        visibility=visibility,
        protected=store.get_protected_aliases(entity, project),
        policies=policies,
        pending=pending,
        decided=decided,
    )


@router.get("/p/{entity}/{project}/settings", response_class=HTMLResponse)
def project_settings(request: Request, store: Store, entity: str, project: str) -> HTMLResponse:
    return _project_settings(request, store, entity, project)


@router.post("/p/{entity}/{project}/settings/visibility", response_class=HTMLResponse)
def set_visibility(
    request: Request,
    store: Store,
    entity: str,
    project: str,
    visibility: Annotated[str, Form()] = "",
) -> Response:
    try:
        store.set_project_visibility(check_name(entity, "entity"), project, visibility)
    except StemmaError as exc:
        return _project_settings(request, store, entity, project, exc)
    return back(_settings_url(entity, project), f"{entity}/{project} is now {visibility}.")


@router.post("/p/{entity}/{project}/settings/protected", response_class=HTMLResponse)
def set_protected(
    request: Request,
    store: Store,
    entity: str,
    project: str,
    aliases: Annotated[str, Form()] = "",
) -> Response:
    names = [a for a in aliases.replace(",", " ").split() if a]
    try:
        store.set_protected_aliases(
            check_name(entity, "entity"), check_name(project, "project"), names
        )
    except StemmaError as exc:
        return _project_settings(request, store, entity, project, exc)
    shown = ", ".join(names) if names else "none"
    return back(_settings_url(entity, project), f"Protected aliases: {shown}.")


@router.post("/p/{entity}/{project}/settings/retention", response_class=HTMLResponse)
def set_retention(
    request: Request,
    store: Store,
    entity: str,
    project: str,
    name: Annotated[str, Form()] = "",
    keep_last: Annotated[str, Form()] = "",
    older_than: Annotated[str, Form()] = "",
    default_ttl: Annotated[str, Form()] = "",
    clear: Annotated[str, Form()] = "",
) -> Response:
    target = name.strip() or None
    try:
        check_name(entity, "entity")
        check_name(project, "project")
        if clear:
            keep, older, ttl = None, None, None
        else:
            if keep_last.strip() and not keep_last.strip().isdigit():
                raise UsageError(f"keep last: expected a whole number, got {keep_last!r}")
            keep = int(keep_last) if keep_last.strip() else None
            older = optional_duration(older_than, "delete unaliased versions older than")
            ttl = optional_duration(default_ttl, "default TTL")
            if keep is None and older is None and ttl is None:
                raise UsageError(
                    "give 'keep last', 'delete unaliased older than' or 'default TTL' "
                    "(or remove the policy)"
                )
        store.set_retention(entity, project, target, keep, older, ttl)
    except StemmaError as exc:
        return _project_settings(request, store, entity, project, exc)
    which = f"artifact {target}" if target else "every artifact"
    done = "removed" if clear else "saved"
    return back(_settings_url(entity, project), f"Retention policy for {which} {done}.")


@router.post("/p/{entity}/{project}/settings/promotions/{request_id}", response_class=HTMLResponse)
def decide_promotion(
    request: Request,
    store: Store,
    entity: str,
    project: str,
    request_id: int,
    decision: Annotated[str, Form()] = "",
    comment: Annotated[str, Form()] = "",
) -> Response:
    try:
        if decision not in ("approve", "reject"):
            raise UsageError("choose approve or reject")
        done = store.decide_promotion(
            request_id,
            decision == "approve",
            comment.strip() or None,
            (check_name(entity, "entity"), check_name(project, "project")),
        )
    except StemmaError as exc:
        return _project_settings(request, store, entity, project, exc)
    what = f"{done['artifact']}:{done['version']} → {done['alias']}"
    return back(_settings_url(entity, project), f"Request {request_id} {done['state']}: {what}.")


# ------------------------------------------------------------------ audit log


@router.get("/admin/audit", response_class=HTMLResponse)
def audit_page(request: Request, store: Store) -> HTMLResponse:
    # The store would give a team admin their teams' entries; this page is the whole
    # log, for instance administrators (team admins have their team's page).
    if not store.who.is_admin:
        raise PermissionDenied(
            f"{store.who.name} may not read the whole audit log: it needs an instance "
            "administrator. A team's admins read its log on the team's page."
        )
    params = dict(request.query_params)
    listing = audit_listing(store, params)
    verify = store.audit_verify() if params.get("verify") else None
    return render(
        request,
        "audit.html",
        "Audit log",
        scope=None,
        verify=verify,
        **listing,
    )


# ------------------------------------------------------------------ storage


def _blob_store_totals(store: Any) -> dict[str, int] | None:
    """Every stored blob (artifacts, run media, blobs awaiting gc): instance admins."""
    if not store.who.is_admin:
        return None
    with read_tx(store.engine) as conn:
        count, size = conn.execute(
            select(func.count(), func.coalesce(func.sum(blobs.c.size), 0)).select_from(blobs)
        ).one()
    return {"blobs": int(count), "bytes": int(size)}


def _ratio(logical: int, physical: int) -> dict[str, Any]:
    return {
        "saved": (1 - physical / logical) if logical else 0.0,
        "dedup": (logical / physical) if physical else None,
    }


@router.get("/storage", response_class=HTMLResponse)
def storage_page(request: Request, store: Store) -> HTMLResponse:
    rows = store.storage_stats()
    by_project: dict[tuple[str, str], dict[str, Any]] = {}
    for r in rows:
        r.update(_ratio(r["logical_bytes"], r["physical_bytes"]))
        p = by_project.setdefault(
            (r["entity"], r["project"]),
            {
                "entity": r["entity"],
                "project": r["project"],
                "versions": 0,
                "blobs": 0,
                "logical_bytes": 0,
                "file_dedup_bytes": 0,
                "physical_bytes": 0,
                "types": 0,
            },
        )
        r.setdefault("file_dedup_bytes", r["physical_bytes"])
        for k in ("versions", "blobs", "logical_bytes", "file_dedup_bytes", "physical_bytes"):
            p[k] += r[k]
        p["types"] += 1
    projects_ = list(by_project.values())
    for p in projects_:
        p.update(_ratio(p["logical_bytes"], p["physical_bytes"]))
    logical = sum(p["logical_bytes"] for p in projects_)
    physical = sum(p["physical_bytes"] for p in projects_)
    totals = {
        "projects": len(projects_),
        "versions": sum(p["versions"] for p in projects_),
        "logical_bytes": logical,
        "file_dedup_bytes": sum(p["file_dedup_bytes"] for p in projects_),
        "physical_bytes": physical,
        **_ratio(logical, physical),
    }
    return render(
        request,
        "storage.html",
        "Storage",
        rows=rows,
        projects=projects_,
        totals=totals,
        blob_store=_blob_store_totals(store),
    )

"""People and permissions: users, API keys, teams, service accounts, project visibility,
promotion requests and the audit log. Thin: every rule is applied by the store."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response

from stemma.server.deps import Store, artifact_ref, rule
from stemma.wire.names import check_name
from stemma.wire.schemas import (
    AuditEntryOut,
    AuditVerifyOut,
    CreatedKeyOut,
    CreatedServiceAccountOut,
    CreatedUserOut,
    DecisionIn,
    KeyIn,
    KeyOut,
    MemberIn,
    MembershipOut,
    PasswordIn,
    PasswordOut,
    PromotionIn,
    PromotionOut,
    ServiceAccountIn,
    TeamDetailOut,
    TeamIn,
    TeamOut,
    UserIn,
    UserOut,
    UserPatchIn,
    VisibilityIn,
)

router = APIRouter(prefix="/api/v1")


def _audit_query(
    actor: str | None = None,
    action: str | None = Query(None, description="an action, or a prefix ending in '.'"),
    target: str | None = Query(None, description="a target prefix"),
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
    before_seq: int | None = Query(None, description="entries older than this one (paging)"),
) -> dict[str, Any]:
    """The audit log's query parameters, shared by the team and instance routes."""
    return {
        "actor": actor,
        "action": action,
        "target": target,
        "since": since,
        "until": until,
        "limit": limit,
        "before_seq": before_seq,
    }


AuditQuery = Annotated[dict[str, Any], Depends(_audit_query)]


# ------------------------------------------------------------------ users and keys


@router.get(
    "/users", response_model=list[UserOut], tags=["users"], openapi_extra=rule("instance-admin")
)
def list_users(store: Store) -> list[UserOut]:
    return [UserOut(**u) for u in store.list_users()]


@router.post(
    "/users",
    response_model=CreatedUserOut,
    status_code=201,
    tags=["users"],
    openapi_extra=rule("instance-admin"),
)
def create_user(body: UserIn, store: Store) -> CreatedUserOut:
    args: dict[str, Any] = {
        "display_name": body.display_name,
        "username": body.username,
        "is_admin": body.admin,
        "password": body.password,
    }
    key = None
    if body.with_key:
        user, password, key = store.create_user_with_key(body.email, **args)
    else:
        user, password = store.create_user(body.email, **args)
    return CreatedUserOut(user=UserOut(**user), password=password, key=key)


@router.patch(
    "/users/{user}", status_code=204, tags=["users"], openapi_extra=rule("instance-admin")
)
def patch_user(user: str, body: UserPatchIn, store: Store) -> Response:
    store.set_user_disabled(user, body.disabled)
    return Response(status_code=204)


@router.post(
    "/users/{user}/password",
    response_model=PasswordOut,
    tags=["users"],
    openapi_extra=rule("authenticated"),
    summary="Set a password (yours, or anyone's as an instance admin); omitted: generated",
)
def set_password(user: str, body: PasswordIn, store: Store) -> PasswordOut:
    return PasswordOut(password=store.set_password(user, body.password))


@router.get(
    "/keys", response_model=list[KeyOut], tags=["users"], openapi_extra=rule("authenticated")
)
def list_keys(store: Store, user: str | None = None) -> list[KeyOut]:
    return [KeyOut(**k) for k in store.list_api_keys(user)]


@router.post(
    "/keys",
    response_model=CreatedKeyOut,
    status_code=201,
    tags=["users"],
    openapi_extra=rule("authenticated"),
)
def create_key(body: KeyIn, store: Store) -> CreatedKeyOut:
    info, key = store.create_api_key(body.user, body.name, body.expires_in)
    return CreatedKeyOut(info=KeyOut(**info), key=key)


@router.delete(
    "/keys/{prefix}", response_model=KeyOut, tags=["users"], openapi_extra=rule("authenticated")
)
def revoke_key(prefix: str, store: Store) -> KeyOut:
    return KeyOut(**store.revoke_api_key(prefix))


# ------------------------------------------------------------------ teams


@router.get(
    "/teams", response_model=list[TeamOut], tags=["teams"], openapi_extra=rule("authenticated")
)
def list_teams(store: Store) -> list[TeamOut]:
    return [TeamOut(**t) for t in store.list_teams()]


@router.post(
    "/teams",
    response_model=TeamOut,
    status_code=201,
    tags=["teams"],
    openapi_extra=rule("authenticated"),
)
def create_team(body: TeamIn, store: Store) -> TeamOut:
    return TeamOut(**store.create_team(body.name))


@router.get(
    "/teams/{team}", response_model=TeamDetailOut, tags=["teams"], openapi_extra=rule("read")
)
def team(team: str, store: Store) -> TeamDetailOut:
    return TeamDetailOut(**store.team_members(team))


@router.put(
    "/teams/{team}/members/{user}",
    response_model=MembershipOut,
    tags=["teams"],
    openapi_extra=rule("admin"),
    summary="Add a member or change a role; an unknown email gets a pending invite",
)
def put_member(team: str, user: str, body: MemberIn, store: Store) -> MembershipOut:
    return MembershipOut(**store.add_member(team, user, body.role))


@router.delete(
    "/teams/{team}/members/{user}",
    response_model=MembershipOut,
    tags=["teams"],
    openapi_extra=rule("admin"),
    summary="Remove a member (their runs stay) or cancel an invite",
)
def delete_member(team: str, user: str, store: Store) -> MembershipOut:
    return MembershipOut(**store.remove_member(team, user))


@router.post(
    "/teams/{team}/service-accounts",
    response_model=CreatedServiceAccountOut,
    status_code=201,
    tags=["teams"],
    openapi_extra=rule("admin"),
)
def create_service_account(
    team: str, body: ServiceAccountIn, store: Store
) -> CreatedServiceAccountOut:
    info, key = store.create_service_account(team, body.name, body.role)
    info.pop("key_prefix", None)
    return CreatedServiceAccountOut(account=UserOut(**info), key=key)


@router.delete(
    "/teams/{team}/service-accounts/{name}",
    status_code=204,
    tags=["teams"],
    openapi_extra=rule("admin"),
    summary="Disable a service account and revoke its keys (its runs stay)",
)
def delete_service_account(team: str, name: str, store: Store) -> Response:
    store.delete_service_account(team, name)
    return Response(status_code=204)


@router.get(
    "/teams/{team}/audit",
    response_model=list[AuditEntryOut],
    tags=["audit"],
    openapi_extra=rule("admin"),
)
def team_audit(team: str, store: Store, query: AuditQuery) -> list[AuditEntryOut]:
    check_name(team, "team")
    return [AuditEntryOut(**r) for r in store.audit_log(entity=team, **query)]


# ------------------------------------------------------------------ projects


@router.put(
    "/projects/{entity}/{project}/visibility",
    status_code=204,
    tags=["teams"],
    openapi_extra=rule("admin"),
)
def set_visibility(entity: str, project: str, body: VisibilityIn, store: Store) -> Response:
    store.set_project_visibility(
        check_name(entity, "entity"), check_name(project, "project"), body.visibility
    )
    return Response(status_code=204)


# ------------------------------------------------------------------ promotions


@router.post(
    "/artifacts/{entity}/{project}/{name}/{version}/promotions",
    response_model=PromotionOut,
    status_code=201,
    tags=["artifacts"],
    openapi_extra=rule("write"),
    summary="Request that a protected alias be moved to this version",
)
def request_promotion(
    entity: str, project: str, name: str, version: str, body: PromotionIn, store: Store
) -> PromotionOut:
    ref = artifact_ref(entity, project, name, version)
    return PromotionOut(**store.request_promotion(ref, body.alias, body.comment))


@router.get(
    "/projects/{entity}/{project}/promotions",
    response_model=list[PromotionOut],
    tags=["artifacts"],
    openapi_extra=rule("read"),
)
def list_promotions(
    entity: str,
    project: str,
    store: Store,
    name: str | None = None,
    state: str | None = "pending",
) -> list[PromotionOut]:
    ent, proj = check_name(entity, "entity"), check_name(project, "project")
    state = None if state == "all" else state
    return [PromotionOut(**p) for p in store.list_promotions(ent, proj, name, state)]


@router.post(
    "/projects/{entity}/{project}/promotions/{request_id}/decision",
    response_model=PromotionOut,
    tags=["artifacts"],
    openapi_extra=rule("admin"),
    summary="Approve (the alias moves) or reject a promotion request",
)
def decide_promotion(
    entity: str, project: str, request_id: int, body: DecisionIn, store: Store
) -> PromotionOut:
    ent, proj = check_name(entity, "entity"), check_name(project, "project")
    return PromotionOut(
        **store.decide_promotion(request_id, body.approve, body.comment, (ent, proj))
    )


# ------------------------------------------------------------------ instance audit


@router.get(
    "/audit",
    response_model=list[AuditEntryOut],
    tags=["audit"],
    openapi_extra=rule("authenticated"),
    summary="Audit entries the caller may read: all (instance admins), else those of the "
    "teams it administers and of its own entity",
)
def audit(store: Store, query: AuditQuery, entity: str | None = None) -> list[AuditEntryOut]:
    return [AuditEntryOut(**r) for r in store.audit_log(entity=entity, **query)]


@router.get(
    "/audit/verify",
    response_model=AuditVerifyOut,
    tags=["audit"],
    openapi_extra=rule("instance-admin"),
)
def audit_verify(store: Store) -> AuditVerifyOut:
    return AuditVerifyOut(**store.audit_verify())

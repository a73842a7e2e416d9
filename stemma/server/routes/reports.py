"""Reports: save specs (a revision each time), read any revision, list a project's
reports, share links and the project's switch for them. Thin: the store checks every
rule and validates every spec."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from stemma.server.deps import Store, rule
from stemma.wire.names import check_name
from stemma.wire.reports import (
    ReportIn,
    ReportListOut,
    ReportOut,
    ReportSummaryOut,
    RevisionListOut,
    RevisionOut,
    ShareIn,
    SharingIn,
    SharingOut,
)

router = APIRouter(prefix="/api/v1", tags=["reports"])


def _project(entity: str, project: str) -> tuple[str, str]:
    return check_name(entity, "entity"), check_name(project, "project")


@router.get(
    "/projects/{entity}/{project}/reports",
    response_model=ReportListOut,
    summary="A project's reports (without specs), most recently saved first",
    openapi_extra=rule("read"),
)
def list_reports(entity: str, project: str, store: Store) -> ReportListOut:
    found = store.list_reports(*_project(entity, project))
    return ReportListOut(reports=[ReportSummaryOut(**r) for r in found])


@router.post(
    "/projects/{entity}/{project}/reports",
    response_model=ReportOut,
    status_code=201,
    summary="Create a report from a spec (its revision 1)",
    openapi_extra=rule("write"),
)
def create_report(entity: str, project: str, body: ReportIn, store: Store) -> ReportOut:
    return ReportOut(**store.save_report(*_project(entity, project), body.spec))


@router.get(
    "/reports/{report_id}",
    response_model=ReportOut,
    summary="A report with the spec of one revision (default: the newest)",
    openapi_extra=rule("read"),
)
def get_report(
    report_id: str,
    store: Store,
    revision: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
) -> ReportOut:
    return ReportOut(**store.get_report(report_id, revision))


@router.put(
    "/reports/{report_id}",
    response_model=ReportOut,
    summary="Save a new revision of a report",
    openapi_extra=rule("write"),
)
def save_report(report_id: str, body: ReportIn, store: Store) -> ReportOut:
    where = store.report_location(report_id)
    return ReportOut(**store.save_report(*where, body.spec, report_id))


@router.delete(
    "/reports/{report_id}",
    status_code=204,
    summary="Delete a report and every revision",
    openapi_extra=rule("write"),
)
def delete_report(report_id: str, store: Store) -> Response:
    store.delete_report(report_id)
    return Response(status_code=204)


@router.get(
    "/reports/{report_id}/revisions",
    response_model=RevisionListOut,
    summary="A report's revisions, oldest first",
    openapi_extra=rule("read"),
)
def list_revisions(report_id: str, store: Store) -> RevisionListOut:
    return RevisionListOut(revisions=[RevisionOut(**r) for r in store.report_revisions(report_id)])


@router.put(
    "/reports/{report_id}/share",
    response_model=ReportOut,
    summary="Enable (a new token, shown in this answer only) or revoke a share link",
    openapi_extra=rule("write"),
)
def set_share(report_id: str, body: ShareIn, store: Store) -> ReportOut:
    return ReportOut(**store.set_report_share(report_id, body.enabled))


@router.get(
    "/projects/{entity}/{project}/report-sharing",
    response_model=SharingOut,
    summary="Whether the project's reports may have share links",
    openapi_extra=rule("read"),
)
def get_sharing(entity: str, project: str, store: Store) -> SharingOut:
    return SharingOut(allowed=store.report_sharing_allowed(*_project(entity, project)))


@router.put(
    "/projects/{entity}/{project}/report-sharing",
    response_model=SharingOut,
    summary="Allow or forbid share links in a project (forbidding revokes them all)",
    openapi_extra=rule("admin"),
)
def set_sharing(entity: str, project: str, body: SharingIn, store: Store) -> SharingOut:
    ent, proj = _project(entity, project)
    store.set_report_sharing_allowed(ent, proj, body.allowed)
    return SharingOut(allowed=body.allowed)

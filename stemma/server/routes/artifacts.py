"""Artifacts: commit versions, read them, move aliases, lineage, diff, retention, gc."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from stemma.server.deps import Store, artifact_ref, rule, run_ref
from stemma.wire.filters import from_query_param
from stemma.wire.manifest import Manifest
from stemma.wire.names import check_name
from stemma.wire.records import ArtifactCommit
from stemma.wire.schemas import (
    AliasesIn,
    AliasesOut,
    ArtifactCommitIn,
    ArtifactList,
    ArtifactOut,
    ArtifactRefIn,
    ArtifactRunsOut,
    ArtifactTypeList,
    ArtifactTypeOut,
    ArtifactUpdateIn,
    CollectionList,
    CollectionOut,
    CommitOut,
    CountOut,
    GcIn,
    JsonOut,
    RetentionIn,
    RetentionOut,
    RunOut,
)
from stemma.wire.values import from_storable

router = APIRouter(prefix="/api/v1", tags=["artifacts"])


def _project(entity: str, project: str) -> tuple[str, str]:
    return check_name(entity, "entity"), check_name(project, "project")


@router.post(
    "/artifacts/{entity}/{project}/{name}/versions",
    response_model=CommitOut,
    summary="Commit a version (refused unless every blob is stored)",
    openapi_extra=rule("write"),
)
def commit(entity: str, project: str, name: str, body: ArtifactCommitIn, store: Store) -> CommitOut:
    ent, proj = _project(entity, project)
    record, created = store.commit_artifact(
        ArtifactCommit(
            entity=ent,
            project=proj,
            name=check_name(name, "artifact"),
            type=body.type,
            description=body.description,
            metadata=from_storable(body.metadata),
            manifest=Manifest.from_json(body.manifest),
            aliases=body.aliases,
            ttl_seconds=body.ttl_seconds,
            run=body.run.ref() if body.run else None,
            creator=from_storable(body.creator),
        )
    )
    return CommitOut(artifact=ArtifactOut.from_record(record), created=created)


@router.get(
    "/artifacts/{entity}/{project}/{name}/versions",
    response_model=ArtifactList,
    openapi_extra=rule("read"),
)
def list_versions(
    entity: str, project: str, name: str, store: Store, include_deleted: bool = False
) -> ArtifactList:
    ent, proj = _project(entity, project)
    return ArtifactList(
        artifacts=[
            ArtifactOut.from_record(r)
            for r in store.list_artifact_versions(ent, proj, name, include_deleted)
        ]
    )


@router.get(
    "/artifacts/{entity}/{project}/{name}/alias-history",
    response_model=list[JsonOut],
    openapi_extra=rule("read"),
)
def alias_history(
    entity: str, project: str, name: str, store: Store, alias: str | None = None
) -> list[dict[str, Any]]:
    ent, proj = _project(entity, project)
    return store.alias_history(ent, proj, name, alias)


@router.get(
    "/artifacts/{entity}/{project}/{name}/{selector}",
    response_model=ArtifactOut,
    summary="One version by vN, alias or `latest`; `at` reads the alias history",
    openapi_extra=rule("read"),
)
def get_artifact(
    entity: str,
    project: str,
    name: str,
    selector: str,
    store: Store,
    at: dt.datetime | None = None,
    manifest: bool = True,
) -> ArtifactOut:
    ent, proj = _project(entity, project)
    if at is not None and at.tzinfo is None:
        at = at.replace(tzinfo=dt.UTC)
    return ArtifactOut.from_record(store.get_artifact(ent, proj, name, selector, at, manifest))


@router.patch(
    "/artifacts/{entity}/{project}/{name}/{version}",
    response_model=ArtifactOut,
    openapi_extra=rule("write"),
)
def update(
    entity: str,
    project: str,
    name: str,
    version: str,
    body: ArtifactUpdateIn,
    store: Store,
) -> ArtifactOut:
    return ArtifactOut.from_record(
        store.update_artifact(artifact_ref(entity, project, name, version), body.changes())
    )


@router.delete(
    "/artifacts/{entity}/{project}/{name}/{version}", status_code=204, openapi_extra=rule("admin")
)
def delete(
    entity: str,
    project: str,
    name: str,
    version: str,
    store: Store,
    delete_aliases: bool = False,
) -> Response:
    store.delete_artifact(artifact_ref(entity, project, name, version), delete_aliases)
    return Response(status_code=204)


@router.get(
    "/artifacts/{entity}/{project}/{name}/{version}/runs",
    response_model=ArtifactRunsOut,
    openapi_extra=rule("read"),
)
def artifact_runs(
    entity: str, project: str, name: str, version: str, store: Store
) -> ArtifactRunsOut:
    logged, used = store.artifact_runs(artifact_ref(entity, project, name, version))
    return ArtifactRunsOut(
        logged_by=RunOut.from_record(logged) if logged else None,
        used_by=[RunOut.from_record(r) for r in used],
    )


@router.get(
    "/artifacts/{entity}/{project}/{name}/{version}/lineage",
    response_model=JsonOut,
    openapi_extra=rule("read"),
)
def lineage(
    entity: str,
    project: str,
    name: str,
    version: str,
    store: Store,
    depth: Annotated[int, Query(ge=0, le=50)] = 2,
    direction: str = "both",
) -> dict[str, Any]:
    return store.artifact_lineage(artifact_ref(entity, project, name, version), depth, direction)


@router.post("/artifact-diff", response_model=JsonOut, openapi_extra=rule("read"))
def diff(a: ArtifactRefIn, b: ArtifactRefIn, store: Store, contents: bool = True) -> dict[str, Any]:
    from stemma.wire.records import ArtifactRef

    return store.artifact_diff(
        ArtifactRef(a.entity, a.project, a.name, a.version),
        ArtifactRef(b.entity, b.project, b.name, b.version),
        contents,
    )


@router.post(
    "/runs/{entity}/{project}/{run_id}/used",
    status_code=204,
    summary="Record that a run used a version (a lineage input edge)",
    openapi_extra=rule("write"),
)
def use(entity: str, project: str, run_id: str, body: ArtifactRefIn, store: Store) -> Response:
    from stemma.wire.records import ArtifactRef

    store.use_artifact(
        run_ref(entity, project, run_id),
        ArtifactRef(body.entity, body.project, body.name, body.version),
    )
    return Response(status_code=204)


@router.get(
    "/runs/{entity}/{project}/{run_id}/artifacts",
    response_model=ArtifactList,
    openapi_extra=rule("read"),
)
def run_artifacts(
    entity: str, project: str, run_id: str, store: Store, direction: str = "output"
) -> ArtifactList:
    if direction not in ("input", "output"):
        from stemma.errors import UsageError

        raise UsageError("direction must be input or output")
    return ArtifactList(
        artifacts=[
            ArtifactOut.from_record(r)
            for r in store.run_artifacts(run_ref(entity, project, run_id), direction)
        ]
    )


@router.get(
    "/projects/{entity}/{project}/artifacts",
    response_model=CollectionList,
    openapi_extra=rule("read"),
)
def collections(entity: str, project: str, store: Store, type: str | None = None) -> CollectionList:
    ent, proj = _project(entity, project)
    return CollectionList(
        collections=[CollectionOut(**c) for c in store.list_artifact_collections(ent, proj, type)]
    )


@router.get(
    "/projects/{entity}/{project}/artifact-versions",
    response_model=ArtifactList,
    summary="A page of a project's versions matching a filter (a JSON MongoDB-style query)",
    openapi_extra=rule("read"),
)
def query_versions(
    entity: str,
    project: str,
    store: Store,
    type: str | None = None,
    name: str | None = None,
    filters: str | None = None,
    order: str = "-created_at",
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    include_deleted: bool = False,
) -> ArtifactList:
    ent, proj = _project(entity, project)
    records = store.query_artifact_versions(
        ent,
        proj,
        type_=type,
        name=name,
        filters=from_query_param(filters),
        order=order,
        offset=offset,
        limit=limit,
        include_deleted=include_deleted,
    )
    return ArtifactList(artifacts=[ArtifactOut.from_record(r) for r in records])


@router.get(
    "/projects/{entity}/{project}/artifact-versions/count",
    response_model=CountOut,
    openapi_extra=rule("read"),
)
def count_versions(
    entity: str,
    project: str,
    store: Store,
    type: str | None = None,
    name: str | None = None,
    filters: str | None = None,
    include_deleted: bool = False,
) -> CountOut:
    ent, proj = _project(entity, project)
    return CountOut(
        count=store.count_artifact_versions(
            ent,
            proj,
            type_=type,
            name=name,
            filters=from_query_param(filters),
            include_deleted=include_deleted,
        )
    )


@router.get(
    "/projects/{entity}/{project}/artifact-types",
    response_model=ArtifactTypeList,
    openapi_extra=rule("read"),
)
def artifact_types(entity: str, project: str, store: Store) -> ArtifactTypeList:
    return ArtifactTypeList(
        types=[ArtifactTypeOut(**t) for t in store.artifact_types(*_project(entity, project))]
    )


@router.get(
    "/projects/{entity}/{project}/protected-aliases",
    response_model=AliasesOut,
    openapi_extra=rule("read"),
)
def get_protected(entity: str, project: str, store: Store) -> AliasesOut:
    return AliasesOut(aliases=store.get_protected_aliases(*_project(entity, project)))


@router.put(
    "/projects/{entity}/{project}/protected-aliases",
    response_model=AliasesOut,
    openapi_extra=rule("admin"),
)
def set_protected(entity: str, project: str, body: AliasesIn, store: Store) -> AliasesOut:
    ent, proj = _project(entity, project)
    store.set_protected_aliases(ent, proj, body.aliases)
    return AliasesOut(aliases=store.get_protected_aliases(ent, proj))


@router.get(
    "/projects/{entity}/{project}/retention",
    response_model=RetentionOut,
    openapi_extra=rule("read"),
)
def get_retention(entity: str, project: str, store: Store) -> RetentionOut:
    return RetentionOut(policies=store.get_retention(*_project(entity, project)))


@router.put(
    "/projects/{entity}/{project}/retention",
    response_model=RetentionOut,
    openapi_extra=rule("admin"),
)
def set_retention(entity: str, project: str, body: RetentionIn, store: Store) -> RetentionOut:
    ent, proj = _project(entity, project)
    store.set_retention(
        ent, proj, body.name, body.keep_last, body.delete_unaliased_older_than, body.default_ttl
    )
    return RetentionOut(policies=store.get_retention(ent, proj))


@router.post(
    "/admin/gc", response_model=JsonOut, tags=["admin"], openapi_extra=rule("instance-admin")
)
def gc(body: GcIn, store: Store) -> dict[str, Any]:
    return store.gc(body.dry_run, body.grace_seconds, body.repack_below)


@router.get(
    "/storage", response_model=list[JsonOut], tags=["admin"], openapi_extra=rule("authenticated")
)
def storage(
    store: Store, entity: str | None = None, project: str | None = None
) -> list[dict[str, Any]]:
    return store.storage_stats(entity, project)

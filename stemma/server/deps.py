"""Request dependencies: the store, and who is asking."""

from __future__ import annotations

import dataclasses

from fastapi import Request

from stemma.backend.embedded import EmbeddedBackend
from stemma.wire.names import check_name, check_run_id
from stemma.wire.records import ArtifactRef, RunRef


@dataclasses.dataclass(frozen=True, slots=True)
class Actor:
    """Who is making a request. In local mode (loopback, no users) the local user."""

    name: str
    kind: str = "user"  # user | service_account
    is_admin: bool = True


def get_store(request: Request) -> EmbeddedBackend:
    return request.app.state.store


def current_actor(request: Request) -> Actor:
    """Every route depends on this; access control hangs off the actor it returns."""
    return request.app.state.local_actor


def run_ref(entity: str, project: str, run_id: str) -> RunRef:
    return RunRef(
        check_name(entity, "entity"), check_name(project, "project"), check_run_id(run_id)
    )


def artifact_ref(entity: str, project: str, name: str, version: str) -> ArtifactRef:
    from stemma.errors import UsageError

    if not version.startswith("v") or not version[1:].isdigit():
        raise UsageError(f"expected a version such as v3, got {version!r}", version=version)
    return ArtifactRef(
        check_name(entity, "entity"),
        check_name(project, "project"),
        check_name(name, "artifact"),
        int(version[1:]),
    )

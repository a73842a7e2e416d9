"""Request dependencies: who is asking, the store acting as them, and path parsing.

Routes never see the bare store: :func:`get_store` hands them the store bound to the
authenticated principal, so every service call a route makes is checked for that
principal. Each route also declares its access rule (:func:`rule`), which the
authorization-matrix test reads from the route table.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request

from stemma.backend.embedded import EmbeddedBackend
from stemma.server.auth import authenticate
from stemma.service.access import Principal
from stemma.wire.names import check_name, check_run_id
from stemma.wire.records import ArtifactRef, RunRef

# The access rules a route can declare, weakest first:
#   public          no credentials needed
#   authenticated   any signed-in principal (answers only about itself or public facts)
#   read            read access to the project or team in the path
#   write           member rights there
#   admin           team-admin rights there
#   instance-admin  instance administrators only
RULES = ("public", "authenticated", "read", "write", "admin", "instance-admin")


def rule(name: str, **extra: Any) -> dict[str, Any]:
    """``openapi_extra`` declaring a route's access rule (see RULES)."""
    if name not in RULES:
        raise ValueError(f"unknown access rule {name!r}")
    return {"x-stemma-access": name, **extra}


def current_actor(request: Request) -> Principal:
    """The authenticated principal (401 otherwise); cached for the request."""
    return authenticate(request)


Who = Annotated[Principal, Depends(current_actor)]


def get_store(request: Request, who: Who) -> EmbeddedBackend:
    """The store, acting as the caller."""
    store: EmbeddedBackend = request.app.state.store
    return store.as_principal(who, getattr(request.state, "home", None))


Store = Annotated[EmbeddedBackend, Depends(get_store)]


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

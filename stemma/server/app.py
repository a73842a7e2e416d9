"""``create_app``: the FastAPI application over one store (database + blob store).

The server keeps no state of its own between requests: several replicas over one
PostgreSQL database and one bucket behave as one.
"""

from __future__ import annotations

from fastapi import FastAPI

from stemma import __version__
from stemma.backend.embedded import EmbeddedBackend
from stemma.sdk.capture import current_user
from stemma.server import errors, web
from stemma.server.auth import AuthState
from stemma.server.config import ServerSettings
from stemma.server.deps import Store, rule
from stemma.server.limits import BodyLimitMiddleware
from stemma.server.routes import (
    access,
    artifacts,
    blobs,
    chunks,
    media,
    reports,
    runs,
    webhooks,
)
from stemma.server.webhook_worker import lifespan
from stemma.ui import views
from stemma.ui.static_files import mount_static
from stemma.wire.schemas import ErrorOut, WhoAmIOut

_ERRORS = {status: {"model": ErrorOut} for status in (400, 401, 403, 404, 409, 413, 429, 503)}


def create_app(settings: ServerSettings | None = None) -> FastAPI:
    settings = settings or ServerSettings.from_env()
    store = EmbeddedBackend(settings.store_settings())
    app = FastAPI(
        title="Stemma",
        version=__version__,
        description="Experiment runs, versioned artifacts with lineage, and reports.",
        openapi_url="/api/v1/openapi.json",
        docs_url="/api/v1/docs",
        redoc_url=None,
        responses=_ERRORS,  # type: ignore[arg-type]
        lifespan=lifespan,  # the webhook worker
    )
    app.state.settings = settings
    app.state.store = store
    app.state.auth = AuthState(store, settings.bind_host, current_user())
    errors.install(app)
    web.install(app)
    app.add_middleware(
        BodyLimitMiddleware, limit=settings.max_body_bytes, blob_limit=settings.max_blob_bytes
    )
    app.include_router(runs.router)
    app.include_router(media.router)
    app.include_router(blobs.router)
    app.include_router(chunks.router)
    app.include_router(artifacts.router)
    app.include_router(access.router)
    app.include_router(reports.router)
    app.include_router(webhooks.router)
    app.include_router(web.router)
    for router in views.routers():
        app.include_router(router)
    mount_static(app)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/api/v1/whoami",
        response_model=WhoAmIOut,
        tags=["users"],
        openapi_extra=rule("authenticated"),
    )
    def whoami(store: Store) -> WhoAmIOut:
        me = store.whoami()
        return WhoAmIOut(mode="local" if store.who.is_local else "auth", **me)

    return app

"""Serving ``stemma/ui/static`` at ``/static``: our CSS and scripts, and the vendored
browser libraries that ``make`` copies from the pinned npm packages."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from stemma.ui.render import STATIC_DIR


class _Static(StaticFiles):
    """Static files with a short public cache (they change only with a release) and
    ``nosniff``, so a file is never run as something it is not."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response: Any = await super().get_response(path, scope)
        if response.status_code == 200:
            response.headers["cache-control"] = "public, max-age=600"
        response.headers["x-content-type-options"] = "nosniff"
        return response


def mount_static(app: FastAPI) -> None:
    app.mount("/static", _Static(directory=str(STATIC_DIR)), name="static")

"""Errors as JSON: one stable ``code`` per failure, one HTTP status per code.

The table below is the single place where codes meet statuses; the HTTP client maps
codes back to the same exception classes (:func:`stemma.errors.from_dict`), so
``except stemma.errors.NotFound`` works against either backend.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from stemma.errors import StemmaError
from stemma.ui.render import error_page, wants_html

log = logging.getLogger(__name__)

STATUS_BY_CODE: dict[str, int] = {
    "usage_error": 400,
    "invalid_name": 400,
    "invalid_value": 400,
    "invalid_request": 400,
    "spool_error": 400,
    "unauthenticated": 401,
    "forbidden": 403,
    "not_found": 404,
    "method_not_allowed": 405,
    "already_exists": 409,
    "conflict": 409,
    "payload_too_large": 413,
    "rate_limited": 429,
    "unsupported_media_type": 415,
    "store_error": 503,
    "error": 500,
    "internal_error": 500,
}

_HTTP_CODES = {
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


def error_response(
    code: str, message: str, context: dict[str, Any] | None = None, status: int | None = None
) -> JSONResponse:
    status = status or STATUS_BY_CODE.get(code, 500)
    headers = {}
    if status == 401:
        headers["www-authenticate"] = 'Bearer realm="stemma"'
    if status == 429:
        headers["retry-after"] = str((context or {}).get("retry_after", 60))
    return JSONResponse(
        {"code": code, "message": message, "context": context or {}},
        status_code=status,
        headers=headers,
    )


def install(app: FastAPI) -> None:
    """Register the handlers that turn every failure into the one error shape."""

    @app.exception_handler(StemmaError)
    async def stemma_error(request: Request, exc: StemmaError) -> Response:
        if wants_html(request):
            return error_page(request, STATUS_BY_CODE.get(exc.code, 500), exc.message)
        context = {
            k: v
            for k, v in exc.context.items()
            if isinstance(v, str | int | float | bool | list | type(None))
        }
        return error_response(exc.code, exc.message, context)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        problems = []
        for err in exc.errors()[:20]:
            where = ".".join(str(p) for p in err.get("loc", ()))
            problems.append(f"{where}: {err.get('msg')}")
        if wants_html(request):
            return error_page(request, 400, "; ".join(problems))
        return error_response(
            "invalid_request", "invalid request: " + "; ".join(problems), {"problems": problems}
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        code = _HTTP_CODES.get(
            exc.status_code, "invalid_request" if exc.status_code < 500 else "internal_error"
        )
        message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if wants_html(request):
            if exc.status_code == 404 and message == "Not Found":
                message = f"There is no page at {request.url.path}."
            return error_page(request, exc.status_code, message)
        if exc.status_code == 404 and message == "Not Found":
            message = "no such route: see /api/v1/openapi.json for the API"
        if exc.status_code == 405:
            message = "this method is not allowed on this route"
        return error_response(code, message, status=exc.status_code)

    @app.exception_handler(Exception)
    async def crash(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error: %s", exc)
        if wants_html(request):
            return error_page(request, 500, "Internal server error (logged on the server).")
        return error_response("internal_error", "internal server error (logged on the server)")

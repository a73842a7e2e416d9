"""Rendering pages: one Jinja2 environment (autoescaping on), one ``render`` function.

Every page goes through :func:`render`, so every page gets the same security headers
(a Content-Security-Policy that allows scripts only from our own origin, no framing),
the signed-in principal for the header, the session's CSRF token for forms and for the
``X-CSRF-Token`` header of script calls, and a one-shot flash message.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from fastapi import Request
from fastapi.responses import HTMLResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

HERE = Path(__file__).resolve().parent
STATIC_DIR = HERE / "static"
VENDOR_DIR = STATIC_DIR / "vendor"
FLASH_COOKIE = "stemma_flash"

# Scripts and styles come only from our origin (no inline script at all: pages pass data
# in <script type=application/json> blocks); nothing may frame a page (clickjacking);
# forms post only here. Logged HTML is shown only in <iframe sandbox> from /api paths that
# carry their own `Content-Security-Policy: sandbox`.
SECURITY_HEADERS = {
    "content-security-policy": "default-src 'self'; script-src 'self'; "
    "style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; frame-src 'self'; "
    "object-src 'none'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
}


def human_bytes(n: int | float | None) -> str:
    """1536 -> '1.5 KiB': sizes as people read them."""
    if n is None:
        return ""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def ago(when: dt.datetime | str | None, now: dt.datetime | None = None) -> str:
    """'3 min ago': how long since ``when`` (naive datetimes are UTC, as stored)."""
    if when is None:
        return ""
    if isinstance(when, str):
        try:
            when = dt.datetime.fromisoformat(when)
        except ValueError:
            return str(when)
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    seconds = ((now or dt.datetime.now(dt.UTC)) - when).total_seconds()
    if seconds < 0:
        return "just now"
    for size, unit in ((86400 * 365, "y"), (86400, "d"), (3600, "h"), (60, "min")):
        if seconds >= size:
            return f"{int(seconds // size)} {unit} ago"
    return f"{int(seconds)} s ago"


def isotime(when: dt.datetime | None) -> str:
    if when is None:
        return ""
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.isoformat(timespec="seconds")


def duration(seconds: float | None) -> str:
    """3725 -> '1h 2m 5s'."""
    if seconds is None or not math.isfinite(seconds):
        return ""
    s = int(seconds)
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    if h:
        return f"{h}h {m}m {sec}s"
    return f"{m}m {sec}s" if m else f"{sec}s"


def fmt(value: Any) -> str:
    """A config or summary value for a table cell: numbers short, the rest as text."""
    if isinstance(value, bool) or value is None:
        return "" if value is None else str(value).lower()
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:.6g}"
    if isinstance(value, dict) and "$float" in value:
        return str(value["$float"])
    if isinstance(value, dict) and "_type" in value:
        return f"[{value['_type']}]"
    return str(value)


def urlpart(value: Any) -> str:
    """One path segment, percent-encoded (names are checked, but never trust that)."""
    return quote(str(value), safe="")


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(HERE / "templates")),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        bytes=human_bytes, ago=ago, isotime=isotime, duration=duration, fmt=fmt, u=urlpart
    )
    return env


ENV = _environment()


def context(request: Request) -> dict[str, Any]:
    """What every template may use: who is signed in, how, their CSRF token, a flash."""
    return {
        "request": request,
        "who": getattr(request.state, "principal", None),
        "auth_kind": getattr(request.state, "auth_kind", None),
        "csrf": getattr(request.state, "csrf", None) or "",
        "flash": unquote(request.cookies.get(FLASH_COOKIE) or ""),
        "vendor_ready": (VENDOR_DIR / "uPlot.iife.min.js").exists(),
    }


def render(
    request: Request,
    template: str,
    title: str,
    *,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
    **values: Any,
) -> HTMLResponse:
    """The page ``template`` with ``values``; ``title`` goes into ``<title>`` (escaped)."""
    html = ENV.get_template(template).render(**context(request), title=title, **values)
    response = HTMLResponse(
        html, status_code=status, headers={**SECURITY_HEADERS, **(headers or {})}
    )
    if request.cookies.get(FLASH_COOKIE):
        response.delete_cookie(FLASH_COOKIE, path="/")
    return response


def html_fragment(markup: str) -> Markup:
    """Mark a string built by escaping code (e.g. the sign-in form) as safe HTML."""
    return Markup(markup)


def flash(response: Response, message: str) -> Response:
    """Show ``message`` once, on the next page rendered (after a form's redirect)."""
    response.set_cookie(FLASH_COOKIE, quote(message)[:1000], max_age=60, path="/", samesite="lax")
    return response


_HEADINGS = {
    400: "That request did not make sense",
    401: "Please sign in",
    403: "You do not have access to this",
    404: "Not found",
    405: "Not allowed",
    409: "Conflict",
    413: "Too large",
    429: "Slow down",
}
_HINTS = {
    403: "Ask an admin of the team that owns it to add you, or check that you are signed "
    "in as the right person.",
    404: "It may have been deleted or renamed, or the address may be mistyped. Projects "
    "you cannot read look the same as projects that do not exist.",
}


def error_page(request: Request, status: int, message: str) -> HTMLResponse:
    """The HTML answer to a failed page request: what went wrong and where to go next."""
    heading = _HEADINGS.get(status, "Something went wrong")
    return render(
        request,
        "error.html",
        heading,
        status=status,
        heading=heading,
        message=message,
        hint=_HINTS.get(status),
        headers={"cache-control": "no-store"},
    )


def wants_html(request: Request) -> bool:
    """A browser asking for a page (not the API, not a script's fetch)."""
    path = request.url.path
    if path.startswith(("/api/", "/static/")) or path == "/healthz":
        return False
    return "text/html" in request.headers.get("accept", "")

"""The web UI's sign-in, and what every HTML page shares.

* ``GET/POST /login``: email and password; a success sets the ``stemma_session`` cookie
  (HttpOnly, SameSite=Lax, Path=/, Secure over https: uvicorn honours X-Forwarded-Proto
  from trusted proxies) and redirects to ``next`` when it is a local path. The form is
  protected against login CSRF by a double-submit cookie (``stemma_login_csrf``), since
  there is no session yet to hold a token. Failures are counted and rate-limited by the
  store (429 with Retry-After).
* ``POST /logout``: ends the session (form field ``csrf_token`` required).
* :func:`page_router`: the router every HTML page lives on. Its one dependency,
  :func:`page_checks`, sends anonymous visitors to ``/login?next=...`` (303) instead of
  answering JSON 401, and refuses unsafe requests (POST, PUT, PATCH, DELETE) made with
  the session cookie unless the form carries the session's ``csrf_token``
  (:func:`csrf_field` writes it into a form). A page cannot forget either check.
* :func:`page`: the HTML document around a page's body, with who is signed in and a
  sign-out button.

API routes (``/api/...``) are untouched: they answer JSON, 401 without credentials.
"""

from __future__ import annotations

import hmac
import html
import secrets
from collections.abc import Mapping
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from stemma.errors import PermissionDenied, RateLimited, Unauthenticated
from stemma.server.auth import SAFE_METHODS, SESSION_COOKIE, authenticate, client_address
from stemma.service.access import Principal
from stemma.service.identity import SESSION_LIFETIME
from stemma.ui.render import html_fragment, render

LOGIN_CSRF_COOKIE = "stemma_login_csrf"
LOGIN_CSRF_LIFETIME = 60 * 60  # seconds a sign-in form stays usable
CSRF_FIELD = "csrf_token"

router = APIRouter(include_in_schema=False)


class LoginRequired(Unauthenticated):
    """An HTML page asked for without credentials: answered by a redirect to /login."""


class PageRefused(PermissionDenied):
    """An HTML page request refused (a form without its CSRF token): a 403 page."""


# ------------------------------------------------------------------ page helpers


def page(
    request: Request,
    title: str,
    body: str,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
) -> HTMLResponse:
    """A page around ``body`` (HTML the caller has escaped); ``title`` is escaped here."""
    return render(
        request,
        "fragment.html",
        title,
        status=status,
        headers=headers,
        body=html_fragment(body),
    )


def csrf_field(request: Request) -> str:
    """The hidden input that every form of a page signed in by session must carry."""
    token = getattr(request.state, "csrf", None)
    if not token:
        return ""
    return f"<input type=hidden name={CSRF_FIELD} value='{html.escape(token)}'>"


def _same_token(sent: object, expected: str | None) -> bool:
    if not isinstance(sent, str) or not sent or not expected:
        return False
    return hmac.compare_digest(sent.encode(), expected.encode())


def safe_next(target: object) -> str:
    """``target`` if it is a path on this site, else ``/`` (no open redirects).

    Browsers drop tabs and newlines inside URLs and read ``\\`` as ``/``, so
    ``/\\tevil.example`` would become ``//evil.example``: any control character,
    space or backslash makes the target unsafe.
    """
    if not isinstance(target, str) or not target.startswith("/") or len(target) > 2000:
        return "/"
    if target.startswith("//") or any(c <= " " or c in "\\\x7f" for c in target):
        return "/"
    return target


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


# ------------------------------------------------------------------ the page router


def page_guard(request: Request) -> Principal:
    """The signed-in principal, or :class:`LoginRequired` (a redirect to /login).

    :func:`page_checks` builds on it; the form's token is checked there (reading the
    form is async).
    """
    try:
        return authenticate(request)
    except Unauthenticated as exc:
        raise LoginRequired(exc.message) from None


async def page_checks(
    request: Request, who: Annotated[Principal, Depends(page_guard)]
) -> Principal:
    """Signed in (:func:`page_guard`), and an unsafe request made with the session cookie
    carries the session's token in the form field ``csrf_token`` (else a 403 page)."""
    if request.method in SAFE_METHODS:
        return who
    kind = getattr(request.state, "auth_kind", None)
    if kind == "session":
        form = await request.form()
        if not _same_token(form.get(CSRF_FIELD), getattr(request.state, "csrf", None)):
            raise PageRefused("this form has expired or did not come from Stemma: reload it")
    elif kind == "local" and request.headers.get("sec-fetch-site") in ("cross-site", "same-site"):
        # Local mode has no session to hold a token: refuse forms posted by other sites.
        raise PageRefused("forms may only be posted from Stemma's own pages")
    return who


def page_router(**kwargs: Any) -> APIRouter:
    """The router for HTML pages: off the API schema, behind :func:`page_checks`."""
    deps = [Depends(page_checks), *kwargs.pop("dependencies", ())]
    return APIRouter(include_in_schema=False, dependencies=deps, **kwargs)


def install(app: FastAPI) -> None:
    """Register the answers of pages: a redirect to sign in, and a 403 page."""

    @app.exception_handler(LoginRequired)
    async def login_required(request: Request, _exc: LoginRequired) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(
            f"/login?next={quote(safe_next(target), safe='/')}",
            status_code=303,
            headers={"cache-control": "no-store"},
        )

    @app.exception_handler(PageRefused)
    async def refused(request: Request, exc: PageRefused) -> Response:
        return page(
            request,
            "Refused",
            f"<h1>Refused</h1><p class=error>{html.escape(exc.message)}</p>"
            "<p><a href='/'>Back to Stemma</a></p>",
            status=403,
        )


# ------------------------------------------------------------------ sign in and out


def _login_form(
    request: Request,
    token: str,
    next_path: str,
    *,
    email: str = "",
    error: str | None = None,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
) -> HTMLResponse:
    esc = html.escape
    message = f"<p class=error role=alert>{esc(error)}</p>" if error else ""
    body = (
        "<section class=signin><h1>Sign in to Stemma</h1>"
        f"{message}<form method=post action='/login'>"
        f"<input type=hidden name={CSRF_FIELD} value='{esc(token)}'>"
        f"<input type=hidden name=next value='{esc(next_path)}'>"
        "<label for=email>Email</label>"
        f"<input id=email name=email type=email value='{esc(email)}' required autofocus "
        "autocomplete=username>"
        "<label for=password>Password</label>"
        "<input id=password name=password type=password required "
        "autocomplete=current-password>"
        "<button type=submit>Sign in</button></form></section>"
    )
    response = page(
        request,
        "Sign in",
        body,
        status=status,
        headers={"cache-control": "no-store", **(headers or {})},
    )
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        token,
        max_age=LOGIN_CSRF_LIFETIME,
        path="/login",
        httponly=True,
        samesite="strict",
        secure=_secure(request),
    )
    return response


def _signed_in(request: Request) -> bool:
    token = request.cookies.get(SESSION_COOKIE)
    return bool(token) and request.app.state.store.session(token) is not None


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: str = "/") -> Response:
    if request.app.state.auth.local_mode() or _signed_in(request):
        return RedirectResponse(safe_next(next), status_code=303)
    # Reuse the cookie's token when there is one: two open sign-in tabs both work.
    token = request.cookies.get(LOGIN_CSRF_COOKIE) or ""
    if not 20 <= len(token) <= 64:
        token = secrets.token_urlsafe(32)
    return _login_form(request, token, safe_next(next))


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request) -> Response:
    form = await request.form()
    next_path = safe_next(form.get("next"))
    if await run_in_threadpool(request.app.state.auth.local_mode):
        return RedirectResponse(next_path, status_code=303)
    email = form.get("email")
    password = form.get("password")
    email = email if isinstance(email, str) else ""
    password = password if isinstance(password, str) else ""
    fresh = secrets.token_urlsafe(32)
    if not _same_token(form.get(CSRF_FIELD), request.cookies.get(LOGIN_CSRF_COOKIE)):
        return _login_form(
            request,
            fresh,
            next_path,
            email=email,
            error="This sign-in form has expired or did not come from Stemma: try again.",
            status=403,
        )
    store = request.app.state.store
    try:
        # Off the event loop: the password hash is slow on purpose.
        token, _csrf, _who = await run_in_threadpool(
            store.login, email, password, client_address(request)
        )
    except RateLimited as exc:
        retry = str(exc.context.get("retry_after", 60))
        return _login_form(
            request,
            fresh,
            next_path,
            email=email,
            error=exc.message,
            status=429,
            headers={"retry-after": retry},
        )
    except Unauthenticated as exc:
        return _login_form(request, fresh, next_path, email=email, error=exc.message, status=401)
    response = RedirectResponse(next_path, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int(SESSION_LIFETIME.total_seconds()),
        path="/",
        httponly=True,
        samesite="lax",
        secure=_secure(request),
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return response


@router.post("/logout", response_class=HTMLResponse)
async def logout(request: Request) -> Response:
    store = request.app.state.store
    token = request.cookies.get(SESSION_COOKIE)
    found = await run_in_threadpool(store.session, token, None) if token else None
    if found is not None:
        form = await request.form()
        if not _same_token(form.get(CSRF_FIELD), found[1]):
            raise PageRefused("this sign-out form has expired or did not come from Stemma")
        await run_in_threadpool(store.logout, token)
    # No live session (expired, or already signed out): nothing to end but the cookie.
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(
        SESSION_COOKIE, path="/", httponly=True, samesite="lax", secure=_secure(request)
    )
    return response

"""Who is asking: API keys (SDK, CLI), session cookies (web UI), or local mode.

* ``Authorization: Bearer stm_...`` (or HTTP Basic with the key as the password, which
  is how W&B clients send theirs) authenticates API calls. Keys are checked on every
  request, with no cache, so a revoked key stops working on the next request.
* A session cookie (``stemma_session``: HttpOnly, SameSite=Lax, Secure over https)
  authenticates the browser; a state-changing API call made with it must carry the
  session's CSRF token in ``X-CSRF-Token`` (forms carry it as ``csrf_token``).
* Local mode: a server bound to loopback over a store with no accounts serves the
  local user with every right and no login. The first account created ends it. A
  server bound elsewhere never runs in local mode.
"""

from __future__ import annotations

import base64
import hmac
import ipaddress
from typing import Any

from fastapi import Request

from stemma.errors import PermissionDenied, Unauthenticated
from stemma.service import identity
from stemma.service.access import Principal
from stemma.storage.database import read_tx, write_tx

SESSION_COOKIE = "stemma_session"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class AuthState:
    """Whether the server runs in local mode: only when bound to loopback, and only while
    the store has no accounts (asked on every anonymous request: one indexed lookup, and
    the first account ends local mode at once on every replica)."""

    def __init__(self, store: Any, bind_host: str | None, local_user: str) -> None:
        self.store = store
        self.local_allowed = is_loopback(bind_host)
        self.local_user = local_user

    def local_mode(self) -> bool:
        if not self.local_allowed:
            return False
        with read_tx(self.store.engine) as conn:
            return not identity.has_users(conn)


def client_address(request: Request) -> str | None:
    return request.client.host if request.client else None


def _key_from_header(value: str) -> str:
    scheme, _, cred = value.partition(" ")
    scheme = scheme.lower()
    cred = cred.strip()
    if scheme == "bearer":
        return cred
    if scheme == "basic":
        try:
            user_pass = base64.b64decode(cred, validate=True).decode()
        except Exception:
            return ""
        return user_pass.partition(":")[2]
    return ""


def authenticate(request: Request) -> Principal:
    """The principal behind a request, or :class:`Unauthenticated` (401)."""
    cached = getattr(request.state, "principal", None)
    if cached is not None:
        return cached
    app = request.app
    store = app.state.store
    source = client_address(request)
    header = request.headers.get("authorization")
    if header:
        with read_tx(store.engine) as conn:
            who, touch = identity.authenticate_key(conn, _key_from_header(header), source)
            home = identity.home_entity(conn, who)
        if touch is not None:
            with write_tx(store.engine) as conn:
                identity.touch_key(conn, touch)
        request.state.auth_kind = "key"
    else:
        who, home = _from_session(request, store, source)
    request.state.principal = who
    request.state.home = home
    return who


def _check_local_request(request: Request) -> None:
    """Local mode trusts whoever reaches loopback, so it must be loopback that is asked:
    a Host that is not a loopback name (DNS rebinding) and a browser's state-changing
    request sent by another site (cross-site request forgery) are refused."""
    host = (request.headers.get("host") or "").rsplit(":", 1)[0].strip("[]").lower()
    if host and not is_loopback(host):
        raise PermissionDenied(
            f"a local-mode server answers to localhost only, not to Host {host[:100]!r}"
        )
    if request.method not in SAFE_METHODS and request.headers.get("sec-fetch-site") in (
        "cross-site",
        "same-site",
    ):
        raise PermissionDenied("requests from other sites are refused in local mode")


def _from_session(request: Request, store: Any, source: str | None) -> tuple[Principal, str]:
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        with read_tx(store.engine) as conn:
            found = identity.session_principal(conn, token, source)
        if found is not None:
            who, csrf = found
            request.state.csrf = csrf
            request.state.auth_kind = "session"
            if request.method not in SAFE_METHODS and request.url.path.startswith("/api/"):
                sent = request.headers.get(CSRF_HEADER, "")
                if not hmac.compare_digest(sent.encode(), csrf.encode()):
                    raise PermissionDenied(
                        "missing or wrong CSRF token: send the session's token in X-CSRF-Token"
                    )
            return who, who.name
    state: AuthState = request.app.state.auth
    if state.local_mode():
        _check_local_request(request)
        request.state.auth_kind = "local"
        return Principal.local(state.local_user, source), state.local_user
    raise Unauthenticated(
        "authentication required: pass an API key (Authorization: Bearer stm_...; "
        "`stemma login`) or sign in at /login"
    )

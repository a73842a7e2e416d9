"""Signing in to the web UI: a real server, a browser-like client (httpx with cookies)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import Request

from stemma.backend.embedded import EmbeddedBackend
from tests.fixtures.accounts import make_user, open_store
from tests.fixtures.server import ServerProcess

pytestmark = pytest.mark.embedded_only

_TOKEN = re.compile(r"""name=["']?csrf_token["']? value=["']([^"']+)["']""")


@dataclass
class Site:
    url: str
    store: EmbeddedBackend
    ada: dict[str, Any]

    def browser(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, follow_redirects=False, timeout=30)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    """A server over a store with one account (so it requires signing in)."""
    db = os.environ.get("STEMMA_DATABASE_URL")
    store = open_store(tmp_path / "srv", db)
    ada = make_user(store, "ada@example.com")
    try:
        with ServerProcess(tmp_path / "srv", database_url=db) as srv:
            yield Site(srv.url, store, ada)
    finally:
        store.close()


def _cookies(resp: httpx.Response) -> dict[str, str]:
    """Set-Cookie headers by cookie name (the whole header, attributes included)."""
    return {h.split("=", 1)[0]: h for h in resp.headers.get_list("set-cookie")}


def _form_token(resp: httpx.Response) -> str:
    found = _TOKEN.search(resp.text)
    assert found, resp.text
    return found.group(1)


def _sign_in(
    client: httpx.Client, email: str, password: str, next_path: str = "/"
) -> httpx.Response:
    token = _form_token(client.get("/login"))
    data = {"csrf_token": token, "email": email, "password": password, "next": next_path}
    return client.post("/login", data=data)


def test_anonymous_pages_redirect_to_sign_in_and_the_api_answers_401(site: Site) -> None:
    with site.browser() as b:
        home = b.get("/")
        assert home.status_code == 303 and home.headers["location"] == "/login?next=/"
        deep = b.get("/p/ada/proj?x=1")
        assert deep.status_code == 303
        assert deep.headers["location"] == "/login?next=/p/ada/proj%3Fx%3D1"
        api = b.get("/api/v1/whoami")
        assert api.status_code == 401 and api.json()["code"] == "unauthenticated"
        form = b.get("/login", params={"next": "/p/ada/proj"})
        assert form.status_code == 200
        assert "<title>Sign in · Stemma</title>" in form.text
        assert "autocomplete=current-password" in form.text and "<label for=email>" in form.text
        assert "value='/p/ada/proj'" in form.text  # next travels in the form
        cookie = _cookies(form)["stemma_login_csrf"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/login" in cookie
        assert "Secure" not in cookie
        assert f"stemma_login_csrf={_form_token(form)};" in cookie
        assert form.headers["x-frame-options"] == "DENY"


def test_sign_in_refuses_bad_csrf_and_wrong_passwords(site: Site) -> None:
    with site.browser() as b:
        b.get("/login")
        creds = {"email": "ada@example.com", "password": site.ada["password"]}
        missing = b.post("/login", data=creds)
        assert missing.status_code == 403 and "stemma_session" not in _cookies(missing)
        wrong = b.post("/login", data={**creds, "csrf_token": "x" * 43})
        assert wrong.status_code == 403 and "stemma_session" not in _cookies(wrong)
        assert "expired or did not come from Stemma" in wrong.text
        bad = _sign_in(b, "<ada>@example.com", "not-the-password")
        assert bad.status_code == 401 and "stemma_session" not in _cookies(bad)
        assert "wrong email or password" in bad.text
        assert "&lt;ada&gt;@example.com" in bad.text and "<ada>" not in bad.text  # escaped
        assert b.get("/").status_code == 303  # still signed out


def test_sign_in_sets_the_session_cookie_and_shows_who(site: Site) -> None:
    with site.browser() as b:
        ok = _sign_in(b, "ada@example.com", site.ada["password"], "/p/ada/proj?x=1")
        assert ok.status_code == 303 and ok.headers["location"] == "/p/ada/proj?x=1"
        cookie = _cookies(ok)["stemma_session"]
        assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/;" in cookie
        assert "Max-Age=1209600" in cookie and "Secure" not in cookie
        home = b.get("/")
        assert home.status_code == 200 and "<h1>Projects</h1>" in home.text
        assert "Signed in as <b>ada</b>" in home.text and "Sign out" in home.text
        assert b.get("/api/v1/whoami").json()["user"] == "ada"
        assert b.get("/login").headers["location"] == "/"  # already signed in
    with site.browser() as b:
        evil = _sign_in(b, "ada@example.com", site.ada["password"], "//evil.example")
        assert evil.status_code == 303 and evil.headers["location"] == "/"
    with site.browser() as b:
        tricky = _sign_in(b, "ada@example.com", site.ada["password"], "/\t/evil.example")
        assert tricky.headers["location"] == "/"


def test_secure_cookies_behind_an_https_proxy(site: Site) -> None:
    https = {"x-forwarded-proto": "https"}
    with site.browser() as b:
        form = b.get("/login", headers=https)
        assert "; Secure" in _cookies(form)["stemma_login_csrf"]
        token = _form_token(form)
    with site.browser() as b:  # http.cookiejar keeps Secure cookies off http: send by hand
        creds = {"email": site.ada["email"], "password": site.ada["password"]}
        ok = b.post(
            "/login",
            data={"csrf_token": token, **creds},
            headers={**https, "cookie": f"stemma_login_csrf={token}"},
        )
        assert ok.status_code == 303
        cookie = _cookies(ok)["stemma_session"]
        assert "; Secure" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie


def test_session_api_calls_need_the_csrf_header_and_logout_ends_the_session(
    site: Site,
) -> None:
    with site.browser() as b:
        assert _sign_in(b, "ada@example.com", site.ada["password"]).status_code == 303
        session = b.cookies["stemma_session"]
        csrf = _form_token(b.get("/"))  # the sign-out form carries the session's token
        refused = b.post("/api/v1/teams", json={"name": "t1"})
        assert refused.status_code == 403 and refused.json()["code"] == "forbidden"
        wrong = b.post("/api/v1/teams", json={"name": "t1"}, headers={"x-csrf-token": "nope"})
        assert wrong.status_code == 403
        made = b.post("/api/v1/teams", json={"name": "t1"}, headers={"x-csrf-token": csrf})
        assert made.status_code == 201, made.text
        assert b.get("/api/v1/teams").status_code == 200  # reads need no token

        out = b.post("/logout")
        assert out.status_code == 403 and "Refused" in out.text
        out = b.post("/logout", data={"csrf_token": "x" * 32})
        assert out.status_code == 403
        assert b.get("/api/v1/whoami").status_code == 200  # still signed in
        out = b.post("/logout", data={"csrf_token": csrf})
        assert out.status_code == 303 and out.headers["location"] == "/login"
        assert "Max-Age=0" in _cookies(out)["stemma_session"]
        assert "stemma_session" not in b.cookies
        assert b.get("/").status_code == 303
    with httpx.Client(base_url=site.url, cookies={"stemma_session": session}) as old:
        assert old.get("/api/v1/whoami").status_code == 401
        assert old.get("/").headers["location"] == "/login?next=/"


def test_failed_sign_ins_are_rate_limited(site: Site) -> None:
    with site.browser() as b:
        for _ in range(5):
            assert _sign_in(b, "ada@example.com", "guess").status_code == 401
        sixth = _sign_in(b, "ada@example.com", "guess")
        assert sixth.status_code == 429 and int(sixth.headers["retry-after"]) > 0
        assert "too many failed sign-ins" in sixth.text
        right = _sign_in(b, "ada@example.com", site.ada["password"])
        assert right.status_code == 429 and "stemma_session" not in _cookies(right)


def test_service_accounts_keys_and_disabled_users_cannot_sign_in(site: Site) -> None:
    admin = make_user(site.store, "root@example.com", admin=True)
    _s, _c, root = site.store.login(admin["email"], admin["password"])
    as_root = site.store.as_principal(root)
    as_root.create_team("ci-team")
    _info, sa_key = as_root.create_service_account("ci-team", "ci-prod")
    bob = make_user(site.store, "bob@example.com")
    with site.browser() as b:
        sa = _sign_in(b, "ci-prod@example.com", sa_key)
        assert sa.status_code == 401 and "service accounts cannot sign in" in sa.text
        pasted = _sign_in(b, "ada@example.com", site.ada["key"])
        assert pasted.status_code == 401 and "that is an API key" in pasted.text

        assert _sign_in(b, "bob@example.com", bob["password"]).status_code == 303
        assert b.get("/").status_code == 200
        site.store.set_user_disabled(bob["username"], True)
        assert b.get("/").status_code == 303  # the live session stops working at once
    with site.browser() as b:
        off = _sign_in(b, "bob@example.com", bob["password"])
        assert off.status_code == 401 and "wrong email or password" in off.text


def test_page_forms_need_the_session_csrf_token(store_dir: Path) -> None:
    """Every page on page_router checks the form token of session-signed requests."""
    from fastapi.testclient import TestClient

    from stemma.server.app import create_app
    from stemma.server.config import ServerSettings
    from stemma.server.web import csrf_field, page, page_router

    store = open_store(store_dir, os.environ.get("STEMMA_DATABASE_URL"))
    ada = make_user(store, "ada@example.com")
    store.close()
    app = create_app(ServerSettings.from_env(bind_host="127.0.0.1"))
    extra = page_router()

    @extra.get("/form")
    def form(request: Request) -> Any:
        return page(request, "Form", f"<form method=post>{csrf_field(request)}</form>")

    @extra.post("/form")
    def submit(request: Request) -> Any:
        return page(request, "Done", "<p>done</p>")

    app.include_router(extra)
    with TestClient(app, follow_redirects=False) as b:
        assert b.post("/form").status_code == 303  # anonymous: off to sign in
        token = _form_token(b.get("/login"))
        creds = {"email": ada["email"], "password": ada["password"], "csrf_token": token}
        assert b.post("/login", data=creds).status_code == 303
        csrf = _form_token(b.get("/form"))
        assert b.post("/form").status_code == 403
        assert b.post("/form", data={"csrf_token": "nope"}).status_code == 403
        assert b.post("/form", data={"csrf_token": csrf}).text.count("done") == 1
        multipart = b.post("/form", data={"csrf_token": csrf}, files={"f": b"x"})
        assert multipart.status_code == 200
        key = {"authorization": f"Bearer {ada['key']}"}
        with TestClient(app, follow_redirects=False) as api:  # no cookie: no CSRF risk
            assert api.post("/form", headers=key).status_code == 200


def test_local_mode_needs_no_sign_in(tmp_path: Path) -> None:
    db = os.environ.get("STEMMA_DATABASE_URL")
    with (
        ServerProcess(tmp_path / "srv", database_url=db) as srv,
        httpx.Client(base_url=srv.url, follow_redirects=False) as b,
    ):
        login = b.get("/login", params={"next": "/p/x/y"})
        assert login.status_code == 303 and login.headers["location"] == "/p/x/y"
        home = b.get("/")
        assert home.status_code == 200 and "<h1>Projects</h1>" in home.text
        assert "Local mode" in home.text and "Sign out" not in home.text
        posted = b.post("/login", data={"email": "a@example.com", "password": "x"})
        assert posted.status_code == 303 and posted.headers["location"] == "/"

"""The shell every page shares: sign-in, the projects list, error pages, static files."""

from __future__ import annotations

import re

import httpx
import pytest

import stemma

pytestmark = pytest.mark.sqlite_only


def test_sign_in_and_see_only_readable_projects(ui, signed_in, shot) -> None:
    alice = ui.user("alice-home@example.com")
    bob = ui.user("bob-home@example.com")
    with ui.sdk(alice):
        stemma.init(project="vision", name="first").finish()
    with ui.sdk(bob):
        stemma.init(project="secret-nlp", name="hidden").finish()

    page = signed_in(alice)
    assert page.title() == "Projects · Stemma"
    rows = page.locator("main table tbody tr")
    texts = [rows.nth(i).inner_text() for i in range(rows.count())]
    assert any("vision" in t for t in texts)
    assert not any("secret-nlp" in t for t in texts), "bob's private project shown to alice"
    assert page.errors == []
    shot(page, "home")


def test_unknown_page_is_a_helpful_404(ui, signed_in, shot) -> None:
    page = signed_in()
    response = page.goto("/no/such/page")
    assert response.status == 404
    assert page.title() == "Not found · Stemma"
    assert page.get_by_role("link", name="Back to your projects").is_visible()
    shot(page, "error-404")


def test_anonymous_visitor_is_sent_to_sign_in(ui, browser) -> None:
    context = browser.new_context(base_url=ui.url)
    try:
        page = context.new_page()
        page.goto("/")
        assert re.search(r"/login\?next=/$", page.url)
        assert page.title() == "Sign in · Stemma"
    finally:
        context.close()


def test_pages_forbid_inline_script_and_framing(ui) -> None:
    r = httpx.get(f"{ui.url}/login")
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert r.headers["x-frame-options"] == "DENY"
    assert "<script>" not in r.text  # no inline script anywhere
    css = httpx.get(f"{ui.url}/static/stemma.css")
    assert css.status_code == 200 and "prefers-color-scheme: dark" in css.text
    vendor = httpx.get(f"{ui.url}/static/vendor/uPlot.iife.min.js")
    assert vendor.status_code == 200, "run `make ui` to fetch the pinned chart library"

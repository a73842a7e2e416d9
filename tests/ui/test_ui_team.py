"""Your settings and a team's page: keys shown once, members and roles, service accounts,
read-only views for members, and forms that refuse whoever may not use them."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.ui.conftest import sign_in

pytestmark = pytest.mark.sqlite_only

XSS_IMG = "<img src=x onerror=window.__xss=1>"
XSS_SCRIPT = "<script>window.__xss=1</script>"


def whoami(ui: Any, key: str) -> int:
    r = httpx.get(f"{ui.url}/api/v1/whoami", headers={"authorization": f"Bearer {key}"})
    return r.status_code


def accept_dialogs(page: Any) -> None:
    """Forms with data-confirm ask first: say yes."""
    page.on("dialog", lambda dialog: dialog.accept())


def secret_on_page(page: Any) -> str:
    value = page.locator("input.secret-value").first.input_value()
    assert value.startswith("stm_")
    return value


def test_admin_builds_a_team(ui, signed_in, shot) -> None:
    bob = ui.user("bob-team@example.com")
    page = signed_in()
    accept_dialogs(page)

    # A team, created on the settings page.
    page.goto("/settings")
    assert page.title() == "Settings · Stemma"
    page.fill("#team-name", "ui-team")
    page.click("button:text('Create team')")
    page.wait_for_url("**/teams/ui-team")
    assert "Team ui-team created" in page.locator(".flash").inner_text()
    assert page.locator("h1").inner_text() == "Team ui-team"

    # Bob added as a viewer, then made a member.
    page.fill("#member-email", bob["email"])
    page.select_option("#member-role", "viewer")
    page.click("form[aria-label='Add a member'] button[type=submit]")
    page.wait_for_load_state()
    assert "added as viewer" in page.locator(".flash").inner_text()
    role = page.get_by_label(f"Role of {bob['username']}", exact=True)
    assert role.input_value() == "viewer"
    role.select_option("member")
    page.get_by_role("button", name=f"Save the role of {bob['username']}").click()
    page.wait_for_load_state()
    assert page.get_by_label(f"Role of {bob['username']}", exact=True).input_value() == "member"
    roles = {m["username"]: m["role"] for m in ui.store.team_members("ui-team")["members"]}
    assert roles == {"admin": "admin", bob["username"]: "member"}

    # Someone without an account gets a pending invite.
    page.fill("#member-email", "carol-invite@example.com")
    page.select_option("#member-role", "viewer")
    page.click("form[aria-label='Add a member'] button[type=submit]")
    page.wait_for_load_state()
    assert "invited as viewer" in page.locator(".flash").inner_text()
    assert "carol-invite@example.com" in page.locator("table.invites").inner_text()

    # A service account: its key is shown once, and reloading does not show it again.
    page.fill("#sa-name", "ci-prod")
    page.select_option("#sa-role", "member")
    page.click("button:text('Create service account')")
    page.wait_for_load_state()
    assert page.title() == "New service account · Stemma"
    first_key = secret_on_page(page)
    page.get_by_role("button", name="Copy").click()
    page.wait_for_function("document.querySelector('button[data-copy]').textContent !== 'Copy'")
    shot(page, "team-secret")
    assert whoami(ui, first_key) == 200
    page.reload()
    assert page.url.endswith("/teams/ui-team")
    assert first_key not in page.content()
    assert page.locator("input.secret-value").count() == 0

    # A second key, named with markup: it renders as text; revoked, it stops working.
    page.fill("#sa-key-1", XSS_IMG + XSS_SCRIPT)
    page.get_by_role("button", name="Create a key for ci-prod@ui-team").click()
    page.wait_for_load_state()
    second_key = secret_on_page(page)
    assert whoami(ui, second_key) == 200
    page.get_by_role("link", name="Back to team ui-team").click()
    page.wait_for_url("**/teams/ui-team")
    sa = page.locator("article.sa")
    assert XSS_IMG in sa.inner_text() and XSS_SCRIPT in sa.inner_text()
    assert page.evaluate("window.__xss") is None
    assert second_key not in page.content()
    prefix = second_key.split("_")[1]
    shot(page, "team-admin")
    page.get_by_role("button", name=f"Revoke key stm_{prefix}").click()
    page.wait_for_load_state()
    assert "revoked" in page.locator(".flash").inner_text()
    assert whoami(ui, second_key) == 401
    assert whoami(ui, first_key) == 200

    # The team's activity, for its admins.
    recent = page.locator("table.audit").inner_text()
    assert "key.revoke" in recent and "team.role" in recent and "service_account.create" in recent
    page.get_by_role("link", name="The team's whole audit log →").click()
    page.wait_for_url("**/teams/ui-team/audit")
    assert page.locator("h1").inner_text() == "Audit log of ui-team"
    assert page.locator("button:text('Verify chain')").count() == 0  # instance admins only
    entities = set(page.locator("table.audit tbody td:nth-child(5)").all_inner_texts())
    assert entities == {"ui-team"}
    assert page.errors == []


def test_your_keys_shown_once_and_revoked(ui, signed_in, shot) -> None:
    dana = ui.user("dana-keys@example.com")
    page = signed_in(dana)
    accept_dialogs(page)
    page.goto("/settings")
    page.fill("#key-name", "laptop " + XSS_SCRIPT)
    page.select_option("#key-expires", "30d")
    page.click("button:text('Create key')")
    page.wait_for_load_state()
    key = secret_on_page(page)
    assert "export STEMMA_API_KEY=" + key in page.locator("pre").inner_text()
    assert whoami(ui, key) == 200
    page.reload()
    assert page.url.endswith("/settings") and key not in page.content()
    prefix = key.split("_")[1]
    row = page.locator("table.keys tr", has_text=f"stm_{prefix}")
    assert XSS_SCRIPT in row.inner_text() and page.evaluate("window.__xss") is None
    assert row.locator("td").nth(4).inner_text() != "never"  # it expires
    shot(page, "settings")
    page.get_by_role("button", name=f"Revoke key stm_{prefix}").click()
    page.wait_for_load_state()
    assert "revoked" in page.locator("table.keys tr", has_text=f"stm_{prefix}").inner_text()
    assert whoami(ui, key) == 401
    # Not an admin: no users list, no administration links.
    assert page.locator("#admin-h").count() == 0
    assert page.errors == []


def test_member_sees_the_team_read_only(ui, signed_in, shot) -> None:
    ui.store.create_team("ui-readonly")
    ui.store.add_member("ui-readonly", ui.admin["email"], "admin")
    eve = ui.user("eve-member@example.com")
    ui.store.add_member("ui-readonly", eve["email"], "member")
    # A member whose display name is markup.
    mallory, _ = ui.store.create_user("mallory@example.com", display_name=XSS_IMG + XSS_SCRIPT)
    ui.store.add_member("ui-readonly", mallory["username"], "viewer")
    ui.store.create_service_account("ui-readonly", "nightly", "viewer")

    page = signed_in(eve)
    page.goto("/teams/ui-readonly")
    assert page.locator("main form").count() == 0, "a member was shown edit forms"
    members = page.locator("table.members").inner_text()
    assert XSS_IMG in members and XSS_SCRIPT in members
    assert page.evaluate("window.__xss") is None
    assert "nightly@ui-readonly" in page.locator("#sa-h + p + .table-wrap").inner_text()
    assert page.locator("table.audit").count() == 0  # the audit log is for admins
    shot(page, "team-member")

    # A forged form, with eve's own valid CSRF token, is refused and changes nothing.
    token = page.locator("meta[name=csrf-token]").get_attribute("content")
    before = ui.store.team_members("ui-readonly")
    r = page.request.post(
        "/teams/ui-readonly/members",
        form={"csrf_token": token, "email": "intruder@example.com", "role": "admin"},
    )
    assert r.status == 403
    assert "needs a team admin" in r.text()
    r = page.request.post(
        f"/teams/ui-readonly/members/{eve['username']}/role",
        form={"csrf_token": token, "role": "admin"},
    )
    assert r.status == 403
    assert ui.store.team_members("ui-readonly") == before
    assert page.errors == []
    # Her team's audit log is not hers to read.
    assert page.goto("/teams/ui-readonly/audit").status == 403

    # Someone outside the team cannot tell it exists.
    outsider = ui.user("oscar-outside@example.com")
    other = signed_in(outsider)
    assert other.goto("/teams/ui-readonly").status == 404


def test_admin_manages_users_dark(ui, browser, shot) -> None:
    context = browser.new_context(
        base_url=ui.url, color_scheme="dark", viewport={"width": 1400, "height": 900}
    )
    try:
        page = context.new_page()
        page.on("dialog", lambda dialog: dialog.accept())
        sign_in(page, ui.url, ui.admin["email"], ui.admin["password"])
        page.goto("/settings")
        page.fill("#user-email", "frank-new@example.com")
        page.fill("#user-name", "Frank " + XSS_IMG)
        page.click("button:text('Create user')")
        page.wait_for_load_state()
        labels = page.locator(".secret label").all_inner_texts()
        assert labels == ["Password", "API key"]
        password = page.locator("#secret-1").input_value()
        assert len(password) >= 12
        page.goto("/settings")
        row = page.locator("table.users tr", has_text="frank-new@example.com")
        assert XSS_IMG in row.inner_text() and page.evaluate("window.__xss") is None
        shot(page, "settings-admin-dark")
        row.get_by_role("button", name="Disable frank-new").click()
        page.wait_for_load_state()
        assert "disabled" in page.locator("table.users tr", has_text="frank-new@").inner_text()
        assert next(u for u in ui.store.list_users() if u["username"] == "frank-new")["disabled"]
    finally:
        context.close()

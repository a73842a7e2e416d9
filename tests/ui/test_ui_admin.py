"""A project's settings (protected aliases, retention, visibility, promotion requests), the
audit log with its chain check, and storage."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from stemma.wire.manifest import Entry, Manifest
from stemma.wire.records import ArtifactCommit, ArtifactRef
from tests.fixtures.accounts import as_user

pytestmark = pytest.mark.sqlite_only


def log_model(store: Any, tmp: Path, path: str, contents: list[str]) -> ArtifactRef:
    """A model version (one 100-byte file per content) committed straight through a store."""
    entity, project, name = path.split("/")
    entries = []
    for content in contents:
        f = tmp / f"{name}-{content}.bin"
        f.write_text(content * 100)
        digest, size = store.store_files([(f, None)])[0]
        entries.append(Entry(f"{content}.bin", digest, size))
    record, _ = store.commit_artifact(
        ArtifactCommit(
            entity,
            project,
            name,
            "model",
            None,
            {},
            Manifest(entries),
            [],
            None,
            None,
            {},
        )
    )
    return record.ref


@pytest.fixture(scope="module")
def acme(ui: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Team ui-acme: the instance admin is its admin, max a member; max logged two
    versions of ui-acme/vision/net (the second holds the first's file and a new one) and
    asks for the second to become production."""
    tmp = tmp_path_factory.mktemp("acme")
    ui.store.create_team("ui-acme")
    ui.store.add_member("ui-acme", ui.admin["email"], "admin")
    max_ = ui.user("max-acme@example.com")
    ui.store.add_member("ui-acme", max_["email"], "member")
    as_max = as_user(ui.store, max_["username"])
    v0 = log_model(as_max, tmp, "ui-acme/vision/net", ["a"])
    v1 = log_model(as_max, tmp, "ui-acme/vision/net", ["a", "b"])  # a.bin stored once
    ui.store.update_artifact(v0, {"aliases": ["production"]})
    request = as_max.request_promotion(v1, "production", "mAP +2 <b>bold</b>")
    return {"max": max_, "request": request}


def test_project_settings_and_promotion(ui, acme, signed_in, shot) -> None:
    page = signed_in()
    page.on("dialog", lambda dialog: dialog.accept())
    page.goto("/p/ui-acme/vision/settings")
    assert page.title() == "Settings · ui-acme/vision · Stemma"
    tabs = page.locator("nav.tabs a")
    assert tabs.all_inner_texts() == ["Runs", "Artifacts", "Reports", "Settings"]
    assert tabs.nth(3).get_attribute("aria-current") == "page"

    # The pending request, with the member's comment as text.
    row = page.locator("table.promotions tbody tr")
    assert row.count() == 1
    assert "max-acme" in row.inner_text() and "mAP +2 <b>bold</b>" in row.inner_text()
    shot(page, "project-settings")

    # Protected aliases.
    page.fill("#protected", "production, staging")
    page.click("button:text('Save aliases')")
    page.wait_for_load_state()
    assert sorted(ui.store.get_protected_aliases("ui-acme", "vision")) == [
        "production",
        "staging",
    ]
    assert page.locator("section .alias.protected").all_inner_texts()[:2] == [
        "production",
        "staging",
    ]

    # A retention policy; a bad duration is refused with the reason, nothing saved.
    page.fill("#ret-keep", "5")
    page.fill("#ret-older", "thirty days")
    page.click("button:text('Save policy')")
    page.wait_for_load_state()
    assert "cannot parse duration" in page.locator("p.error").inner_text()
    page.errors.clear()  # the browser logs the 400 answer
    assert ui.store.get_retention("ui-acme", "vision") == []
    page.fill("#ret-keep", "5")
    page.fill("#ret-older", "30d")
    page.fill("#ret-ttl", "90d")
    page.click("button:text('Save policy')")
    page.wait_for_load_state()
    assert ui.store.get_retention("ui-acme", "vision") == [
        {
            "name": None,
            "keep_last": 5,
            "delete_unaliased_older_than": 30 * 86400.0,
            "default_ttl": 90 * 86400.0,
        }
    ]
    assert "30d" in page.locator("table.retention").inner_text()
    assert "90d" in page.locator("table.retention").inner_text()

    # Visibility.
    page.select_option("#visibility", "private")
    page.click("button:text('Save visibility')")
    page.wait_for_load_state()
    assert page.locator(".badge.vis-private").inner_text() == "private"

    # Rejecting needs a reason; approving moves the alias.
    req = acme["request"]["id"]
    form = page.locator(f"form[action$='/promotions/{req}']")
    form.get_by_role("button", name="Reject").click()
    page.wait_for_load_state()
    assert "say why" in page.locator("p.error").inner_text()
    page.errors.clear()
    form = page.locator(f"form[action$='/promotions/{req}']")
    form.locator("input[name=comment]").fill("ship it")
    form.get_by_role("button", name="Approve").click()
    page.wait_for_load_state()
    assert f"Request {req} approved" in page.locator(".flash").inner_text()
    [done] = ui.store.list_promotions("ui-acme", "vision", state=None)
    assert done["state"] == "approved" and done["decided_by"] == "admin"
    assert done["decision_comment"] == "ship it"
    assert ui.store.get_artifact("ui-acme", "vision", "net", "production").ref.version == 1
    page.locator("details.decided summary").click()
    assert "ship it" in page.locator("details.decided").inner_text()

    # The audit log shows all of it, by whom; the chain checks out.
    page.goto("/admin/audit?entity=ui-acme")
    table = page.locator("table.audit").inner_text()
    for action in (
        "project.protected_aliases",
        "project.retention",
        "project.visibility",
        "alias.request",
        "alias.approve",
        "team.add",
    ):
        assert action in table, action
    request_row = page.locator("table.audit tr", has_text="alias.request")
    assert "max-acme" in request_row.inner_text()
    approve_row = page.locator("table.audit tr", has_text="alias.approve")
    assert "admin" in approve_row.inner_text() and "ship it" in approve_row.inner_text()
    page.click("button:text('Verify chain')")
    page.wait_for_load_state()
    assert "Chain intact" in page.locator(".verify").inner_text()
    assert "entity=ui-acme" in page.url  # the filters are kept
    shot(page, "audit")
    assert page.errors == []


def test_member_sees_settings_read_only(ui, acme, signed_in, shot) -> None:
    page = signed_in(acme["max"])
    # ui-acme/vision may be private by now: max logged it, so he owns it and still sees it.
    page.goto("/p/ui-acme/vision/settings")
    assert page.locator("main form").count() == 0, "a member was shown edit forms"
    assert "a team admin of ui-acme changes them" in page.locator("main").inner_text()
    before = ui.store.get_protected_aliases("ui-acme", "vision")
    token = page.locator("meta[name=csrf-token]").get_attribute("content")
    r = page.request.post(
        "/p/ui-acme/vision/settings/protected", form={"csrf_token": token, "aliases": ""}
    )
    assert r.status == 403 and "needs a team admin" in r.text()
    assert ui.store.get_protected_aliases("ui-acme", "vision") == before
    # Without the token, the form is refused before the store is asked.
    r = page.request.post("/p/ui-acme/vision/settings/protected", form={"aliases": ""})
    assert r.status == 403
    assert ui.store.get_protected_aliases("ui-acme", "vision") == before
    assert page.errors == []
    # The whole audit log is for instance administrators.
    response = page.goto("/admin/audit")
    assert response.status == 403
    assert page.title() == "You do not have access to this · Stemma"
    assert "instance administrator" in page.locator("p.error").inner_text()
    shot(page, "audit-403")


def test_audit_filters_and_pages(ui, signed_in) -> None:
    for i in range(60):
        ui.store.create_api_key(ui.admin["username"], name=f"paging-{i}")
    page = signed_in()
    page.goto("/admin/audit")
    page.fill("#f-action", "key.create")
    page.fill("#f-actor", ui.store.whoami()["user"])  # the local administrator made them
    page.click("button:text('Filter')")
    page.wait_for_load_state()
    rows = page.locator("table.audit tbody tr")
    assert rows.count() == 50
    first_page = [int(t) for t in rows.locator("td:first-child").all_inner_texts()]
    assert first_page == sorted(first_page, reverse=True)
    assert all("key.create" in t for t in rows.locator("td:nth-child(4)").all_inner_texts())
    page.get_by_role("link", name="Older →").click()
    page.wait_for_load_state()
    older = [int(t) for t in rows.locator("td:first-child").all_inner_texts()]
    assert older and max(older) < min(first_page)
    assert page.locator("#f-action").input_value() == "key.create"  # filters kept
    page.get_by_role("link", name="← Newest").click()
    page.wait_for_load_state()
    assert int(rows.first.locator("td").first.inner_text()) == first_page[0]
    assert page.errors == []


def test_storage(ui, acme, signed_in, shot) -> None:
    page = signed_in()
    page.goto("/storage")
    assert page.title() == "Storage · Stemma"
    row = page.locator("table.storage").first.locator("tr", has_text="ui-acme/vision")
    cells = row.locator("td").all_inner_texts()
    assert cells[1:3] == ["2", "2"]  # two versions, two distinct blobs
    # logical, file dedup, physical: a.bin counted twice, stored once (no file is large
    # enough to be chunked, so chunk dedup saves nothing more)
    assert cells[3:6] == ["300 B", "200 B", "200 B"]
    assert cells[-1].strip() == "33%"
    assert page.locator(".card", has_text="Blob store").count() == 1
    shot(page, "storage")
    # Someone in no team sees no one else's projects (and no store-wide totals).
    loner = ui.user("loner-storage@example.com")
    other = signed_in(loner)
    other.goto("/storage")
    assert "ui-acme" not in other.locator("main").inner_text()
    assert other.locator(".card", has_text="Blob store").count() == 0
    assert page.errors == [] and other.errors == []


def test_verify_names_an_edited_entry(ui, signed_in) -> None:
    from sqlalchemy import select, update

    from stemma.storage.models import audit_log

    with ui.store.engine.begin() as conn:
        seq, target = conn.execute(
            select(audit_log.c.seq, audit_log.c.target).order_by(audit_log.c.seq).limit(1)
        ).one()
        conn.execute(update(audit_log).where(audit_log.c.seq == seq).values(target="forged"))
    try:
        page = signed_in()
        page.goto("/admin/audit?verify=1")
        verdict = page.locator(".verify").inner_text()
        assert f"Chain broken at entry {seq}" in verdict and "was edited" in verdict
    finally:
        with ui.store.engine.begin() as conn:
            conn.execute(update(audit_log).where(audit_log.c.seq == seq).values(target=target))
    assert ui.store.audit_verify()["ok"]

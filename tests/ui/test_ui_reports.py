"""Report pages: the list, a report drawn from live data, the editor, share links."""

from __future__ import annotations

import re
import time
from typing import Any

import httpx
import numpy as np
import pytest

from stemma.backend.embedded import EmbeddedBackend
from tests.fixtures.accounts import as_user
from tests.test_report_evaluate import log

pytestmark = pytest.mark.sqlite_only

XSS_IMG = "<img src=x onerror=window.__xss=1>"
XSS_SCRIPT = "<script>window.__xss=1</script>"
LRS = (0.1, 0.01, 0.001)

# Pixels of a chart's canvases in a saturated colour (the series; axes and grid are grey).
COLOURED_PIXELS = """fig => {
  let n = 0;
  for (const c of fig.querySelectorAll('canvas')) {
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    for (let i = 0; i < d.length; i += 4) {
      const hi = Math.max(d[i], d[i + 1], d[i + 2]), lo = Math.min(d[i], d[i + 1], d[i + 2]);
      if (d[i + 3] > 100 && hi - lo > 60) n++;
    }
  }
  return n;
}"""


def team(ui: Any, name: str) -> tuple[dict[str, Any], EmbeddedBackend, dict[str, Any]]:
    """Team ``name`` with an admin (who logs) and a viewer: (owner, owner's store, viewer)."""
    owner = ui.user(f"owner-{name}@example.com")
    viewer = ui.user(f"viewer-{name}@example.com")
    store = as_user(ui.store, owner["username"])
    store.create_team(name)
    store.add_member(name, viewer["email"], "viewer")
    return owner, store, viewer


def log_runs(store: EmbeddedBackend, entity: str, project: str, n: int = 12) -> None:
    """``n`` finished runs of 30 steps over 3 learning rates, with summaries."""
    rng = np.random.default_rng(1)
    t0 = time.time() - 1000
    for i in range(n):
        lr = LRS[i % 3]
        loss = 2 * np.exp(-np.arange(30) / (5 + 100 * lr)) + rng.normal(0, 0.02, 30)
        rows = [(s, {"loss": float(v), "acc": float(1 - v / 3)}) for s, v in enumerate(loss)]
        summary = {"acc": float(1 - loss[-1] / 3), "loss": float(loss[-1])}
        log(
            store,
            f"{entity}/{project}/r{i:02d}",
            rows,
            config={"lr": lr, "bs": 32 * (1 + i % 2), "opt": "adam" if i % 2 else "sgd"},
            summary=summary,
            at=t0 + i,
        )


def full_spec(entity: str, project: str, **extra: Any) -> dict[str, Any]:
    panels = [
        {"type": "line_plot", "y": ["loss"], "title": "Loss"},
        {"type": "line_plot", "y": ["loss"], "groupby": "config.lr", "title": "By lr"},
        {"type": "bar_plot", "metrics": ["acc"], "groupby": "config.lr"},
        {"type": "scalar_chart", "metric": "acc"},
        {"type": "scatter_plot", "x": "config.lr", "y": "acc"},
        {"type": "parallel_coordinates_plot", "columns": ["config.lr", "config.bs", "acc"]},
        {"type": "run_comparer"},
        {"type": "runs_table", "columns": None},
        {"type": "media_browser", "media_keys": ["sample"]},
    ]
    return {
        "version": 1,
        "entity": entity,
        "project": project,
        "title": f"Week 6 {XSS_IMG}",
        "description": f"Learning rates {XSS_SCRIPT}",
        "blocks": [
            {"type": "h1", "text": f"Results {XSS_IMG}"},
            {"type": "markdown", "text": f"**Bold** {XSS_SCRIPT} [bad](javascript:alert(1))"},
            {"type": "toc"},
            {"type": "panel_grid", "panels": panels, **extra},
        ],
    }


def open_report(page: Any, url: str) -> Any:
    response = page.goto(url)
    page.wait_for_selector("html[data-report-drawn='1']")
    return response


def drawn(page: Any) -> dict[str, dict[str, str]]:
    """title -> the data- attributes report.js set on each panel's figure."""
    return page.eval_on_selector_all(
        "figure.report-panel",
        "fs => Object.fromEntries(fs.map(f => [f.querySelector('h3').textContent, "
        "Object.assign({}, f.dataset)]))",
    )


def no_xss(page: Any) -> None:
    assert page.evaluate("window.__xss") is None
    assert page.locator("main script:not([type='application/json'])").count() == 0


def test_report_page_draws_every_panel(ui, signed_in, shot, browser, tmp_path) -> None:
    from tests.test_media import log_media

    owner, store, _viewer = team(ui, "rep-draw")
    log_runs(store, "rep-draw", "vision")
    log_media(store, tmp_path, "rep-draw/vision/m1")  # a run with an image
    record = store.save_report("rep-draw", "vision", full_spec("rep-draw", "vision"))
    page = signed_in(owner)

    page.goto("/p/rep-draw/vision")
    page.get_by_role("link", name="Reports").click()
    assert page.title() == "Reports · vision · Stemma"
    row = page.locator("#reports tbody tr")
    assert row.count() == 1 and "Week 6 <img" in row.inner_text()
    no_xss(page)
    shot(page, "reports-list")

    row.get_by_role("link").click()
    page.wait_for_selector("html[data-report-drawn='1']")
    assert page.url.endswith(f"/p/rep-draw/vision/reports/{record['id']}")
    assert page.locator("h1").inner_text() == f"Week 6 {XSS_IMG}"
    assert XSS_SCRIPT in page.locator(".report-description").inner_text()
    assert XSS_IMG in page.locator(".report-h1").inner_text()
    md = page.locator(".report-md")
    assert XSS_SCRIPT in md.inner_text() and md.locator("strong").inner_text() == "Bold"
    assert md.locator("a").count() == 0  # the javascript: link is dropped
    assert page.locator(".report-toc a").get_attribute("href") == "#" + page.locator(
        ".report-h1"
    ).get_attribute("id")
    no_xss(page)

    figures = drawn(page)
    assert len(figures) == 9
    for title, data in figures.items():
        assert data["drawn"] == "1", title
        assert int(data["points"]) > 0, (title, data)
    assert figures["Loss"]["series"] == "12"  # the media run has no loss: no line
    assert int(figures["Loss"]["points"]) == 12 * 30
    grouped = figures["By lr"]
    assert grouped["groups"] == "3" and grouped["bands"] == "3" and grouped["series"] == "3"
    assert int(grouped["points"]) == 3 * 30
    legend = page.locator("figure[data-kind='line']:has(h3:text-is('By lr')) .legend-item")
    assert legend.count() == 3 and "(4 runs)" in legend.first.inner_text()
    for kind in ("line", "bar", "scatter", "parallel"):
        for fig in page.locator(f"figure[data-kind='{kind}']").element_handles():
            assert fig.evaluate(COLOURED_PIXELS) > 100, kind
    assert page.locator("figure[data-kind='scalar'] .scalar-value").inner_text()
    assert page.locator("figure[data-kind='table'] tbody tr").count() == 13
    image = page.locator("figure[data-kind='media'] img")
    assert image.get_attribute("src").startswith("/api/v1/runs/rep-draw/vision/m1/media/")
    image.scroll_into_view_if_needed()  # loading=lazy
    page.wait_for_function(
        "img => img.complete && img.naturalWidth > 0", arg=image.element_handle()
    )
    assert page.errors == []
    page.evaluate("window.scrollTo(0, 0)")
    shot(page, "report")

    dark = browser.new_context(
        base_url=ui.url, color_scheme="dark", viewport={"width": 1400, "height": 900}
    )
    try:
        dpage = dark.new_page()
        dpage.goto("/login")
        dpage.fill("#email", owner["email"])
        dpage.fill("#password", owner["password"])
        dpage.click("button[type=submit]")
        dpage.wait_for_url(lambda url: "/login" not in url)
        open_report(dpage, f"/p/rep-draw/vision/reports/{record['id']}")
        shot(dpage, "report-dark")
    finally:
        dark.close()


def test_a_new_run_appears_and_old_revisions_stay_readable(ui, signed_in) -> None:
    owner, store, _viewer = team(ui, "rep-live")
    log_runs(store, "rep-live", "vision", n=3)
    spec = full_spec("rep-live", "vision")
    record = store.save_report("rep-live", "vision", spec)
    url = f"/p/rep-live/vision/reports/{record['id']}"
    page = signed_in(owner)
    open_report(page, url)
    assert drawn(page)["Loss"]["series"] == "3"
    log(store, "rep-live/vision/late", [(s, {"loss": 1.0}) for s in range(5)], config={"lr": 0.5})
    open_report(page, url)
    assert drawn(page)["Loss"]["series"] == "4"  # no edit: the page reads runs on load
    assert drawn(page)["By lr"]["groups"] == "4"

    spec["title"] = "Renamed"
    store.save_report("rep-live", "vision", spec, record["id"])
    open_report(page, url)
    assert page.locator("h1").inner_text() == "Renamed"
    page.locator("summary", has_text="Revisions (2)").click()
    with page.expect_navigation():
        page.get_by_role("link", name="Revision 1").click()
    page.wait_for_selector("html[data-report-drawn='1']")
    assert "revision=1" in page.url
    assert page.locator("h1").inner_text() == f"Week 6 {XSS_IMG}"
    assert "revision 1 of 2" in page.locator(".revision-banner").inner_text()
    with page.expect_navigation():
        page.get_by_role("button", name="Restore this revision").click()
    page.wait_for_selector("html[data-report-drawn='1']")
    assert store.get_report(record["id"])["revision"] == 3
    assert store.get_report(record["id"])["title"] == f"Week 6 {XSS_IMG}"

    page.once("dialog", lambda dialog: dialog.accept())  # "Delete the report ...?"
    with page.expect_navigation():
        page.locator(".report-delete button").click()
    assert page.url.endswith("/p/rep-live/vision/reports")
    assert page.locator("#reports").count() == 0 and store.list_reports("rep-live", "vision") == []
    assert page.errors == []


def test_editing_saves_each_change_as_a_revision(ui, signed_in, shot) -> None:
    owner, store, _viewer = team(ui, "rep-edit")
    log_runs(store, "rep-edit", "vision", n=3)
    page = signed_in(owner)
    page.goto("/p/rep-edit/vision/reports")
    page.fill("#new-title", "Weekly")
    page.fill("#new-description", "Made in the UI")
    page.click("#create-report")
    page.wait_for_url(re.compile(r"/reports/[^/]+/edit$"))
    report_id = page.url.split("/")[-2]

    def saved() -> dict[str, Any]:
        return store.get_report(report_id)

    assert saved()["revision"] == 1 and saved()["spec"]["blocks"] == []

    # Add a panel grid with a line plot, then a markdown block.
    page.select_option("#add-type", "panel_grid")
    page.select_option("#add-panel-type", "line_plot")
    page.fill("#add-keys", "loss")
    page.click("#add-block")
    page.wait_for_url(re.compile(r"/edit#b0$"))
    assert saved()["revision"] == 2
    (grid,) = saved()["spec"]["blocks"]
    assert grid["type"] == "panel_grid" and grid["panels"][0]["y"] == ["loss"]

    page.select_option("#add-type", "markdown")
    page.fill("#add-text", f"## Notes\n\nLooks **good** {XSS_IMG}")
    page.click("#add-block")
    page.wait_for_url(re.compile(r"/edit#b1$"))
    blocks = saved()["spec"]["blocks"]
    assert saved()["revision"] == 3 and blocks[1]["type"] == "markdown"
    assert blocks[1]["text"].endswith(XSS_IMG)

    # Move the markdown block first.
    page.locator("#b1").get_by_role("button", name="↑ Up").click()
    page.wait_for_url(re.compile(r"/edit#b0$"))
    assert [b["type"] for b in saved()["spec"]["blocks"]] == ["markdown", "panel_grid"]
    assert saved()["revision"] == 4

    # Change the line plot's y and group it.
    panel = page.locator("#b1-p0")
    panel.locator("summary").click()
    panel.get_by_label("Y (history keys)").fill("loss, acc")
    panel.get_by_label("Group by").fill("config.lr")
    panel.get_by_role("button", name="Save panel").click()
    page.wait_for_url(re.compile(r"/edit#b1$"))
    line = saved()["spec"]["blocks"][1]["panels"][0]
    assert line["y"] == ["loss", "acc"] and line["groupby"] == "config.lr"
    assert saved()["revision"] == 5

    # Invalid edits: the store's message, status 400, nothing saved.
    panel = page.locator("#b1-p0")
    panel.locator("summary").click()
    panel.get_by_label("Y (history keys)").fill("config.")
    with page.expect_response(lambda r: r.request.method == "POST") as answer:
        panel.get_by_role("button", name="Save panel").click()
    assert answer.value.status == 400
    error = page.locator("#edit-error").inner_text()
    assert "panel 0 (line_plot)" in error and "y" in error
    filters = page.locator("#rs-filters-1-0")
    filters.fill('{"state": ')
    assert page.locator(".edit-runset [role=status]").inner_text().startswith("Not valid JSON")
    with page.expect_response(lambda r: r.request.method == "POST") as answer:
        page.locator("#b1-rs0").get_by_role("button", name="Save run set").click()
    assert answer.value.status == 400
    assert "filters must be a JSON object" in page.locator("#edit-error").inner_text()
    assert page.locator("#rs-filters-1-0").input_value() == '{"state": '  # kept to fix
    page.locator("#rs-filters-1-0").fill('{"state": {"$bad": 1}}')
    page.locator("#b1-rs0").get_by_role("button", name="Save run set").click()
    assert "filters" in page.locator("#edit-error").inner_text()
    assert saved()["revision"] == 5

    page.locator("#rs-filters-1-0").fill('{"state": "finished"}')
    page.locator("#b1-rs0").get_by_role("button", name="Save run set").click()
    page.wait_for_url(re.compile(r"/edit#b1$"))
    assert saved()["spec"]["blocks"][1]["runsets"][0]["filters"] == {"state": "finished"}
    page.evaluate("window.scrollTo(0, 0)")
    page.select_option("#add-type", "panel_grid")
    assert not page.locator("#add-text").is_visible()  # a panel grid needs no text...
    assert page.locator("#add-keys").is_visible()
    page.select_option("#add-type", "p")
    assert page.locator("#add-text").is_visible()  # ...a paragraph does
    assert not page.locator("#add-keys").is_visible()
    shot(page, "report-edit")

    # An edit made from a stale editor (another revision was saved since) is refused.
    token = page.locator("meta[name=csrf-token]").get_attribute("content")
    stale = page.request.post(
        f"/p/rep-edit/vision/reports/{report_id}/edit",
        form={"op": "meta", "title": "Stale", "base": "2", "csrf_token": token},
    )
    assert stale.status == 409 and "changed since you opened the editor" in stale.text()
    assert saved()["revision"] == 6 and saved()["title"] == "Weekly"

    # The API sees the same spec the editor saved; the page draws it.
    page.click("#view-report")
    page.wait_for_selector("html[data-report-drawn='1']")
    fig = drawn(page)["loss, acc by config.lr"]
    assert fig["groups"] == "3" and fig["series"] == "6"
    assert "Looks good" in page.locator(".report-md").inner_text()
    no_xss(page)
    # The browser logs the refused edits' 400 answers; nothing else went wrong.
    assert [e for e in page.errors if "400 (Bad Request)" not in e] == []


def test_viewers_see_no_edit_controls_and_cannot_post(ui, signed_in) -> None:
    _owner, store, viewer = team(ui, "rep-view")
    log_runs(store, "rep-view", "vision", n=3)
    record = store.save_report("rep-view", "vision", full_spec("rep-view", "vision"))
    url = f"/p/rep-view/vision/reports/{record['id']}"
    page = signed_in(viewer)
    page.goto("/p/rep-view/vision/reports")
    assert page.locator("#create-report").count() == 0
    open_report(page, url)
    for control in ("#edit-report", "#share-button", ".report-delete"):
        assert page.locator(control).count() == 0, control
    assert page.goto(url + "/edit").status == 403
    page.goto(url)
    token = page.locator("meta[name=csrf-token]").get_attribute("content")
    assert token
    forged = [
        (url + "/edit", {"op": "meta", "title": "Hacked", "description": ""}),
        (url + "/edit", {"op": "add", "type": "markdown", "text": "x"}),
        (url + "/share", {"enabled": "1"}),
        (url + "/delete", {}),
        ("/p/rep-view/vision/reports", {"title": "Mine"}),
    ]
    for target, form in forged:
        answer = page.request.post(target, form={**form, "csrf_token": token})
        assert answer.status == 403, (target, answer.status)
    assert store.get_report(record["id"])["revision"] == 1
    assert len(store.list_reports("rep-view", "vision")) == 1
    assert store.get_report(record["id"])["share"]["enabled"] is False
    assert [e for e in page.errors if "403 (Forbidden)" not in e] == []  # the refused edit page


def test_share_link_opens_without_sign_in_until_revoked(ui, signed_in, browser, shot, tmp_path):
    from tests.test_media import log_media

    owner, store, _viewer = team(ui, "rep-share")
    log_runs(store, "rep-share", "vision", n=6)
    log_media(store, tmp_path, "rep-share/vision/m1")
    log_runs(store, "rep-share", "other", n=2)  # same team, another project
    runsets = [{"name": "Ours"}, {"name": "Other project", "project": "other"}]
    spec = full_spec("rep-share", "vision", runsets=runsets)
    record = store.save_report("rep-share", "vision", spec)
    url = f"/p/rep-share/vision/reports/{record['id']}"
    page = signed_in(owner)
    open_report(page, url)
    assert len(drawn(page)) == 9
    assert "2 runs" in page.locator(".runset").nth(1).inner_text()
    page.locator("#share-button").click()
    with page.expect_navigation():
        page.click("#share-on")
    page.wait_for_selector("html[data-report-drawn='1']")
    assert page.url.endswith(url + "#share")  # redirected: a reload makes no new link
    link = page.locator("#share-link").input_value()
    assert re.fullmatch(re.escape(ui.url) + r"/share/r/[\w-]{20,}", link)
    assert store.get_report(record["id"])["share"]["enabled"] is True
    page.reload()  # the link is shown once only: the store keeps its hash
    page.wait_for_selector("html[data-report-drawn='1']")
    assert page.locator("#share-link").count() == 0
    assert page.locator("#share-button").inner_text().startswith("Share · link on")

    anonymous = browser.new_context(viewport={"width": 1400, "height": 900})
    try:
        visitor = anonymous.new_page()
        errors: list[str] = []
        visitor.on("pageerror", lambda exc: errors.append(str(exc)))
        visitor.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        response = visitor.goto(link)
        assert response.status == 200
        assert response.headers["cache-control"] == "no-store"
        assert "noindex" in response.headers["x-robots-tag"]
        visitor.wait_for_selector("html[data-report-drawn='1']")
        assert visitor.locator("h1").inner_text() == f"Week 6 {XSS_IMG}"
        figures = drawn(visitor)
        assert len(figures) == 9 and all(int(f["points"]) > 0 for f in figures.values())
        assert figures["By lr"]["groups"] == "3"
        for control in ("#edit-report", "#share-button", ".report-delete", "header.top"):
            assert visitor.locator(control).count() == 0, control
        assert visitor.locator("a[href^='/p/'], a[href^='/api/']").count() == 0
        note = visitor.locator(".runset").nth(1).inner_text()
        assert "0 runs" in note and "cannot read" in note  # the link reads this project only
        image = visitor.locator("figure[data-kind='media'] img")
        src = image.get_attribute("src")
        assert src.startswith(link.removeprefix(ui.url) + "/media/rep-share/vision/m1/")
        image.scroll_into_view_if_needed()  # loading=lazy
        visitor.wait_for_function("img => img.naturalWidth > 0", arg=image.element_handle())
        blob = httpx.get(ui.url + src)
        assert blob.status_code == 200 and blob.headers["content-security-policy"] == "sandbox"
        assert blob.headers["content-type"] == "image/png"
        assert httpx.get(ui.url + src.replace("/m1/", "/r00/")).status_code == 404
        no_xss(visitor)
        assert errors == []
        visitor.evaluate("window.scrollTo(0, 0)")
        shot(visitor, "report-shared")

        page.locator("#share-button").click()
        with page.expect_navigation():
            page.click("#share-off")
        page.wait_for_selector("html[data-report-drawn='1']")
        assert store.get_report(record["id"])["share"]["enabled"] is False
        assert visitor.goto(link).status == 404
        assert httpx.get(ui.url + src).status_code == 404
        assert httpx.get(f"{ui.url}/share/r/not-a-token").status_code == 404

        # Team admins can turn share links off for the project: live links stop working.
        page.locator("#share-button").click()
        with page.expect_navigation():
            page.click("#share-on")
        page.wait_for_selector("html[data-report-drawn='1']")
        link = page.locator("#share-link").input_value()
        assert visitor.goto(link).status == 200
        page.goto("/p/rep-share/vision/reports")
        with page.expect_navigation():
            page.click("#sharing-off")
        assert page.locator("#sharing-on").is_visible()
        assert visitor.goto(link).status == 404
        open_report(page, url)
        page.locator("#share-button").click()
        assert "turned share links off" in page.locator(".share-menu").inner_text()
        assert page.locator("#share-on").count() == 0
    finally:
        anonymous.close()
    assert [e for e in page.errors if "404 (Not Found)" not in e] == []

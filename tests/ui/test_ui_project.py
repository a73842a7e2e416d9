"""The project page: the runs table (server-side pages, filters, search, sorting, columns,
grouping, selection for compare), its errors, its escaping and its access rule."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from sqlalchemy import insert, update

import stemma
from stemma.service.runs import ensure_project
from stemma.storage.database import write_tx
from stemma.storage.models import runs as runs_table
from tests.ui.conftest import sign_in

pytestmark = pytest.mark.sqlite_only

XSS_IMG = "<img src=x onerror=window.__xss=1>"
XSS_SCRIPT = "<script>window.__xss=1</script>"
STATE_CYCLE = ("finished", "finished", "failed", "finished", "crashed", "finished", "running")


@dataclass
class Logged:
    """The project the tests read: its runs as logged, by index."""

    owner: dict[str, Any]
    entity: str
    project: str
    runs: list[dict[str, Any]]

    @property
    def url(self) -> str:
        return f"/p/{self.entity}/{self.project}"

    def ids(self, pred: Any = lambda r: True) -> set[str]:
        return {r["id"] for r in self.runs if pred(r)}


def _spec(i: int) -> dict[str, Any]:
    tags = []
    if i % 2 == 0:
        tags.append("even")
    if i % 3 == 0:
        tags.append("three")
    if i == 11:
        tags.append("needle-tag")
    return {
        "i": i,
        "name": "special-Needle-run" if i == 7 else f"run-{i:02d}",
        "state": STATE_CYCLE[i % 7],
        "job_type": ("train", "eval", "sweep")[i % 3],
        "group": None if i % 6 == 5 else f"g{i % 4}",
        "tags": tags,
        "notes": "has a NEEDLE in its notes" if i == 13 else None,
        "config": {
            "lr": round(0.001 * (i + 1), 4),
            "batch": (16, 32, 64)[i % 3],
            "opt": ("adam", "sgd")[i % 2],
            "model": {"depth": i % 5},
        },
        "summary": {"acc": round(i / 30, 4), "loss": round(1 - i / 30, 4)},
    }


@pytest.fixture(scope="module")
def logged(ui) -> Logged:
    owner = ui.user("runs-owner@example.com")
    specs = [_spec(i) for i in range(30)]
    with ui.sdk(owner):
        for spec in specs:
            run = stemma.init(
                project="runs-table",
                name=spec["name"],
                job_type=spec["job_type"],
                group=spec["group"],
                tags=spec["tags"],
                notes=spec["notes"],
                config=spec["config"],
            )
            run.log({"loss": spec["summary"]["loss"]}, step=spec["i"])
            run.summary.update(spec["summary"])
            run.finish(exit_code=1 if spec["state"] == "failed" else 0)
            spec["id"] = run.id
            entity = run.entity
    # Crashed and running states as the server would leave them (a lost heartbeat, a live
    # process), set in the store: the SDK only ends runs as finished or failed.
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
    with write_tx(ui.store.engine) as conn:
        for spec in specs:
            if spec["state"] in ("crashed", "running"):
                conn.execute(
                    update(runs_table)
                    .where(runs_table.c.run_id == spec["id"])
                    .values(state=spec["state"], heartbeat_at=later, finished_at=None)
                )
    return Logged(owner, entity, "runs-table", specs)


def _row_ids(page: Any) -> list[str]:
    return page.eval_on_selector_all(
        "table.runs tbody tr[data-run]", "rows => rows.map(r => r.dataset.run)"
    )


def _open(page: Any, url: str) -> Any:
    response = page.goto(url)
    page.wait_for_selector("table.runs[data-ready], p.empty, #filter-error")
    return response


def _column(page: Any, index: int) -> list[str]:
    """The text of one column (1-based, the checkbox column being 1) of every run row."""
    return page.eval_on_selector_all(
        f"table.runs tbody tr[data-run] td:nth-child({index})",
        "cells => cells.map(c => c.textContent.trim())",
    )


def _header_index(page: Any, column: str) -> int:
    """The 1-based index of the column sorting by ``column`` (name, config.lr...)."""
    heads = page.eval_on_selector_all("table.runs thead th", "ths => ths.map(t => t.dataset.col)")
    return 1 + heads.index(column)


def test_table_shows_runs_in_server_pages(ui, logged, signed_in, shot) -> None:
    page = signed_in(logged.owner)
    _open(page, logged.url)
    assert page.title() == "runs-table runs · Stemma"
    crumbs = page.locator("header .crumbs").inner_text()
    assert logged.entity in crumbs and "runs-table" in crumbs
    tabs = page.locator("nav.tabs a")
    assert [tabs.nth(i).inner_text().split()[0] for i in range(tabs.count())] == [
        "Runs",
        "Artifacts",
        "Reports",
        "Settings",
    ]
    assert page.locator("nav.tabs a", has_text="Artifacts").get_attribute("href") == (
        f"{logged.url}/artifacts"
    )
    # Newest first by default: the last run logged leads.
    ids = _row_ids(page)
    assert ids == [r["id"] for r in reversed(logged.runs)]
    first = page.locator("table.runs tbody tr[data-run]").first
    assert first.locator("td.run-name a").get_attribute("href") == (
        f"{logged.url}/r/{logged.runs[-1]['id']}"
    )
    assert re.match(r"\d{4}-\d\d-\d\dT", first.locator("time").get_attribute("title"))
    shot(page, "project-runs")

    # 25 a page, chosen in the form (it submits itself), then page 2.
    page.select_option("#f-per", "25")
    page.wait_for_url(re.compile(r"per=25"))
    assert len(_row_ids(page)) == 25
    assert "1\N{EN DASH}25 of 30 runs" in page.locator("#runs-count").inner_text()
    page.get_by_role("link", name="Next →").click()
    page.wait_for_url(re.compile(r"page=2"))
    second = _row_ids(page)
    assert len(second) == 5 and "Page 2 of 2" in page.locator("nav.pager").inner_text()
    assert set(second) | set(ids[:25]) == logged.ids()
    page.go_back()
    page.wait_for_url(lambda url: "page=2" not in url)
    assert _row_ids(page) == ids[:25]
    assert page.errors == []


def test_filters_narrow_the_rows(ui, logged, signed_in) -> None:
    page = signed_in(logged.owner)
    _open(page, logged.url)
    state_menu = page.locator("details.menu", has=page.locator("input[name=state]"))
    state_menu.locator("summary").click()
    page.check("input[name=state][value=finished]")
    page.check("input[name=state][value=failed]")
    page.select_option("#f-job", "train")
    page.locator("details.advanced > summary").click()
    row = page.locator("#conditions .condition").last
    row.locator("input[name=cf]").fill("config.lr")
    row.locator("select[name=co]").select_option("gt")
    row.locator("input[name=cv]").fill("0.005")
    page.click("#apply-filters")
    page.wait_for_url(re.compile(r"cf=config.lr"))
    expected = logged.ids(
        lambda r: (
            r["state"] in ("finished", "failed")
            and r["job_type"] == "train"
            and r["config"]["lr"] > 0.005
        )
    )
    assert expected and set(_row_ids(page)) == expected
    assert f"of {len(expected)} matching runs" in page.locator("#runs-count").inner_text()
    # The chosen filters stay in the form, and the link can be shared.
    assert page.locator("input[name=state][value=failed]").is_checked()
    assert page.locator("#f-job").input_value() == "train"
    again = page.context.new_page()
    _open(again, page.url)
    assert set(_row_ids(again)) == expected

    # A second condition (added with the button), on a summary value and a nested key.
    assert page.locator("details.advanced[open]").count() == 1  # open: it has conditions
    page.click("#add-condition")
    row = page.locator("#conditions .condition").last
    row.locator("input[name=cf]").fill("config.model.depth")
    row.locator("select[name=co]").select_option("lte")
    row.locator("input[name=cv]").fill("2")
    page.click("#apply-advanced")
    page.wait_for_url(re.compile(r"cf=config.model.depth"))
    narrower = logged.ids(lambda r: r["id"] in expected and r["config"]["model"]["depth"] <= 2)
    assert set(_row_ids(page)) == narrower

    # Group and user filters, and tags (any of).
    _open(page, f"{logged.url}?group=g1&tag=three&tag=needle-tag")
    assert set(_row_ids(page)) == logged.ids(
        lambda r: r["group"] == "g1" and {"three", "needle-tag"} & set(r["tags"])
    )
    _open(page, f"{logged.url}?group=(none)")
    assert set(_row_ids(page)) == logged.ids(lambda r: r["group"] is None)
    _open(page, f"{logged.url}?user={logged.owner['username']}&state=running")
    assert set(_row_ids(page)) == logged.ids(lambda r: r["state"] == "running")
    assert page.errors == []


def test_free_text_search_finds_names_tags_and_notes(ui, logged, signed_in) -> None:
    page = signed_in(logged.owner)
    _open(page, logged.url)
    page.fill("#f-q", "needle")
    page.press("#f-q", "Enter")
    page.wait_for_url(re.compile(r"q=needle"))
    # Name (any case), tag and notes.
    assert set(_row_ids(page)) == {logged.runs[i]["id"] for i in (7, 11, 13)}
    page.fill("#f-q", "three")
    page.press("#f-q", "Enter")
    page.wait_for_url(re.compile(r"q=three"))
    assert set(_row_ids(page)) == logged.ids(lambda r: "three" in r["tags"])
    # Regex characters are taken literally.
    _open(page, f"{logged.url}?q=run-0.")
    assert _row_ids(page) == []
    assert "No runs match" in page.locator("p.empty").inner_text()
    assert page.errors == []


def test_headers_sort_and_the_column_picker_adds_columns(ui, logged, signed_in) -> None:
    page = signed_in(logged.owner)
    _open(page, logged.url)
    page.locator("table.runs thead a.sort", has_text="Name").click()
    page.wait_for_url(re.compile(r"order=name"))
    names = _column(page, 2)
    assert names == sorted(r["name"] for r in logged.runs)
    assert page.locator("th[aria-sort=ascending]", has_text="Name").count() == 1
    page.locator("table.runs thead a.sort", has_text="Name").click()
    page.wait_for_url(re.compile(r"order=-name"))
    assert _column(page, 2) == sorted(names, reverse=True)

    # Choose columns: add config.opt, drop summary.loss.
    menu = page.locator("details.columns-menu")
    menu.locator("summary").click()
    menu.locator(".col-filter").fill("opt")
    assert menu.locator("label.check:visible").count() == 1
    menu.locator("input[value='config.opt']").check()
    menu.locator(".col-filter").fill("")
    menu.locator("input[value='summary.loss']").uncheck()
    menu.get_by_role("button", name="Show columns").click()
    page.wait_for_url(re.compile(r"col=config.opt"))
    opt = _header_index(page, "config.opt")
    by_name = {r["name"]: r for r in logged.runs}
    assert _column(page, opt) == [by_name[n]["config"]["opt"] for n in _column(page, 2)]
    heads = page.locator("table.runs thead").inner_text()
    assert "loss" not in heads and "acc" in heads

    # Sort by a config column (low to high first), then a summary one (high to low first).
    page.locator("table.runs thead a.sort", has_text="lr").click()
    page.wait_for_url(re.compile(r"order=config.lr"))
    lr = [float(v) for v in _column(page, _header_index(page, "config.lr"))]
    assert lr == sorted(r["config"]["lr"] for r in logged.runs)
    page.locator("table.runs thead a.sort", has_text="acc").click()
    page.wait_for_url(re.compile(r"order=-summary.acc"))
    acc = [float(v) for v in _column(page, _header_index(page, "summary.acc"))]
    assert acc == sorted((r["summary"]["acc"] for r in logged.runs), reverse=True)

    # The choice is remembered for this project: the bare address shows it again.
    _open(page, logged.url)
    page.wait_for_url(re.compile(r"colset=1"))
    assert "opt" in page.locator("table.runs thead").inner_text()
    assert page.errors == []


def test_grouping_shows_groups_with_counts(ui, logged, signed_in, shot) -> None:
    page = signed_in(logged.owner)
    _open(page, logged.url)
    page.select_option("#f-groupby", "group")
    page.wait_for_url(re.compile(r"groupby=group"))
    heads = page.locator("table.runs tr.group-row").all_inner_texts()
    counts: dict[str, int] = {}
    for r in logged.runs:
        key = r["group"] or "(none)"
        counts[key] = counts.get(key, 0) + 1
    seen = {}
    for text in heads:
        found = re.match(r"Group:\s*(\S+)\s*·\s*(\d+) matching runs?", text.strip())
        assert found, text
        seen[found.group(1)] = int(found.group(2))
    assert seen == counts
    chips = page.locator(".group-summary a.group-chip").all_inner_texts()
    assert sorted(c.split()[0] for c in chips) == sorted(counts)
    # Every row sits under the header of its group.
    under = page.eval_on_selector_all(
        "table.runs tbody tr",
        """rows => { let g = null; const out = [];
            for (const r of rows) {
              if (r.classList.contains('group-row')) g = r.textContent;
              else out.push([g, r.dataset.run]);
            } return out; }""",
    )
    by_id = {r["id"]: r for r in logged.runs}
    for head, run_id in under:
        assert f"Group: {by_id[run_id]['group'] or '(none)'} " in " ".join(head.split()) + " "
    shot(page, "project-runs-grouped")
    # A chip narrows the table to its group.
    page.locator(".group-summary a.group-chip", has_text="g2").click()
    page.wait_for_url(re.compile(r"group=g2"))
    assert set(_row_ids(page)) == logged.ids(lambda r: r["group"] == "g2")
    assert page.errors == []


def test_select_runs_and_compare(ui, logged, signed_in) -> None:
    page = signed_in(logged.owner)
    _open(page, f"{logged.url}?order=name")
    ids = _row_ids(page)
    compare = page.locator("#compare-selected")
    assert compare.is_disabled()
    boxes = page.locator("input.run-select")
    boxes.nth(0).click()
    boxes.nth(2).click(modifiers=["Shift"])  # a range: rows 0 to 2
    assert [boxes.nth(i).is_checked() for i in range(4)] == [True, True, True, False]
    assert page.locator("#selection-count").inner_text() == "3 selected"
    assert page.locator("tr.selected").count() == 3
    # Keyboard: arrow down from the third box, space to toggle the fourth on and off.
    boxes.nth(2).focus()
    page.keyboard.press("ArrowDown")
    assert page.evaluate("document.activeElement.value") == ids[3]
    page.keyboard.press("Space")
    assert boxes.nth(3).is_checked()
    page.keyboard.press("Space")
    assert not boxes.nth(3).is_checked()
    # Select all on the page, then none.
    page.check("#select-all")
    assert page.locator("input.run-select:checked").count() == len(ids)
    page.uncheck("#select-all")
    assert page.locator("input.run-select:checked").count() == 0
    for i in (1, 4, 6):
        boxes.nth(i).check()
    compare.click()
    page.wait_for_url(re.compile(r"/compare\?runs="))
    url = urlparse(page.url)
    assert url.path == f"{logged.url}/compare"
    assert parse_qs(url.query)["runs"][0].split(",") == [ids[1], ids[4], ids[6]]

    # Compare all matching: the filtered runs, in the table's order.
    page.goto(f"{logged.url}?state=failed&order=name")
    page.get_by_role("link", name=re.compile("Compare all matching")).click()
    page.wait_for_url(re.compile(r"/compare\?runs="))
    got = parse_qs(urlparse(page.url).query)["runs"][0].split(",")
    failed = sorted((r for r in logged.runs if r["state"] == "failed"), key=lambda r: r["name"])
    assert got == [r["id"] for r in failed]


def test_invalid_filters_are_explained(ui, logged, signed_in, shot) -> None:
    page = signed_in(logged.owner)
    _open(page, logged.url)
    page.locator("details.advanced > summary").click()
    page.fill("#f-raw", '{"config.lr": {"$around": 1}}')
    with page.expect_navigation() as nav:
        page.click("#apply-advanced")
    assert nav.value.status == 400
    error = page.locator("#filter-error")
    assert "unknown filter operator" in error.inner_text()
    assert page.get_by_role("alert").count() >= 1
    # The form keeps what was typed, so it can be fixed.
    assert page.locator("#f-raw").input_value() == '{"config.lr": {"$around": 1}}'
    shot(page, "project-runs-bad-filter")
    response = _open(page, f"{logged.url}?filter=" + "{oops")
    assert response.status == 400
    assert "not valid JSON" in page.locator("#filter-error").inner_text()
    response = _open(page, f"{logged.url}?cf=config.lr&co=regex&cv=(")
    assert response.status == 400 and "invalid" in page.locator("#filter-error").inner_text()
    response = _open(page, f"{logged.url}?order=nonsense")
    assert response.status == 400 and "cannot order" in page.locator("#filter-error").inner_text()
    # A valid raw document works, combined with the rest.
    _open(page, f'{logged.url}?filter={{"summary.acc": {{"$gte": 0.5}}}}&job_type=eval')
    assert set(_row_ids(page)) == logged.ids(
        lambda r: r["summary"]["acc"] >= 0.5 and r["job_type"] == "eval"
    )
    # The browser logs each 400 answer; nothing else may fail.
    assert [e for e in page.errors if "status of 400" not in e] == []


def test_user_text_renders_as_text(ui, signed_in) -> None:
    person = ui.user("xss-runs@example.com")
    with ui.sdk(person):
        run = stemma.init(
            project="xss-runs",
            name=XSS_IMG,
            group=XSS_SCRIPT,
            job_type="train",
            tags=[XSS_SCRIPT, "ok"],
            notes=XSS_IMG,
            config={"key<b>": XSS_IMG, "plain": XSS_SCRIPT},
        )
        run.summary["s<img>"] = XSS_SCRIPT
        run.finish()
        entity = run.entity
    page = signed_in(person)
    base = f"/p/{entity}/xss-runs"
    columns = "colset=1&col=config.key<b>&col=config.plain&col=summary.s<img>"
    _open(page, f"{base}?groupby=group&{columns}")
    assert page.locator("td.run-name a").inner_text() == XSS_IMG
    assert XSS_SCRIPT in page.locator("td.tags").inner_text()
    assert _column(page, _header_index(page, "config.key<b>")) == [XSS_IMG]
    assert _column(page, _header_index(page, "summary.s<img>")) == [XSS_SCRIPT]
    assert XSS_SCRIPT in page.locator("tr.group-row").inner_text()
    # Reflected input: a search and a raw filter holding markup.
    _open(page, f"{base}?q={XSS_SCRIPT}&filter=%22{XSS_IMG}")
    assert page.locator("#f-q").input_value() == XSS_SCRIPT
    assert XSS_IMG in page.locator("#filter-error").inner_text()  # invalid JSON, quoted
    page.wait_for_timeout(100)
    assert page.evaluate("window.__xss") is None
    assert [e for e in page.errors if "status of 400" not in e] == []


def test_no_access_is_a_not_found_page(ui, logged, signed_in) -> None:
    stranger = ui.user("runs-stranger@example.com")
    page = signed_in(stranger)
    response = page.goto(logged.url)
    assert response.status in (403, 404)
    assert page.title() in ("Not found · Stemma", "You do not have access to this · Stemma")
    assert page.locator("table.runs").count() == 0
    assert "run-0" not in page.content()  # nothing of the project leaks
    response = page.goto(f"{logged.url}/compare-matching")
    assert response.status in (403, 404)


def test_empty_project_says_what_to_do(ui, signed_in) -> None:
    person = ui.user("empty-runs@example.com")
    page = signed_in(person)
    # A project of the person's own that has no runs yet.
    with write_tx(ui.store.engine) as conn:
        ensure_project(conn, person["username"], "fresh")
    _open(page, f"/p/{person['username']}/fresh")
    assert "No runs in this project yet" in page.locator("p.empty").inner_text()
    assert page.errors == []


def test_dark_mode_screenshot(ui, logged, browser, shot) -> None:
    context = browser.new_context(
        base_url=ui.url, viewport={"width": 1400, "height": 900}, color_scheme="dark"
    )
    try:
        page = context.new_page()
        sign_in(page, ui.url, logged.owner["email"], logged.owner["password"])
        _open(page, f"{logged.url}?groupby=job_type&state=finished&state=failed")
        page.locator("input.run-select").nth(1).check()
        shot(page, "project-runs-dark")
    finally:
        context.close()


def _bulk_runs(store: Any, entity: str, project: str, n: int) -> None:
    """``n`` runs with config and summary, written straight into the store (fast)."""
    t0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    with write_tx(store.engine) as conn:
        pid = ensure_project(conn, entity, project)
        rows = []
        for i in range(n):
            created = t0 + dt.timedelta(seconds=i)
            rows.append(
                {
                    "project_id": pid,
                    "run_id": f"b{i:05d}",
                    "name": f"bulk-{i}",
                    "state": ("finished", "failed", "crashed")[i % 3],
                    "job_type": ("train", "eval")[i % 2],
                    "group_name": f"sweep-{i % 40}",
                    "tags": [("a", "b", "c")[i % 3]],
                    "notes": None,
                    "config": {"lr": (i % 97) / 1000, "batch": 2 ** (i % 6), "opt": "adam"},
                    "summary": {"acc": (i % 89) / 89, "loss": 1 - (i % 89) / 89, "_step": 99},
                    "run_metadata": {},
                    "username": entity,
                    "host": "bulk",
                    "created_at": created,
                    "heartbeat_at": created,
                    "finished_at": created,
                    "exit_code": 0,
                    "last_step": 99,
                    "runtime": 60.0 + i,
                }
            )
        conn.execute(insert(runs_table), rows)


def test_large_project_pages_over_plain_http(ui, signed_in) -> None:
    """5,000 runs: the page answers with one page of rows and the right counts (timing is
    for bench/ui.py, not for tests)."""
    person = ui.user("bulk-runs@example.com")
    _bulk_runs(ui.store, person["username"], "big", 5000)
    page = signed_in(person)
    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    base = f"{ui.url}/p/{person['username']}/big"
    with httpx.Client(cookies=cookies, headers={"accept": "text/html"}, timeout=30) as client:
        r = client.get(base)
        assert r.status_code == 200
        assert r.text.count('<tr data-run="') == 50
        assert "of <b>5,000</b> runs" in " ".join(r.text.split())
        r = client.get(base, params={"order": "-config.lr", "per": 200, "page": 3})
        assert r.status_code == 200 and r.text.count('<tr data-run="') == 200
        r = client.get(
            base,
            params=[("state", "failed"), ("cf", "config.lr"), ("co", "gte"), ("cv", "0.05")],
        )
        expected = sum(1 for i in range(5000) if i % 3 == 1 and (i % 97) / 1000 >= 0.05)
        assert f"of <b>{expected:,}</b> matching runs" in " ".join(r.text.split())
        r = client.get(base, params={"groupby": "group", "page": 100})
        assert r.status_code == 200 and "Page 100 of 100" in r.text
        assert r.text.count('class="group-chip"') == 40
    _open(page, f"/p/{person['username']}/big")
    assert len(_row_ids(page)) == 50
    assert page.errors == []

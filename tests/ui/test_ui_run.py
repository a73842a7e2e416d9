"""The run page: charts drawn with data (x axis, smoothing, log scale, zoom), overview,
editing by members only, live updates, media, and user text shown as text."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

import stemma
from stemma.wire.history import encode_rows
from stemma.wire.records import RunRef
from tests.fixtures.accounts import as_user
from tests.ui.conftest import sign_in

pytestmark = pytest.mark.sqlite_only

XSS_IMG = "<img src=x onerror=window.__xss=1>"
XSS_SCRIPT = "<script>window.__xss=1</script>"
ALL_DRAWN = """() => {
  const figs = Array.from(document.querySelectorAll('figure.chart'));
  return figs.length > 0 && figs.every(f => f.dataset.drawn === '1');
}"""
# Pixels of the first series colour (#2f5fd0) on a chart's canvas: the line itself.
LINE_PIXELS = """(fig) => {
  const c = fig.querySelector('canvas');
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let n = 0;
  for (let i = 0; i < d.length; i += 4) {
    if (d[i + 3] > 150 && Math.abs(d[i] - 47) < 40 && Math.abs(d[i + 1] - 95) < 40
        && Math.abs(d[i + 2] - 208) < 40) n++;
  }
  return n;
}"""


def chart(page: Any, key: str) -> Any:
    return page.locator(f"figure.chart[data-key='{key}']")


def attr(page: Any, key: str, name: str) -> str:
    return chart(page, key).get_attribute(f"data-{name}")


def wait_attr(page: Any, key: str, name: str, value: str) -> None:
    page.wait_for_function(
        "([k, n, v]) => { const f = document.querySelector(`figure.chart[data-key='${k}']`);"
        " return f && f.getAttribute('data-' + n) === v; }",
        arg=[key, name, value],
    )


def snap(shot: Any, page: Any, name: str) -> None:
    """A screenshot from the top of the page (the sticky header stays in place)."""
    page.evaluate("() => window.scrollTo(0, 0)")
    shot(page, name)


def run_url(run: Any) -> str:
    return f"/p/{run.entity}/{run.project}/r/{run.id}"


def wait_stored(ui: Any, run: Any, last_step: int, timeout: float = 15.0) -> None:
    """Until the server has applied the SDK's frames up to ``last_step``."""
    deadline = time.monotonic() + timeout
    ref = RunRef(run.entity, run.project, run.id)
    while time.monotonic() < deadline:
        rec = ui.store.get_run(ref)
        if rec is not None and rec.last_step >= last_step:
            return
        time.sleep(0.1)
    raise AssertionError(f"run {ref.path} did not reach step {last_step}")


def signed_in_pages(ui: Any, browser: Any) -> Iterator[Callable[..., Any]]:
    """``browse(user=None)``: a new page of ``user`` (default: the admin), signed in once
    per module (a sign-in costs a password hash). ``page.errors`` collects script errors."""
    contexts: dict[str, Any] = {}

    def open_page(user: dict[str, Any] | None = None) -> Any:
        user = user or ui.admin
        context = contexts.get(user["email"])
        if context is None:
            context = browser.new_context(base_url=ui.url, viewport={"width": 1400, "height": 900})
            context.set_default_timeout(15_000)
            contexts[user["email"]] = context
            sign_in(context.new_page(), ui.url, user["email"], user["password"])
        page = context.new_page()
        page.errors = []
        page.on("pageerror", lambda exc: page.errors.append(str(exc)))
        page.on(
            "console",
            lambda msg: page.errors.append(msg.text) if msg.type == "error" else None,
        )
        return page

    yield open_page
    for context in contexts.values():
        context.close()


@pytest.fixture(scope="module")
def browse(ui: Any, browser: Any) -> Iterator[Callable[..., Any]]:
    yield from signed_in_pages(ui, browser)


@pytest.fixture(scope="module")
def alice(ui: Any) -> dict[str, Any]:
    return ui.user("alice-run@example.com")


@pytest.fixture(scope="module")
def logged(ui: Any, alice: dict[str, Any]) -> Any:
    """A finished run with two prefixed keys, one plain key and a text key."""
    with ui.sdk(alice):
        run = stemma.init(
            project="run-page",
            name="baseline",
            config={"lr": 0.01, "model": {"depth": 4, "act": "gelu"}},
            tags=["resnet", "sweep-3"],
            notes="first try\nwith warmup",
            job_type="train",
            group="exp-1",
        )
        for s in range(500):
            run.log({"train/loss": 1.0 / (s + 1), "val/acc": s / 500, "epoch": s // 50})
        run.log({"phase": "done"})
        run.summary["best_acc"] = 0.998
        run.finish()
    return run


def test_charts_are_drawn_with_data(ui, browse, shot, logged) -> None:
    page = browse(ui.admin)
    page.goto(run_url(logged))
    assert page.title() == "baseline · run-page · Stemma"
    assert page.locator("h1").inner_text() == "baseline"
    crumbs = page.locator("nav.crumbs")
    assert (
        crumbs.get_by_role("link", name="run-page").get_attribute("href") == "/p/alice-run/run-page"
    )
    page.wait_for_function(ALL_DRAWN)
    keys = page.eval_on_selector_all("figure.chart", "fs => fs.map(f => f.dataset.key)")
    assert keys == ["epoch", "train/loss", "val/acc"], "numeric keys only, grouped by prefix"
    sections = page.eval_on_selector_all(
        "details.chart-section h2", "hs => hs.map(h => h.firstChild.textContent.trim())"
    )
    assert sections == ["Charts", "train", "val"]
    for key in keys:
        assert int(attr(page, key, "points")) > 200, key
        assert chart(page, key).evaluate(LINE_PIXELS) > 100, f"{key}: no line on the canvas"
    assert attr(page, "val/acc", "x-min") == "0" and attr(page, "val/acc", "x-max") == "499"
    # The readout under a chart follows the cursor.
    chart(page, "val/acc").locator(".u-over").hover()
    readout = chart(page, "val/acc").locator(".chart-readout")
    page.wait_for_function("(r) => r.textContent.startsWith('step')", arg=readout.element_handle())
    assert page.errors == []
    snap(shot, page, "run-charts")


def test_x_axis_smoothing_log_scale_and_zoom(ui, browse, logged) -> None:
    page = browse(ui.admin)
    page.goto(run_url(logged))
    page.wait_for_function(ALL_DRAWN)

    page.select_option("#x-axis", "_runtime")
    wait_attr(page, "val/acc", "x-kind", "runtime")
    assert float(attr(page, "val/acc", "x-max")) < 400, "runtime in seconds, not steps"
    page.select_option("#x-axis", "_timestamp")
    wait_attr(page, "val/acc", "x-kind", "time")
    assert float(attr(page, "val/acc", "x-min")) > 1.6e9, "wall time as unix seconds"
    page.select_option("#x-axis", "step")
    wait_attr(page, "val/acc", "x-kind", "step")

    before = chart(page, "train/loss").locator("canvas").evaluate("c => c.toDataURL()")
    page.locator("#smoothing").fill("0.9")
    wait_attr(page, "train/loss", "smoothing", "0.9")
    after = chart(page, "train/loss").locator("canvas").evaluate("c => c.toDataURL()")
    assert before != after, "smoothing did not change the drawn series"
    assert page.locator("#smoothing-value").inner_text() == "0.9"

    assert attr(page, "train/loss", "scale") == "linear"
    page.check("#log-scale")
    wait_attr(page, "train/loss", "scale", "log")
    page.uncheck("#log-scale")
    wait_attr(page, "train/loss", "scale", "linear")

    # Drag across the middle of val/acc: the range is fetched again, at full resolution.
    chart(page, "val/acc").scroll_into_view_if_needed()
    box = chart(page, "val/acc").locator(".u-over").bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] * 0.3, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.55, y, steps=6)
    page.mouse.up()
    wait_attr(page, "val/acc", "zoomed", "1")
    lo, hi = float(attr(page, "val/acc", "x-min")), float(attr(page, "val/acc", "x-max"))
    assert 100 < lo < hi < 350 and hi - lo < 200, (lo, hi)
    first, last = int(attr(page, "val/acc", "step-min")), int(attr(page, "val/acc", "step-max"))
    assert int(attr(page, "val/acc", "points")) == last - first + 1, "every point of the range"
    page.mouse.dblclick(box["x"] + box["width"] / 2, y)
    wait_attr(page, "val/acc", "zoomed", "0")
    assert attr(page, "val/acc", "x-max") == "499"
    assert page.errors == []


def test_overview_shows_config_summary_notes_and_system(ui, browse, shot, logged) -> None:
    page = browse(ui.admin)
    page.goto(run_url(logged) + "?tab=overview")
    assert page.locator(".tabs a[aria-current=page]").inner_text() == "Overview"
    config = page.locator("section[aria-labelledby=config-h] table").inner_text()
    assert "model.depth" in config and "gelu" in config and "0.01" in config
    summary = page.locator("#summary-table").inner_text()
    assert "best_acc" in summary and "0.998" in summary and "_step" not in summary
    assert "first try\nwith warmup" in page.locator(".notes").inner_text()
    system = page.locator("section[aria-labelledby=system-h]").inner_text()
    assert "python" in system and "host" in system
    facts = page.locator("dl.facts").inner_text()
    assert "train" in facts and "exp-1" in facts and "alice-run" in facts
    assert page.locator(".run-tags .tag").all_inner_texts() == ["resnet", "sweep-3"]
    snap(shot, page, "run-overview")
    page.goto(run_url(logged) + "?tab=artifacts")
    assert page.locator(".empty").count() == 2
    assert page.errors == []


def test_artifacts_tab_links_inputs_and_outputs(ui, browse, shot, alice, tmp_path) -> None:
    data = tmp_path / "data.csv"
    data.write_text("a,b\n1,2\n")
    with ui.sdk(alice):
        producer = stemma.init(project="run-arts", name="producer")
        producer.log_artifact(data, name="dataset", type="dataset", aliases=["best"])
        producer.finish()
        consumer = stemma.init(project="run-arts", name="consumer")
        consumer.use_artifact("dataset:latest")
        model = tmp_path / "model.bin"
        model.write_bytes(b"weights")
        consumer.log_artifact(model, name="model", type="model")
        consumer.finish()
    page = browse(alice)
    page.goto(run_url(consumer) + "?tab=artifacts")
    used = page.locator("section[aria-labelledby=used-h]")
    link = used.get_by_role("link", name="dataset:v0")
    assert link.get_attribute("href") == "/p/alice-run/run-arts/artifacts/dataset/v0"
    assert "best" in used.inner_text()
    logged_out = page.locator("section[aria-labelledby=logged-h]")
    href = logged_out.get_by_role("link", name="model:v0").get_attribute("href")
    assert href == "/p/alice-run/run-arts/artifacts/model/v0"
    assert "2" in page.locator(".tabs a[aria-current=page] .count").inner_text()
    assert page.errors == []
    snap(shot, page, "run-artifacts")


def test_members_edit_viewers_cannot(ui, browse, shot, alice) -> None:
    bob = ui.user("bob-run@example.com")
    vic = ui.user("vic-run@example.com")
    as_alice = as_user(ui.store, alice["username"])
    as_alice.create_team("run-team")
    as_alice.add_member("run-team", bob["email"], "member")
    as_alice.add_member("run-team", vic["email"], "viewer")
    with ui.sdk(alice):
        run = stemma.init(entity="run-team", project="shared", name="team-run", tags=["old"])
        run.log({"loss": 1.0})
        run.finish()
    ref = RunRef("run-team", "shared", run.id)

    page = browse(bob)
    page.goto(run_url(run))
    page.get_by_text("Edit", exact=True).click()
    page.fill("#edit-name", "renamed run")
    page.fill("#edit-tags", "new, baseline ,new")
    page.fill("#edit-notes", "bob was here")
    page.get_by_role("button", name="Save").click()
    page.wait_for_url(f"**{run_url(run)}")
    assert page.locator(".flash").inner_text() == "Run updated."
    assert page.locator("h1").inner_text() == "renamed run"
    rec = ui.store.get_run(ref)
    assert (rec.name, rec.tags, rec.notes) == ("renamed run", ["new", "baseline"], "bob was here")

    # A bad value is shown in the form, which keeps what was typed.
    page.get_by_text("Edit", exact=True).click()
    page.fill("#edit-tags", "x" * 200)
    page.get_by_role("button", name="Save").click()
    assert page.locator(".run-edit .error").is_visible()
    assert page.locator("#edit-tags").input_value() == "x" * 200
    assert ui.store.get_run(ref).tags == ["new", "baseline"]

    viewer = browse(vic)
    viewer.goto(run_url(run))
    assert viewer.locator("h1").inner_text() == "renamed run"
    assert viewer.locator(".run-edit").count() == 0, "a viewer sees no edit controls"
    assert viewer.locator("form[action$='/edit']").count() == 0
    status = viewer.evaluate(
        """async (url) => {
          const body = new URLSearchParams({
            csrf_token: document.querySelector('meta[name=csrf-token]').content,
            notes: 'forged', name: 'forged'});
          const r = await fetch(url, {method: 'POST', body, headers: {accept: 'text/html'}});
          return r.status;
        }""",
        run_url(run) + "/edit",
    )
    assert status == 403
    assert ui.store.get_run(ref).notes == "bob was here"
    snap(shot, viewer, "run-viewer")


def test_live_run_grows_then_stops(ui, browse, alice) -> None:
    with ui.sdk(alice):
        run = stemma.init(project="run-live", name="live")
        for s in range(50):
            run.log({"loss": 1.0 / (s + 1)})
        wait_stored(ui, run, 49)
        page = browse(alice)
        page.goto(run_url(run))
        assert page.locator("#run-state").inner_text() == "running"
        wait_attr(page, "loss", "points", "50")
        for s in range(50, 120):
            run.log({"loss": 1.0 / (s + 1), "acc": s / 120})
        wait_stored(ui, run, 119)
        wait_attr(page, "loss", "points", "120")  # the next poll (every 5 s) appends
        page.wait_for_selector("figure.chart[data-key='acc'][data-drawn='1']")
        assert page.locator("#run-live").inner_text() == "● live"
        run.finish()
    page.wait_for_function("() => document.body.dataset.live === 'stopped'", timeout=20_000)
    assert page.locator("#run-state").inner_text() == "finished"
    assert page.errors == []


def test_user_text_is_shown_as_text(ui, browse, shot, alice) -> None:
    with ui.sdk(alice):
        run = stemma.init(
            project="run-xss",
            name=XSS_IMG,
            tags=[XSS_SCRIPT],
            notes=XSS_SCRIPT + XSS_IMG,
            config={"payload": XSS_IMG, XSS_SCRIPT: 1},
        )
        run.log({XSS_IMG: 1.0, "ok": 2.0})
        run.log({XSS_IMG: 2.0, "ok": 3.0})
        run.finish()
    page = browse(alice)
    for tab in ("charts", "overview", "media", "artifacts"):
        page.goto(run_url(run) + f"?tab={tab}")
        if tab == "charts":
            page.wait_for_function(ALL_DRAWN)
        assert page.locator("h1").inner_text() == XSS_IMG
        assert page.evaluate("window.__xss") is None, tab
    assert page.locator(".run-tags .tag").inner_text() == XSS_SCRIPT
    page.goto(run_url(run) + "?tab=overview")
    assert XSS_IMG in page.locator("section[aria-labelledby=config-h]").inner_text()
    assert page.title() == f"{XSS_IMG} · run-xss · Stemma"
    page.goto(f"/p/{run.entity}/run-xss/compare?runs={run.id}")
    page.wait_for_function(ALL_DRAWN)
    assert page.evaluate("window.__xss") is None
    assert page.errors == []


def test_missing_chart_library_says_run_make_ui(ui, browse, logged) -> None:
    page = browse(ui.admin)
    page.route("**/vendor/uPlot.iife.min.js", lambda route: route.fulfill(status=404, body=""))
    page.goto(run_url(logged))
    alert = page.locator("#charts [role=alert]")
    assert "make ui" in alert.inner_text()
    assert page.locator("canvas").count() == 0


def test_unknown_run_is_a_404_page(ui, browse, logged) -> None:
    page = browse(ui.admin)
    response = page.goto(f"/p/{logged.entity}/run-page/r/nope")
    assert response.status == 404
    assert page.locator(".error").is_visible()
    outsider = ui.user("outsider-run@example.com")
    for path in (run_url(logged), f"/p/{logged.entity}/run-page/compare?runs={logged.id}"):
        r = httpx.get(
            ui.url + path,
            headers={"authorization": f"Bearer {outsider['key']}", "accept": "text/html"},
        )
        assert r.status_code == 404, f"{path}: a private run must look absent"
        assert "baseline" not in r.text


def test_media_of_every_kind(ui, browse, shot, alice) -> None:
    import numpy as np

    html = (
        "<p id=hello>hello from html</p>"
        "<script>document.body.setAttribute('data-ran', '1'); parent.__xss = 1;</script>"
    )
    pixels = (np.arange(32 * 48 * 3) % 255).astype("uint8").reshape(32, 48, 3)
    with ui.sdk(alice):
        run = stemma.init(project="run-media", name="media")
        for step in range(3):
            run.log(
                {"samples": stemma.Image(pixels + step * 20, caption=f"sample {step}")}, step=step
            )
        run.log(
            {
                "grid": [stemma.Image(pixels, caption="left"), stemma.Image(pixels[::-1])],
                "report": stemma.Html(html),
                "fig": stemma.Plotly(
                    {"data": [{"type": "scatter", "x": [1, 2, 3], "y": [3, 1, 2]}], "layout": {}}
                ),
                "preds": stemma.Table(
                    columns=["id", "label", "image"],
                    data=[[1, XSS_IMG, stemma.Image(pixels)], [2, "dog", None]],
                ),
            },
            step=3,
        )
        run.finish()
    page = browse(alice)
    page.goto(run_url(run) + "?tab=overview")  # other tabs count the media, not load them
    assert page.locator(".tabs a", has_text="Media").locator(".count").inner_text() == "7"
    assert page.locator(".media-key").count() == 0
    page.goto(run_url(run) + "?tab=media")
    assert page.locator(".tabs a[aria-current=page] .count").inner_text() == "7"
    page.wait_for_function(
        "() => Array.from(document.querySelectorAll('.media-key')).every(s => s.dataset.rendered)"
    )
    section = page.locator(".media-key", has=page.locator("h2", has_text="samples"))
    img = section.locator(".media-body img")
    page.wait_for_function(
        "(img) => img.complete && img.naturalWidth > 0", arg=img.element_handle()
    )
    assert img.evaluate("i => i.naturalWidth") == 48
    assert section.locator("figcaption").inner_text() == "sample 2"
    section.locator(".media-step").fill("0")
    page.wait_for_function(
        "(s) => s.dataset.step === '0' && s.querySelector('figcaption').textContent === 'sample 0'",
        arg=section.element_handle(),
    )
    grid = page.locator(".media-key", has=page.locator("h2", has_text="grid")).locator("img")
    assert grid.count() == 2
    frame_el = page.locator("iframe.html-media")
    assert frame_el.get_attribute("sandbox") == ""
    frame = page.frame_locator("iframe.html-media")
    assert frame.locator("#hello").inner_text() == "hello from html"
    assert frame.locator("body").get_attribute("data-ran") is None, "script ran in the iframe"
    page.wait_for_selector(".plotly-media svg.main-svg")
    table = page.locator(".media-table table")
    assert table.locator("th").all_inner_texts() == ["id", "label", "image"]
    assert table.locator("tbody tr").first.locator("td").nth(1).inner_text() == XSS_IMG
    cell_img = table.locator("tbody img")
    page.wait_for_function("(i) => i.complete && i.naturalWidth > 0", arg=cell_img.element_handle())
    assert page.evaluate("window.__xss") is None
    # The one console error is the browser refusing the logged HTML's script: the point.
    assert [e for e in page.errors if "frame is sandboxed" not in e] == []
    snap(shot, page, "run-media")


def test_twenty_keys_of_100k_steps_all_drawn(ui, browse, alice) -> None:
    """20 keys x 100,000 steps (and system metrics): every chart drawn from a downsample.
    How fast is bench/ui.py's business (no timed assertions in tests)."""
    store = as_user(ui.store, alice["username"])
    ref = RunRef(alice["username"], "run-big", "big")
    now = time.time()
    keys = [f"{'train' if i < 10 else 'val'}/metric{i:02d}" for i in range(20)]
    rows = [
        (s, now + s * 0.01, s * 0.01, {k: (s % (100 + i)) / (s + 1.0) for i, k in enumerate(keys)})
        for s in range(100_000)
    ]
    system = [(i, now + i * 10, i * 10.0, {"system/cpu": 50.0 + i % 7}) for i in range(100)]
    events = [
        {"t": "run", "name": "big", "config": {}, "tags": [], "created_at": now},
        encode_rows(rows) | {"t": "history"},
        encode_rows(system) | {"t": "history", "stream": "system"},
        {"t": "finish", "state": "finished", "exit_code": 0, "at": now},
    ]
    store.apply(ref, "spool-big", 0, 1, events)
    page = browse(alice)
    page.set_viewport_size({"width": 1400, "height": 3000})  # every chart in view
    page.goto("/p/alice-run/run-big/r/big")
    page.wait_for_function(ALL_DRAWN)
    points = page.eval_on_selector_all("figure.chart", "fs => fs.map(f => +f.dataset.points)")
    assert len(points) == 21 and min(points[:20]) > 200
    assert max(points[:20]) <= 5_000, "charts must draw a downsample, not 100,000 points"
    # System metrics come last, drawn against the time since the run started.
    assert page.locator("details.chart-section h2").last.inner_text().startswith("system")
    assert attr(page, "system/cpu", "points") == "100"
    assert attr(page, "system/cpu", "x-kind") == "runtime"
    assert attr(page, "system/cpu", "x-max") == "990"
    assert page.errors == []

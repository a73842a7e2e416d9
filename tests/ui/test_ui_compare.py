"""The compare page: one chart per key with one line per run, run toggles, smoothing,
log scale, zoom, key and column pickers, and many runs drawn fast."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

import pytest

from stemma.wire.history import encode_rows
from stemma.wire.records import RunRef
from tests.fixtures.accounts import as_user
from tests.ui.test_ui_run import (
    ALL_DRAWN,
    attr,
    chart,
    signed_in_pages,
    snap,
    wait_attr,
)

pytestmark = pytest.mark.sqlite_only

# Coloured (not grey: axes and grid are grey) pixels on a chart's canvas, and how many
# distinct colours they have (coarsely): the runs' lines.
COLOURS = """(fig) => {
  const c = fig.querySelector('canvas');
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  const seen = new Set();
  let n = 0;
  for (let i = 0; i < d.length; i += 4) {
    const [r, g, b, a] = [d[i], d[i + 1], d[i + 2], d[i + 3]];
    if (a < 200 || Math.max(r, g, b) - Math.min(r, g, b) < 40) continue;
    n++;
    seen.add((r >> 4) + ',' + (g >> 4) + ',' + (b >> 4));
  }
  return [n, seen.size];
}"""


def log_runs(
    ui: Any,
    user: dict[str, Any],
    project: str,
    n: int,
    steps: int,
    extra: dict[int, str] | None = None,
) -> list[str]:
    """``n`` finished runs straight through the store (fast): train/loss and val/acc at
    ``steps`` steps, config lr (differs) and bs (the same); run ``i`` in ``extra`` also
    logs the key ``extra[i]``. Returns the run ids, oldest first."""
    store = as_user(ui.store, user["username"])
    now = time.time()
    ids = []
    for i in range(n):
        run_id = f"r{i:04d}"
        rows = []
        for s in range(steps):
            row = {
                "train/loss": (1 + i / n) / (s + 1),
                "val/acc": (s / steps) * (0.5 + i / (2 * n)),
            }
            if extra and i in extra:
                row[extra[i]] = float(s)
            rows.append((s, now + s, float(s), row))
        events = [
            {
                "t": "run",
                "name": f"run-{i}",
                "config": {"lr": 0.01 * (i + 1), "bs": 32},
                "tags": [],
                "created_at": now + i,
            },
            encode_rows(rows) | {"t": "history"},
            {"t": "finish", "state": "finished", "exit_code": 0, "at": now + i},
        ]
        store.apply(RunRef(user["username"], project, run_id), f"spool-{run_id}", 0, 1, events)
        ids.append(run_id)
    return ids


@pytest.fixture(scope="module")
def browse(ui: Any, browser: Any) -> Iterator[Callable[..., Any]]:
    yield from signed_in_pages(ui, browser)


@pytest.fixture(scope="module")
def carol(ui: Any) -> dict[str, Any]:
    return ui.user("carol-compare@example.com")


@pytest.fixture(scope="module")
def twenty(ui: Any, carol: dict[str, Any]) -> list[str]:
    return log_runs(ui, carol, "cmp", 20, 200, extra={3: "only-one"})


def compare_url(ids: list[str], **params: str) -> str:
    query = "&".join(f"{k}={quote(v)}" for k, v in params.items())
    return "/p/carol-compare/cmp/compare?runs=" + ",".join(ids) + (f"&{query}" if query else "")


def test_twenty_runs_one_line_each(ui, browse, shot, carol, twenty) -> None:
    page = browse(carol)
    page.goto(compare_url(twenty))
    assert page.title() == "Compare 20 runs · cmp · Stemma"
    assert page.locator("h1").inner_text() == "Compare 20 runs"
    page.wait_for_function(ALL_DRAWN)
    keys = page.eval_on_selector_all("figure.chart", "fs => fs.map(f => f.dataset.key)")
    assert keys == ["train/loss", "val/acc"], "the keys every run shares"
    for key in keys:
        assert attr(page, key, "series") == "20"
        assert int(attr(page, key, "points")) == 20 * 200
        pixels, _ = chart(page, key).evaluate(COLOURS)
        assert pixels > 500, f"{key}: nothing drawn"
    assert chart(page, "val/acc").evaluate(COLOURS)[1] >= 10, "one colour per run"

    # Runs table: every run, config columns that differ (lr, not bs), summary values.
    rows = page.locator("#compare-table tbody tr")
    assert rows.count() == 20
    head = page.locator("#compare-table thead").inner_text()
    assert "lr" in head and "bs" not in head and "val/acc" in head
    assert rows.first.get_by_role("link", name="run-0").get_attribute("href") == (
        "/p/carol-compare/cmp/r/r0000"
    )

    # The legend switches runs off and on in every chart.
    page.locator("#run-legend input[data-index='0']").uncheck()
    wait_attr(page, "val/acc", "series", "19")
    assert attr(page, "train/loss", "series") == "19"
    page.get_by_role("button", name="Hide all").click()
    wait_attr(page, "val/acc", "series", "0")
    page.get_by_role("button", name="Show all").click()
    wait_attr(page, "val/acc", "series", "20")
    assert page.errors == []
    snap(shot, page, "compare")


def test_smoothing_log_scale_and_zoom(ui, browse, carol, twenty) -> None:
    page = browse(carol)
    page.goto(compare_url(twenty))
    page.wait_for_function(ALL_DRAWN)
    canvas = chart(page, "train/loss").locator("canvas")
    before = canvas.evaluate("c => c.toDataURL()")
    page.locator("#smoothing").fill("0.8")
    wait_attr(page, "train/loss", "smoothing", "0.8")
    assert canvas.evaluate("c => c.toDataURL()") != before
    page.check("#log-scale")
    wait_attr(page, "train/loss", "scale", "log")
    assert attr(page, "train/loss", "series") == "20"

    box = chart(page, "val/acc").locator(".u-over").bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] * 0.2, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.5, y, steps=5)
    page.mouse.up()
    wait_attr(page, "val/acc", "zoomed", "1")
    lo, hi = float(attr(page, "val/acc", "x-min")), float(attr(page, "val/acc", "x-max"))
    assert 20 < lo < hi < 120, (lo, hi)
    page.mouse.dblclick(box["x"] + box["width"] / 2, y)
    wait_attr(page, "val/acc", "zoomed", "0")
    assert float(attr(page, "val/acc", "x-max")) == 199
    assert page.errors == []


def test_key_and_column_pickers(ui, browse, carol, twenty) -> None:
    page = browse(carol)
    page.goto(compare_url(twenty))
    page.get_by_text("Keys (2 of 3)").click()
    page.get_by_role("checkbox", name="only-one 1/20").check()
    page.get_by_role("button", name="Show charts").click()
    page.wait_for_function(ALL_DRAWN)
    assert "keys=" in page.url
    keys = page.eval_on_selector_all("figure.chart", "fs => fs.map(f => f.dataset.key)")
    assert keys == ["only-one", "train/loss", "val/acc"]
    assert attr(page, "only-one", "series") == "1", "only run 3 logged it"

    page.get_by_text("Columns (1)").click()
    page.get_by_role("checkbox", name="bs").check()
    page.get_by_role("checkbox", name="lr").uncheck()
    page.get_by_role("button", name="Show columns").click()
    page.wait_for_function(ALL_DRAWN)
    head = page.locator("#compare-table thead").inner_text()
    assert "bs" in head and "lr" not in head
    assert "only-one" in head, "the chosen keys are kept"
    assert page.locator("#compare-table tbody tr").first.locator("td").nth(5).inner_text() == "32"
    assert page.errors == []


def test_filters_select_runs_and_unknown_ids_are_named(ui, browse, carol, twenty) -> None:
    page = browse(carol)
    filters = json.dumps({"config.lr": {"$gt": 0.155}})
    page.goto(f"/p/carol-compare/cmp/compare?filters={quote(filters)}")
    assert page.locator("h1").inner_text() == "Compare 5 runs"
    page.goto(compare_url([twenty[0], "nope"]))
    assert page.locator("h1").inner_text() == "Compare 1 run"
    assert "nope" in page.locator("main").inner_text()
    page.goto("/p/carol-compare/no-such-project/compare?runs=a")
    assert page.locator(".empty").is_visible()
    assert page.errors == []


def test_five_hundred_runs_all_drawn(ui, browse, carol) -> None:
    """500 runs x 1,000 steps: the visible charts drawn with every run (how fast is
    bench/ui.py's business)."""
    ids = log_runs(ui, carol, "cmp-big", 500, 1000)
    page = browse(carol)
    url = compare_url(ids).replace("/cmp/", "/cmp-big/")
    page.goto(url)
    page.wait_for_function(ALL_DRAWN)
    assert attr(page, "val/acc", "series") == "500"
    assert int(attr(page, "val/acc", "points")) >= 500 * 200
    assert page.errors == []

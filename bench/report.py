"""Reports at scale, measured in headless Chromium (Debian's, driven by Playwright).

What the issue asks (target under 2 s on this machine; the reference notes W&B's reports
"slow to render with 500+ runs", the UI timing out after about 30 s):

- a report with a PanelGrid of 4 LinePlots over 1,000 runs x 1,000 steps, one of them
  grouped by a config key with 10 values: time from the request to every chart drawn
  with data (``figure.report-panel[data-drawn]`` with ``data-points`` > 0 on all four,
  and ``<html data-report-drawn>``).

Also reported (not targets): the same report evaluated in-process (``evaluate()``, the
server's share of the page), ``stemma report export --format html`` of it, and that
file opened from disk with the network refused, until every chart is drawn.

Setup: the embedded store on SQLite behind ``stemma server`` on loopback with no
accounts (local mode, so no sign-in step is timed). Loading is not timed; every history
goes through the store's own write path (``apply``), exactly as the SDK stores it. Each
page is loaded ``--repeats`` times (default 5) after one warm-up, in a fresh browser
context each time (no HTTP cache carried over); the table shows the median and the
slowest.

Usage::

    .venv/bin/python bench/report.py            # full size (loading takes ~1 min)
    .venv/bin/python bench/report.py --quick    # 10x fewer runs
"""

from __future__ import annotations

import argparse
import contextlib
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from benchutil import ROOT, fmt_s, report_timings

sys.path.insert(0, str(ROOT))

RUNS = 1_000
STEPS = 1_000
GROUPS = 10
TARGET_S = 2.0
ENTITY, PROJECT = "bench", "report"
ARCHS = [f"arch-{i}" for i in range(GROUPS)]


# ------------------------------------------------------------------ loading


def load_project(store: Any, runs: int, steps: int) -> None:
    """``runs`` runs of ``steps`` steps of 4 keys each, through ``apply``; config.arch
    takes GROUPS values."""
    import numpy as np

    from stemma.wire.history import encode_rows
    from stemma.wire.records import RunRef

    rng = random.Random(11)
    now = time.time()
    s = np.arange(steps)
    for i in range(runs):
        run_id = f"r{i:05d}"
        arch = i % GROUPS
        decay = 100 + 40 * arch + rng.uniform(0, 200)
        loss = 2.5 * np.exp(-s / decay) + 0.05 * np.sin(s / 17.0) + 0.3 * rng.random()
        acc = 1 - loss / (loss.max() + 1e-9)
        cols = {"loss": loss, "acc": acc, "val/loss": loss * 1.1, "val/acc": acc * 0.97}
        rows = [
            (k, now + k * 0.01, k * 0.01, {n: float(v[k]) for n, v in cols.items()})
            for k in range(steps)
        ]
        events: list[dict[str, Any]] = [
            {
                "t": "run",
                "name": f"run-{i}",
                "config": {"arch": ARCHS[arch], "lr": 10 ** rng.uniform(-5, -2)},
            },
            encode_rows(rows) | {"t": "history"},
            {"t": "finish", "state": "finished", "exit_code": 0, "at": now},
        ]
        store.apply(RunRef(ENTITY, PROJECT, run_id), f"bench-{run_id}", 0, 1, events)
        if (i + 1) % 250 == 0:
            print(f"   {i + 1:,} runs loaded", flush=True)


def report_spec(runs: int) -> dict[str, Any]:
    """A PanelGrid of 4 LinePlots over every run (max_runs = the run count), one grouped
    by config.arch (10 groups: mean line and min-max band each)."""

    def line(y: str, title: str, groupby: str | None = None) -> dict[str, Any]:
        return {"type": "line_plot", "x": "_step", "y": [y], "title": title,
                "groupby": groupby, "max_runs": runs}  # fmt: skip

    return {
        "version": 1,
        "entity": ENTITY,
        "project": PROJECT,
        "title": f"{runs:,} runs",
        "description": "bench/report.py",
        "blocks": [
            {"type": "h1", "text": "Training"},
            {
                "type": "panel_grid",
                "panels": [
                    line("loss", "loss, every run"),
                    line("val/loss", "val/loss by architecture", "config.arch"),
                    line("acc", "acc, every run"),
                    line("val/acc", "val/acc, every run"),
                ],
            },
        ],
    }


# ------------------------------------------------------------------ measuring

ALL_DRAWN = """() => {
  const figs = [...document.querySelectorAll('figure.report-panel')];
  return document.documentElement.dataset.reportDrawn === '1' && figs.length === 4 &&
    figs.every(f => f.dataset.drawn === '1' && Number(f.dataset.points) > 0);
}"""

DRAWN = """() => [...document.querySelectorAll('figure.report-panel')].map(f => ({
  series: Number(f.dataset.series), points: Number(f.dataset.points),
  groups: f.dataset.groups ? Number(f.dataset.groups) : null}))"""


def timed_page(
    browser: Any, open_page: Callable[[Any], Any], repeats: int, offline: bool = False
) -> tuple[float, float, Any]:
    """(median, slowest) seconds of ``open_page(page)`` in fresh contexts; its last result."""
    times = []
    out = None
    for i in range(repeats + 1):
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        if offline:  # only the file itself (and its data: URIs) may load
            context.route(
                "**/*",
                lambda r: (
                    r.continue_() if r.request.url.startswith(("file:", "data:")) else r.abort()
                ),
            )
        try:
            page = context.new_page()
            t0 = time.perf_counter()
            out = open_page(page)
            elapsed = time.perf_counter() - t0
        finally:
            context.close()
        if i:  # the first load warms the server's and the OS's caches
            times.append(elapsed)
    return statistics.median(times), max(times), out


def open_report(url: str) -> Callable[[Any], Any]:
    def open_page(page: Any) -> Any:
        page.goto(url, wait_until="commit")
        page.wait_for_function(ALL_DRAWN, timeout=60_000, polling="raf")
        return page.evaluate(DRAWN)

    return open_page


def timed(fn: Callable[[], Any], repeats: int) -> tuple[float, float, Any]:
    times = []
    out = None
    for i in range(repeats + 1):
        t0 = time.perf_counter()
        out = fn()
        if i:
            times.append(time.perf_counter() - t0)
    return statistics.median(times), max(times), out


def check_drawn(drawn: list[dict[str, Any]], runs: int) -> None:
    series = [d["series"] for d in drawn]
    if series != [runs, GROUPS, runs, runs] or drawn[1]["groups"] != GROUPS:
        raise SystemExit(f"unexpected charts: {drawn}")
    if any(d["points"] <= 0 for d in drawn):
        raise SystemExit(f"a chart without points: {drawn}")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="10x fewer runs")
    ap.add_argument("--no-save", action="store_true")
    args = ap.parse_args(argv)
    runs = RUNS // (10 if args.quick else 1)
    sizes = {"runs": runs, "steps": STEPS, "line_plots": 4, "groups": GROUPS}

    from playwright.sync_api import sync_playwright

    from stemma.backend.embedded import EmbeddedBackend
    from stemma.report.evaluate import evaluate
    from stemma.report.export import export_report, write_text
    from stemma.settings import Settings
    from tests.fixtures.browser import launch
    from tests.fixtures.server import ServerProcess

    rows: list[dict[str, Any]] = []
    with contextlib.ExitStack() as stack:
        work = Path(tempfile.mkdtemp(prefix="stemma-bench-report-"))
        stack.callback(shutil.rmtree, work, True)
        store = EmbeddedBackend(Settings(dir=work / "store", silent=True, system_metrics=False))
        t0 = time.perf_counter()
        load_project(store, runs, STEPS)
        spec = report_spec(runs)
        report_id = store.save_report(ENTITY, PROJECT, spec)["id"]
        print(f"   loaded in {fmt_s(time.perf_counter() - t0)}", flush=True)

        # The server's share: evaluate() in-process, and the export of the same report.
        ev_median, ev_max, data = timed(lambda: evaluate(store, spec), args.repeats)
        panels = data["blocks"][1]["data"]["panels"]
        points = sum(p["points"] for p in panels)
        target = work / "report.html"
        ex_median, ex_max, _ = timed(
            lambda: write_text(target, export_report(store, report_id, "html")), args.repeats
        )
        size = target.stat().st_size
        store.close()

        server = ServerProcess(work / "store")
        stack.callback(server.stop)
        server.start()
        pw = stack.enter_context(sync_playwright())
        browser = launch(pw)
        stack.callback(browser.close)
        url = f"{server.url}/p/{ENTITY}/{PROJECT}/reports/{report_id}"
        what = (
            f"report page, 4 line plots x {runs:,} runs x {STEPS:,} steps "
            f"(one grouped: {GROUPS} groups): request to all charts drawn"
        )
        median, worst, drawn = timed_page(browser, open_report(url), args.repeats)
        check_drawn(drawn, runs)
        rows.append({"what": what, "median_s": median, "max_s": worst, "target_s": TARGET_S})
        print(f"   {fmt_s(median):>9}  {'ok' if median <= TARGET_S else 'MISS':4}  {what}")

        rows.append(
            {
                "what": f"evaluate() in-process, the server's part ({points:,} points)",
                "median_s": ev_median,
                "max_s": ev_max,
                "target_s": None,
            }
        )
        rows.append(
            {
                "what": f"export --format html (a {size / 1e6:.1f} MB file)",
                "median_s": ex_median,
                "max_s": ex_max,
                "target_s": None,
            }
        )
        off_median, off_max, drawn = timed_page(
            browser, open_report(target.as_uri()), args.repeats, offline=True
        )
        check_drawn(drawn, runs)
        rows.append(
            {
                "what": "the exported file opened offline: all charts drawn",
                "median_s": off_median,
                "max_s": off_max,
                "target_s": None,
            }
        )

    return report_timings(
        "report",
        "Reports in headless Chromium",
        rows,
        "what",
        sizes,
        save=not args.no_save and not args.quick,
    )


if __name__ == "__main__":
    sys.exit(main())

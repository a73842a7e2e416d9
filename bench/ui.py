"""The web UI at scale, measured in headless Chromium (Debian's, driven by Playwright).

What the issue asks (each under 1.5 s on this machine; the reference notes W&B's UI
timing out at about 30 s with 500+ runs):

- a project of 5,000 runs (each 1,000 steps of 5 keys): time from navigation to a usable
  runs table (rows drawn, the page's script ready);
- a chart of 500 selected runs of that project (one key), drawn with data;
- the run page of a run with 20 keys x 100,000 steps: every chart on the first screen
  drawn with data, and (reported too) all 20 after scrolling to the end.

Setup: the embedded store on SQLite behind ``stemma server`` on loopback with no accounts
(local mode, so no sign-in step is timed). Loading is not timed; every history goes
through the store's own write path (``apply``), exactly as the SDK stores it. Each page
is loaded ``--repeats`` times (default 5) after one warm-up, in a fresh browser context
each time (no HTTP cache carried over); the table shows the median and the slowest.

Usage::

    .venv/bin/python bench/ui.py            # full sizes (loading takes a few minutes)
    .venv/bin/python bench/ui.py --quick    # 10x fewer runs and steps
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

RUNS = 5_000
STEPS = 1_000
KEYS = ("loss", "acc", "val/loss", "val/acc", "lr")
COMPARE_RUNS = 500
WIDE_KEYS = 20
WIDE_STEPS = 100_000
TARGET_S = 1.5
ENTITY, PROJECT = "bench", "ui"


# ------------------------------------------------------------------ loading


def load_project(store: Any, runs: int, steps: int) -> list[str]:
    """``runs`` runs of ``steps`` steps of KEYS each, through ``apply``; their ids."""
    import numpy as np

    from stemma.wire.history import encode_rows
    from stemma.wire.records import RunRef

    rng = random.Random(7)
    ids = []
    now = time.time()
    step_idx = np.arange(steps)
    for i in range(runs):
        run_id = f"u{i:05d}"
        ids.append(run_id)
        lr = 10 ** rng.uniform(-5, -1)
        decay = rng.uniform(200, 2000)
        loss = 2.5 * np.exp(-step_idx / decay) + 0.05 * np.sin(step_idx / 17.0) + rng.random()
        acc = 1 - loss / (loss.max() + 1e-9)
        cols = {
            "loss": loss,
            "acc": acc,
            "val/loss": loss * 1.1,
            "val/acc": acc * 0.97,
            "lr": lr * np.exp(-step_idx / steps),
        }
        rows = [
            (s, now + s * 0.01, s * 0.01, {k: float(v[s]) for k, v in cols.items()})
            for s in range(steps)
        ]
        events: list[dict[str, Any]] = [
            {
                "t": "run",
                "name": f"sweep-{i}",
                "job_type": rng.choice(("train", "eval")),
                "group": f"sweep-{i % 40}",
                "tags": rng.sample(["baseline", "lr-sweep", "ablation", "prod"], 2),
                "config": {
                    "lr": lr,
                    "batch_size": rng.choice((32, 64, 128)),
                    "optimizer": rng.choice(("adam", "sgd", "adamw")),
                },
            },
            encode_rows(rows) | {"t": "history"},
            {"t": "finish", "state": "finished", "exit_code": 0, "at": now},
        ]
        store.apply(RunRef(ENTITY, PROJECT, run_id), f"bench-{run_id}", 0, 1, events)
        if (i + 1) % 500 == 0:
            print(f"   {i + 1:,} runs loaded", flush=True)
    return ids


def load_wide_run(store: Any, keys: int, steps: int) -> str:
    """One run with ``keys`` keys x ``steps`` steps, in frames of 10,000 rows."""
    import numpy as np

    from stemma.wire.history import encode_rows
    from stemma.wire.records import RunRef

    run_id = "wide"
    ref = RunRef(ENTITY, PROJECT, run_id)
    names = [f"metric/k{k:02d}" for k in range(keys)]
    rng = np.random.default_rng(3)
    series = np.cumsum(rng.normal(0, 0.01, (keys, steps)), axis=1) + 1.0
    now = time.time()
    batch = 10_000
    for offset, start in enumerate(range(0, steps, batch)):
        stop = min(steps, start + batch)
        rows = [
            (s, now + s * 0.01, s * 0.01, {n: float(series[j, s]) for j, n in enumerate(names)})
            for s in range(start, stop)
        ]
        events: list[dict[str, Any]] = []
        if offset == 0:
            events.append({"t": "run", "name": "wide-run", "config": {"keys": keys}})
        events.append(encode_rows(rows) | {"t": "history"})
        if stop >= steps:
            events.append({"t": "finish", "state": "finished", "exit_code": 0, "at": now})
        store.apply(ref, "bench-wide", offset, offset + 1, events)
    return run_id


# ------------------------------------------------------------------ measuring


def timed_page(
    browser: Any, base_url: str, open_page: Callable[[Any], Any], repeats: int
) -> tuple[float, float, Any]:
    """(median, slowest) seconds of ``open_page(page)`` in fresh contexts; its last result."""
    times = []
    out = None
    for i in range(repeats + 1):
        context = browser.new_context(base_url=base_url, viewport={"width": 1400, "height": 900})
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


def runs_table(page: Any) -> int:
    page.goto(f"/p/{ENTITY}/{PROJECT}", wait_until="domcontentloaded")
    page.wait_for_selector("table.runs[data-ready] tbody tr")
    return page.locator("table.runs tbody tr").count()


def compare_chart(run_ids: list[str]) -> Callable[[Any], int]:
    def open_page(page: Any) -> int:
        page.goto(
            f"/p/{ENTITY}/{PROJECT}/compare?runs={','.join(run_ids)}&keys=loss",
            wait_until="domcontentloaded",
        )
        page.wait_for_selector(
            "figure.chart[data-drawn='1']:not([data-points='0'])", timeout=60_000
        )
        return int(page.locator("figure.chart").first.get_attribute("data-series") or 0)

    return open_page


def _drawn(page: Any) -> int:
    return int(page.evaluate("document.querySelectorAll(\"figure.chart[data-drawn='1']\").length"))


def wide_first_screen(page: Any) -> int:
    page.goto(f"/p/{ENTITY}/{PROJECT}/r/wide", wait_until="domcontentloaded")
    page.wait_for_selector("figure.chart[data-drawn='1']", timeout=60_000)
    # Every chart whose box is on the first screen has drawn its data.
    page.wait_for_function(
        """() => [...document.querySelectorAll('figure.chart')]
            .filter(c => c.getBoundingClientRect().top < innerHeight)
            .every(c => c.dataset.drawn === '1' && Number(c.dataset.points) > 0)""",
        timeout=60_000,
    )
    return _drawn(page)


def wide_all(page: Any) -> int:
    wide_first_screen(page)
    for _ in range(40):
        page.mouse.wheel(0, 2000)
        if _drawn(page) >= WIDE_KEYS:
            break
        page.wait_for_timeout(20)
    page.wait_for_function(
        f"document.querySelectorAll(\"figure.chart[data-drawn='1']\").length >= {WIDE_KEYS}",
        timeout=60_000,
    )
    return _drawn(page)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="10x fewer runs and steps")
    ap.add_argument("--no-save", action="store_true")
    args = ap.parse_args(argv)
    scale = 10 if args.quick else 1
    sizes = {
        "runs": RUNS // scale,
        "steps": STEPS,
        "compare": min(COMPARE_RUNS, RUNS // scale),
        "wide_keys": WIDE_KEYS,
        "wide_steps": WIDE_STEPS // scale,
    }

    from playwright.sync_api import sync_playwright

    from stemma.backend.embedded import EmbeddedBackend
    from stemma.settings import Settings
    from tests.fixtures.browser import launch
    from tests.fixtures.server import ServerProcess

    rows: list[dict[str, Any]] = []
    with contextlib.ExitStack() as stack:
        work = Path(tempfile.mkdtemp(prefix="stemma-bench-ui-"))
        stack.callback(shutil.rmtree, work, True)
        store = EmbeddedBackend(Settings(dir=work / "store", silent=True, system_metrics=False))
        t0 = time.perf_counter()
        ids = load_project(store, sizes["runs"], sizes["steps"])
        load_wide_run(store, sizes["wide_keys"], sizes["wide_steps"])
        store.close()
        print(f"   loaded in {fmt_s(time.perf_counter() - t0)}", flush=True)
        server = ServerProcess(work / "store")
        stack.callback(server.stop)
        server.start()
        pw = stack.enter_context(sync_playwright())
        browser = launch(pw)
        stack.callback(browser.close)
        chosen = random.Random(1).sample(ids, sizes["compare"])
        pages: list[tuple[str, Callable[[Any], Any], Callable[[Any], bool]]] = [
            (
                f"runs table of a {sizes['runs']:,}-run project, usable",
                runs_table,
                lambda n: n > 0,
            ),
            (
                f"chart of {sizes['compare']} selected runs drawn (1 key, "
                f"{sizes['steps']:,} steps each)",
                compare_chart(chosen),
                lambda n: n == sizes["compare"],
            ),
            (
                f"run page, {sizes['wide_keys']} keys x {sizes['wide_steps']:,} steps: "
                "first screen of charts drawn",
                wide_first_screen,
                lambda n: n > 0,
            ),
            (
                f"the same run page: all {sizes['wide_keys']} charts drawn (scrolled)",
                wide_all,
                lambda n: n >= sizes["wide_keys"],
            ),
        ]
        for what, open_page, check in pages:
            median, worst, result = timed_page(browser, server.url, open_page, args.repeats)
            if not check(result):
                raise SystemExit(f"{what}: unexpected result {result!r}")
            rows.append({"page": what, "median_s": median, "max_s": worst, "target_s": TARGET_S})
            mark = "ok" if median <= TARGET_S else "MISS"
            print(f"   {fmt_s(median):>9}  {mark:4}  {what}", flush=True)

    return report_timings(
        "ui",
        "Web UI in headless Chromium",
        rows,
        "page",
        sizes,
        save=not args.no_save and not args.quick,
        extra=("vs W&B's ~30 s", lambda r: f"{30.0 / r['median_s']:.0f}x"),
    )


if __name__ == "__main__":
    sys.exit(main())

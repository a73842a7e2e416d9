"""Queries at scale: listing, counting, filtering and ordering runs, and reading history.

The targets of the query API (issue 6): a project of 10,000 runs lists in well under a
second; a filtered, ordered first page out of 100,000 runs comes back in < 0.5 s; one
key's 1,000,000-row history reads whole in < 1 s, and a 1,000-point downsample of it
in < 50 ms; 1,000 runs' downsampled series come back in one call.

Setups (``--setups``):

- ``sqlite``: the embedded store on SQLite (what a laptop runs).
- ``pg``: the embedded store on PostgreSQL (a throwaway cluster, bench/ingest.py's).
- ``server-pg``: the same PostgreSQL store behind ``stemma server``, read over HTTP with
  ``stemma.Api`` (what a team runs: every call authenticated by an API key).

Loading is not timed. Runs are bulk-inserted straight into the ``runs`` table (100,000
runs through the SDK would take minutes and measure ingest, which bench/ingest.py
does); histories go through the store's own write path (``apply``), so they are stored
exactly as the SDK stores them. Each timed query runs ``--repeats`` times (default 5)
after one warm-up; the table shows the median and the slowest.

Usage::

    .venv/bin/python bench/query.py                  # all setups, full sizes (~3 min)
    .venv/bin/python bench/query.py --quick          # 10x smaller, SQLite only
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from benchutil import ROOT, cpu_model, fmt_s, markdown_table, print_table, save_results

sys.path.insert(0, str(ROOT))

BIG_RUNS = 100_000  # the project that is filtered, counted and ordered
MID_RUNS = 10_000  # the project that is listed whole and turned into a DataFrame
LONG_ROWS = 1_000_000  # one key of one run
MANY_RUNS = 1_000  # runs whose series are read in one call...
MANY_STEPS = 1_000  # ...each this long
SETUPS = ("sqlite", "pg", "server-pg")
OPTIMIZERS = ("adam", "sgd", "adamw", "lion")
TAGS = ("bert", "lr-sweep", "bug-fix", "baseline", "ablation", "prod")
STATES = ("finished", "finished", "finished", "failed", "crashed", "running")


# ------------------------------------------------------------------ loading


def _run_rows(project_id: int, n: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    t0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    rows = []
    for i in range(n):
        lr = round(10 ** rng.uniform(-5, -1), 8)
        acc = rng.random()
        config: dict[str, Any] = {
            "lr": lr,
            "batch_size": rng.choice((16, 32, 64, 128)),
            "optimizer": rng.choice(OPTIMIZERS),
            "model": {"layers": rng.randint(2, 48), "dropout": round(rng.random() / 2, 3)},
        }
        if rng.random() < 0.1:
            del config["batch_size"]  # missing values exist in real projects
        created = t0 + dt.timedelta(seconds=37 * i)
        rows.append(
            {
                "project_id": project_id,
                "run_id": f"r{seed}x{i:06d}",
                "name": f"run-{i}",
                "state": rng.choice(STATES),
                "job_type": rng.choice(("train", "eval", "preprocess")),
                "group_name": f"sweep-{i % 50}",
                "tags": rng.sample(TAGS, rng.randint(0, 3)),
                "notes": None,
                "config": config,
                "summary": {"acc": acc, "loss": 1 - acc, "val/acc": acc * 0.98, "_step": 999},
                "run_metadata": {},
                "username": rng.choice(("ada", "bob", "cyd", "dee")),
                "host": "bench",
                "created_at": created,
                "heartbeat_at": created,
                "finished_at": created,
                "exit_code": 0,
                "last_step": 999,
                "runtime": 60.0,
            }
        )
    return rows


def bulk_runs(engine: Any, entity: str, project: str, n: int, seed: int) -> None:
    from sqlalchemy import insert

    from stemma.service.runs import ensure_project
    from stemma.storage.database import write_tx
    from stemma.storage.models import runs

    with write_tx(engine) as conn:
        pid = ensure_project(conn, entity, project)
    for start in range(0, n, 5000):
        rows = _run_rows(pid, min(5000, n - start), seed * 1_000_000 + start)
        for k, r in enumerate(rows):
            r["run_id"] = f"r{start + k:06d}"
        with write_tx(engine) as conn:
            conn.execute(insert(runs), rows)


def log_history(backend: Any, entity: str, project: str, run_id: str, n: int) -> None:
    """One run with ``n`` steps of ``loss``, through the store's own write path."""
    import numpy as np

    from stemma.wire.history import encode_rows
    from stemma.wire.records import RunRef

    ref = RunRef(entity, project, run_id)
    now = time.time()
    events: list[dict[str, Any]] = [{"t": "run", "name": run_id, "config": {}, "tags": []}]
    batch = 50_000
    values = np.cumsum(np.random.default_rng(1).normal(0, 0.01, n)) + 5.0
    for offset, start in enumerate(range(0, n, batch)):
        rows = [
            (s, now + s * 1e-3, s * 1e-3, {"loss": float(values[s])})
            for s in range(start, min(n, start + batch))
        ]
        events.append(encode_rows(rows) | {"t": "history"})
        if start + batch >= n:
            events.append({"t": "finish", "state": "finished", "exit_code": 0, "at": now})
        backend.apply(ref, f"bench-{run_id}", offset, offset + 1, events)
        events = []


# ------------------------------------------------------------------ timing


def timed(fn: Callable[[], Any], repeats: int) -> tuple[float, float, Any]:
    """(median, slowest) seconds over ``repeats`` calls after one warm-up; last result."""
    out = fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), max(times), out


FILTER = {"$and": [{"config.lr": {"$gt": 0.01}}, {"state": "finished"}]}
FILTER_OR = {
    "$or": [
        {"tags": {"$in": ["prod"]}},
        {"config.model.layers": {"$gte": 40}},
        {"config.optimizer": {"$regex": "^adam"}, "summary_metrics.acc": {"$gt": 0.99}},
    ]
}


Check = Callable[[Any], bool]


def queries(
    api: Any, ent: str, sizes: dict[str, int]
) -> list[tuple[str, Callable[[], Any], float | None, Check]]:
    """(what, call, target seconds, check of the result) for one setup."""
    big, mid = f"{ent}/big", f"{ent}/mid"
    n_big, n_mid, n_long, n_many = sizes["big"], sizes["mid"], sizes["long"], sizes["many"]
    long_run = api.run(f"{ent}/hist/long")
    return [
        (
            f"list all {n_mid:,} runs of a project (pages of 1,000)",
            lambda: sum(1 for _ in api.runs(mid, per_page=1000)),
            1.0,
            lambda n: n == n_mid,
        ),
        (
            f"runs_df: {n_mid:,} runs as a DataFrame (config.* and summary.* columns)",
            lambda: api.runs_df(mid).shape,
            2.0,
            lambda shape: shape[0] == n_mid and shape[1] > 15,
        ),
        (f"len() of {n_big:,} runs", lambda: len(api.runs(big)), 0.5, lambda n: n == n_big),
        (
            f"filter {n_big:,} runs (config.lr > 0.01 and finished): first page of 50",
            lambda: api.runs(big, filters=FILTER, per_page=50)[:50],
            0.5,
            lambda page: (
                len(page) == 50
                and all(r.config["lr"] > 0.01 and r.state == "finished" for r in page)
            ),
        ),
        (
            f"the same filter over {n_big:,} runs: count",
            lambda: len(api.runs(big, filters=FILTER)),
            0.5,
            lambda n: 0 < n < n_big,
        ),
        (
            f"$or of tags, nested config and $regex over {n_big:,} runs: first page",
            lambda: api.runs(big, filters=FILTER_OR, per_page=50)[:50],
            0.5,
            lambda page: len(page) == 50,
        ),
        (
            f"order {n_big:,} runs by -summary_metrics.acc: first page of 50",
            lambda: [r.summary["acc"] for r in api.runs(big, order="-summary_metrics.acc")[:50]],
            0.5,
            lambda accs: len(accs) == 50 and accs == sorted(accs, reverse=True) and accs[0] > 0.99,
        ),
        (
            f"history of one key, {n_long:,} rows, whole (pandas)",
            lambda: len(long_run.history(keys=["loss"])),
            1.0,
            lambda n: n == n_long,
        ),
        (
            "the same history downsampled to 1,000 points (min/max kept)",
            lambda: len(long_run.history(keys=["loss"], samples=1000)),
            0.05,
            lambda n: 0 < n <= 1000,
        ),
        (
            f"{n_many:,} runs' series in one call, 200 points each",
            lambda: api.runs(f"{ent}/many", per_page=1000).histories(["loss"], samples=200),
            2.0,
            lambda df: df["run_id"].nunique() == n_many if "run_id" in df else len(df) > 0,
        ),
    ]


def bench_setup(
    setup: str, repeats: int, stack: contextlib.ExitStack, sizes: dict[str, int]
) -> list[dict[str, Any]]:
    import stemma
    from stemma.backend.embedded import EmbeddedBackend
    from stemma.settings import Settings

    work = Path(tempfile.mkdtemp(prefix=f"stemma-bench-query-{setup}-"))
    stack.callback(shutil.rmtree, work, True)
    db_url = None
    if setup != "sqlite":
        from ingest import PgCluster

        pg = PgCluster()
        stack.callback(pg.stop)
        pg.start()
        db_url = pg.url()
    settings = Settings(dir=work / "store", database_url=db_url, silent=True, system_metrics=False)
    store = EmbeddedBackend(settings)
    stack.callback(store.close)
    ent = "bench"
    t0 = time.perf_counter()
    bulk_runs(store.engine, ent, "big", sizes["big"], 1)
    bulk_runs(store.engine, ent, "mid", sizes["mid"], 2)
    log_history(store, ent, "hist", "long", sizes["long"])
    for i in range(sizes["many"]):
        log_history(store, ent, "many", f"m{i:04d}", sizes["many_steps"])
    with store.engine.begin() as conn:  # fresh statistics, as autovacuum would have
        from sqlalchemy import text

        conn.execute(text("ANALYZE"))
    print(f"   loaded in {fmt_s(time.perf_counter() - t0)}", flush=True)
    overrides: dict[str, Any] = {"dir": work / "store", "database_url": db_url}
    if setup == "server-pg":
        from tests.fixtures.server import ServerProcess

        _user, _pw, key = store.create_user_with_key("bench@example.com", is_admin=True)
        server = ServerProcess(work / "store", database_url=db_url)
        stack.callback(server.stop)
        server.start()
        overrides = {"dir": work / "client", "base_url": server.url, "api_key": key}
    api = stemma.Api(overrides)
    out = []
    for what, call, target, check in queries(api, ent, sizes):
        median, worst, result = timed(call, repeats)
        if not check(result):
            raise SystemExit(f"{setup}: {what}: wrong result {str(result)[:300]}")
        out.append(
            {
                "setup": setup,
                "query": what,
                "median_s": median,
                "max_s": worst,
                "target_s": target,
            }
        )
        mark = "" if target is None else ("ok" if median <= target else "MISS")
        print(f"   {fmt_s(median):>9}  {mark:4}  {what}", flush=True)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--setups", default=",".join(SETUPS), help="comma-separated subset")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="10x smaller, SQLite only")
    ap.add_argument("--no-save", action="store_true")
    args = ap.parse_args(argv)
    setups = ["sqlite"] if args.quick else args.setups.split(",")
    scale = 10 if args.quick else 1
    sizes = {
        "big": BIG_RUNS // scale,
        "mid": MID_RUNS // scale,
        "long": LONG_ROWS // scale,
        "many": MANY_RUNS // scale,
        "many_steps": MANY_STEPS,
    }
    rows: list[dict[str, Any]] = []
    with contextlib.ExitStack() as stack:
        for setup in setups:
            print(f"-- {setup}", flush=True)
            rows += bench_setup(setup, args.repeats, stack, sizes)
    headers = ["setup", "query", "median", "slowest", "target"]
    table = [
        [
            r["setup"],
            r["query"],
            fmt_s(r["median_s"]),
            fmt_s(r["max_s"]),
            "" if r["target_s"] is None else f"< {fmt_s(r['target_s'])}",
        ]
        for r in rows
    ]
    print_table("Queries", headers, table)
    missed = [r for r in rows if r["target_s"] is not None and r["median_s"] > r["target_s"]]
    for r in missed:
        print(f"  [MISS] {r['setup']}: {r['query']}: {fmt_s(r['median_s'])}")
    if not missed:
        print("  [PASS] every query within its target")
    print("\nmarkdown:\n")
    print(markdown_table(headers, table))
    if not args.no_save and not args.quick:
        path = save_results(
            "query", {"cpu": cpu_model(), "sizes": sizes, "rows": json.loads(json.dumps(rows))}
        )
        print(f"\nsaved {path}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())

"""Bulk export: how long ``stemma export`` takes to write a whole project to Parquet.

A project of R runs (200 by default), each logging S steps (5,000) of K float keys (10), is
logged once through the SDK into a temp ``STEMMA_DIR`` (SQLite), untimed. Then each setup
exports it, in a fresh interpreter, ``--repeats`` times (the table shows the median):

- ``embedded``: ``stemma.Api().export(project, dir)`` on the embedded SQLite store.
- ``server``: the same call with ``STEMMA_BASE_URL`` set, against ``stemma server`` over that
  store (tests/fixtures/server.py's ``ServerProcess``): every page of histories travels
  over HTTP as msgpack.
- ``pandas``: the in-memory way, for reference: ``runs.to_pandas()`` and
  ``runs.histories()`` (the whole project in one DataFrame), each written with
  ``DataFrame.to_parquet``. Same files, but memory grows with the project.

Timed: the export call alone (it imports pyarrow itself, so that is included; ``import
stemma`` is not). Peak RSS is the worker's ``ru_maxrss``. After timing, every export is read
back with pyarrow: the row count must be R x S, every key a column, and the last row of
each run must hold that run's last logged values; a failure makes the script exit 1.

MLflow has no bulk export (it would be ``search_runs`` plus one ``get_metric_history`` per
key per run), so no peer is measured here.

Usage::

    .venv/bin/python bench/export.py                 # 200 runs x 10 keys x 5,000 steps
    .venv/bin/python bench/export.py --quick         # 20 runs x 10 keys x 1,000 steps
    .venv/bin/python bench/export.py --runs 1000 --steps 1000 --setups embedded
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchutil import (
    ROOT,
    STEMMA_PYTHON,
    cpu_model,
    dir_bytes,
    fmt_bytes,
    fmt_s,
    markdown_table,
    print_table,
    run_json_worker,
    save_results,
)

RUNS, STEPS, KEYS = 200, 5_000, 10
QUICK_RUNS, QUICK_STEPS = 20, 1_000
PROJECT = "export-bench"
SETUPS = ("embedded", "server", "pandas")
LABELS = {
    "embedded": "stemma export, embedded SQLite",
    "server": "stemma export, over HTTP (server on SQLite)",
    "pandas": "reference: to_pandas + histories() + to_parquet (in memory)",
}


def value(run: int, step: int, key: int) -> float:
    """Run ``run``'s value of key ``key`` at ``step``; every value differs, checked on read."""
    return run + step * 1e-3 * (key + 1) + key * 0.125


# --------------------------------------------------------------------------- workers
def worker_populate(runs: int, steps: int, keys: int) -> None:
    import stemma

    for r in range(runs):
        with stemma.init(project=PROJECT, name=f"run-{r}", config={"r": r, "lr": 1e-3 * r}) as run:
            for s in range(steps):
                run.log({f"m{k}": value(r, s, k) for k in range(keys)}, step=s)
    print(json.dumps({"runs": runs}))


def peak_rss() -> int:
    """This process's peak resident set (VmHWM: ``ru_maxrss`` would carry over the
    parent's peak across fork + exec on Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def worker_export(setup: str, out: Path) -> None:
    import stemma

    api = stemma.Api()
    t0 = time.perf_counter()
    if setup == "pandas":
        listing = api.runs(PROJECT, order="+created_at")
        out.mkdir(parents=True)
        runs_df = listing.to_pandas()
        runs_df.to_parquet(out / "runs.parquet")
        hist = listing.histories()
        hist.to_parquet(out / "history.parquet")
        result = {"runs": len(runs_df), "rows": len(hist)}
    else:
        result = api.export(PROJECT, out, progress=False)
    seconds = time.perf_counter() - t0
    peak = peak_rss()
    print(
        json.dumps(
            {"seconds": seconds, "runs": result["runs"], "rows": result["rows"], "peak_rss": peak}
        )
    )


def verify(out: Path, runs: int, steps: int, keys: int) -> list[str]:
    """Problems with an export (empty when every run's rows and last values are there)."""
    import pyarrow.parquet as pq

    problems = []
    hist_path = out / "history" if (out / "history").is_dir() else out / "history.parquet"
    hist = pq.read_table(hist_path, columns=["run_id", "_step", *(f"m{k}" for k in range(keys))])
    if hist.num_rows != runs * steps:
        problems.append(f"{hist.num_rows:,} history rows, expected {runs * steps:,}")
    names = {r["id"]: r["name"] for r in pq.read_table(out / "runs.parquet").to_pylist()}
    if len(names) != runs:
        problems.append(f"{len(names)} runs in runs.parquet, expected {runs}")
    import pyarrow.compute as pc

    last = {  # the last row of every run, without turning a million rows into dicts
        row["run_id"]: row for row in hist.filter(pc.equal(hist["_step"], steps - 1)).to_pylist()
    }
    for run_id, name in names.items():
        r = int(name.split("-")[1])
        row = last.get(run_id)
        want = {f"m{k}": value(r, steps - 1, k) for k in range(keys)}
        if row is None or any(row[k] != v for k, v in want.items()):
            problems.append(f"{name}: last row {row} != {want}")
            break
    return problems


# --------------------------------------------------------------------------- parent
def stemma_env(store: Path, base_url: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STEMMA_", "WANDB_"))}
    env.update(
        STEMMA_DIR=str(store), STEMMA_SILENT="1", STEMMA_SYSTEM_METRICS="false", PYTHONPATH=""
    )
    if base_url:
        env["STEMMA_BASE_URL"] = base_url
    return env


def worker(args: Sequence[str], env: dict[str, str], timeout: float, label: str) -> dict[str, Any]:
    cmd = [str(STEMMA_PYTHON), str(Path(__file__).resolve()), *args]
    return run_json_worker(cmd, ROOT, env, timeout, label)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, help=f"runs in the project (default {RUNS})")
    ap.add_argument("--steps", type=int, help=f"steps per run (default {STEPS:,})")
    ap.add_argument("--keys", type=int, default=KEYS, help="float keys per step (default 10)")
    ap.add_argument("--repeats", type=int, default=3, help="exports per setup (median shown)")
    ap.add_argument("--setups", default=",".join(SETUPS), help="comma-separated subset")
    ap.add_argument("--quick", action="store_true", help="20 runs x 1,000 steps, 1 repeat")
    ap.add_argument("--timeout", type=float, default=1800, help="seconds per worker")
    ap.add_argument("--no-save", action="store_true", help="do not write bench/results/*.json")
    ap.add_argument("--worker", choices=("populate", *SETUPS), help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    runs = args.runs or (QUICK_RUNS if args.quick else RUNS)
    steps = args.steps or (QUICK_STEPS if args.quick else STEPS)
    if args.worker == "populate":
        worker_populate(runs, steps, args.keys)
        return 0
    if args.worker:
        worker_export(args.worker, args.out)
        return 0

    setups = [s for s in args.setups.split(",") if s]
    if set(setups) - set(SETUPS):
        ap.error(f"unknown setups {sorted(set(setups) - set(SETUPS))}; choose from {SETUPS}")
    repeats = 1 if args.quick else args.repeats
    points = runs * steps * args.keys
    sys.path.insert(0, str(ROOT))
    from tests.fixtures.server import ServerProcess

    results: dict[str, list[dict[str, Any]]] = {}
    failures: list[str] = []
    with contextlib.ExitStack() as stack:
        work = Path(tempfile.mkdtemp(prefix="stemma-export-bench-"))
        stack.callback(shutil.rmtree, work, True)
        store = work / "store"
        print(
            f"-- logging {runs} runs x {steps:,} steps x {args.keys} keys ({points:,} points)",
            file=sys.stderr,
            flush=True,
        )
        t0 = time.monotonic()
        worker(
            [
                "--worker",
                "populate",
                "--runs",
                str(runs),
                "--steps",
                str(steps),
                "--keys",
                str(args.keys),
            ],
            stemma_env(store),
            args.timeout,
            "populate",
        )
        print(
            f"   logged in {time.monotonic() - t0:.1f} s; store {fmt_bytes(dir_bytes(store))}",
            file=sys.stderr,
        )
        base_url = None
        if "server" in setups:
            srv = ServerProcess(store)
            srv.start()
            stack.callback(srv.stop)
            base_url = srv.url
        for setup in setups:
            env = stemma_env(store, base_url if setup == "server" else None)
            for rep in range(repeats):
                out = work / f"out-{setup}-{rep}"
                print(f"-- {LABELS[setup]}, {rep + 1}/{repeats}", file=sys.stderr, flush=True)
                try:
                    r = worker(["--worker", setup, "--out", str(out)], env, args.timeout, setup)
                except (RuntimeError, subprocess.SubprocessError) as exc:
                    failures.append(f"{setup}: {exc}")
                    break
                r["bytes"] = dir_bytes(out)
                problems = verify(out, runs, steps, args.keys)
                if problems:
                    failures.append(f"{setup}: " + "; ".join(problems))
                r["ok"] = not problems
                results.setdefault(setup, []).append(r)
                shutil.rmtree(out, ignore_errors=True)

    headers = [
        "setup",
        "runs",
        "history rows",
        "export",
        "rows/s",
        "points/s",
        "output",
        "peak RSS",
        "read back",
    ]
    rows = []
    for setup, reps in results.items():
        med = statistics.median(r["seconds"] for r in reps)
        rep = min(reps, key=lambda r: abs(r["seconds"] - med))
        rows.append(
            [
                LABELS[setup],
                f"{rep['runs']:,}",
                f"{rep['rows']:,}",
                fmt_s(med),
                f"{rep['rows'] / med:,.0f}",
                f"{points / med:,.0f}",
                fmt_bytes(rep["bytes"]),
                fmt_bytes(rep["peak_rss"]),
                "ok" if all(r["ok"] for r in reps) else "MISMATCH",
            ]
        )
    title = (
        f"Export of {runs} runs x {args.keys} keys x {steps:,} steps "
        f"({points:,} points), median of {repeats}"
    )
    print_table(title, headers, rows)
    print("\n" + markdown_table(headers, rows))
    for f in failures:
        print(f"FAIL {f}", file=sys.stderr)
    if not args.no_save:
        path = save_results(
            "export",
            {
                "runs": runs,
                "steps": steps,
                "keys": args.keys,
                "repeats": repeats,
                "cpu": cpu_model(),
                "results": results,
                "failures": failures,
            },
        )
        print(f"results: {path}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

"""Log throughput: what ``run.log({...10 scalars...})`` costs in Stemma, W&B offline and MLflow.

Each measurement runs in a fresh subprocess (this script with ``--worker NAME``) so that import
costs are real, nothing is cached between tools, and a tool's background threads or processes
cannot slow down the next one. Stemma runs in the project venv (.venv); the peers run in their
own venv (.bench-venv, made by ``make bench-deps``) so they never share dependencies with Stemma.

Usage::

    .venv/bin/python bench/log_throughput.py                       # N=10,000 and 100,000, 3 repeats
    .venv/bin/python bench/log_throughput.py --repeats 3,1         # 3 repeats at 10k, 1 at 100k
    .venv/bin/python bench/log_throughput.py --quick               # smoke run, a few seconds

The workload is the same for every tool: N steps, each logging a fresh dict of 10 floats whose
values change every step. A "jsonl" worker that writes each row as a JSON line to a plain file is
the physical reference: no tracker can beat appending the same bytes to one file by much.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from benchutil import (
    PEERS_PYTHON,
    ROOT,
    STEMMA_PYTHON,
    dir_bytes,
    fmt_bytes,
    fmt_s,
    fmt_us,
    markdown_table,
    print_table,
    run_json_worker,
    save_results,
    wandb_settings,
)

# No third-party import at module level: the same file runs under .venv (stemma) and under
# .bench-venv (peers), and a worker must pay for its tool's imports inside the timed region.
# ``json`` is imported lazily too, so the jsonl worker's ``import json`` is measured honestly.

KEYS = tuple(f"m{j}" for j in range(10))
POINTS_PER_STEP = len(KEYS)
BATCH_STEPS = 100  # mlflow-batch: steps buffered per MlflowClient.log_batch call

# Per-step MLflow writes one SQLite transaction per call (~17 ms here): 100,000 steps would take
# half an hour, so those workers run at most this many steps and the table says so.
STEP_CAPS = {"mlflow": 2_000, "mlflow-batch": 20_000}

# Stemma's targets (from the project's performance goals); checked at every N.
TARGET_PER_CALL_S = 10e-6
TARGET_POINTS_PER_S = 500_000
TARGET_IMPORT_S = 0.15
TARGET_INIT_S = 0.05

TOOLS = ("stemma", "stemma-warm", "wandb", "mlflow", "mlflow-batch", "jsonl")
PEER_TOOLS = ("wandb", "mlflow", "mlflow-batch")
LABELS = {
    "stemma": "stemma",
    "stemma-warm": "stemma (existing store)",
    "wandb": "wandb (offline)",
    "mlflow": "mlflow (per step)",
    "mlflow-batch": f"mlflow (log_batch/{BATCH_STEPS})",
    "jsonl": "jsonl file (reference)",
}


def make_row(i: int) -> dict[str, float]:
    """The logged row of step ``i``: 10 floats, all different from the previous step's."""
    x = i * 1e-3
    return {
        "m0": x,
        "m1": 1.0 / (1.0 + x),
        "m2": x * 0.5,
        "m3": x + 0.25,
        "m4": 2.0 - x,
        "m5": x * x,
        "m6": x * 3.0,
        "m7": x - 7.0,
        "m8": 0.125 * x,
        "m9": x + 9.0,
    }


def bare_loop_s(n: int) -> float:
    """Seconds for the loop with no logging: the share of each step that is not the tool."""
    t0 = time.perf_counter()
    for i in range(n):
        make_row(i)
    return time.perf_counter() - t0


# --------------------------------------------------------------------------- workers
# Each worker runs one tool for ``n`` steps in ``work`` (a fresh empty directory) and returns
# its timings. Only the tool's own calls are inside the timed regions.


def worker_stemma(n: int, work: Path) -> dict[str, Any]:
    """``stemma.init`` / ``run.log`` / ``run.finish`` into the embedded store in STEMMA_DIR."""
    t0 = time.perf_counter()
    import stemma

    t1 = time.perf_counter()
    run = stemma.init(project="bench", config={"lr": 1e-3, "batch_size": 64, "steps": n})
    t2 = time.perf_counter()
    for i in range(n):
        run.log(make_row(i))
    t3 = time.perf_counter()
    run.finish()
    t4 = time.perf_counter()
    size = dir_bytes(Path(os.environ["STEMMA_DIR"]))
    # Outside the timed region: every row must be stored and readable back.
    run_id = run.id
    v0 = time.perf_counter()
    problems = verify_stemma(stemma, run_id, n)
    verify_s = time.perf_counter() - v0
    return {
        "import_s": t1 - t0,
        "init_s": t2 - t1,
        "loop_s": t3 - t2,
        "finish_s": t4 - t3,
        "bytes": size,
        "verified": not problems,
        "problems": problems,
        "verify_s": verify_s,
        "version": stemma.__version__,
    }


def verify_stemma(stemma: Any, run_id: str, n: int) -> list[str]:
    """Read the run back through the public API; returns what is wrong (empty when all is well)."""
    try:
        runs = list(stemma.Api().runs("bench"))
        match = [r for r in runs if r.id == run_id]
        if not match:
            return [f"run {run_id} not found in project bench (found {[r.id for r in runs]})"]
        hist = match[0].history()
        problems = []
        if len(hist) != n:
            problems.append(f"history() has {len(hist)} rows, expected {n}")
        if len(hist):
            last = hist.iloc[-1]
            want = make_row(n - 1)
            if int(last["_step"]) != n - 1:
                problems.append(f"last _step is {last['_step']}, expected {n - 1}")
            bad = {k: (float(last[k]), v) for k, v in want.items() if float(last[k]) != v}
            if bad:
                problems.append(f"last row differs (got, expected): {bad}")
            missing = [k for k in KEYS if k not in hist.columns]
            if missing:
                problems.append(f"columns missing from history(): {missing}")
        if match[0].state != "finished":
            problems.append(f"run state is {match[0].state!r}, expected 'finished'")
        return problems
    except Exception as exc:  # report, never hide, a failure to read back
        return [f"reading the run back raised {type(exc).__name__}: {exc}"]


def worker_wandb(n: int, work: Path) -> dict[str, Any]:
    """``wandb.init`` (offline) / ``run.log`` / ``run.finish``; everything lands in WANDB_DIR."""
    t0 = time.perf_counter()
    import wandb

    t1 = time.perf_counter()
    run = wandb.init(
        project="bench",
        config={"lr": 1e-3, "batch_size": 64, "steps": n},
        settings=wandb_settings(wandb),
    )
    t2 = time.perf_counter()
    for i in range(n):
        run.log(make_row(i))
    t3 = time.perf_counter()
    run.finish()
    t4 = time.perf_counter()
    return {
        "import_s": t1 - t0,
        "init_s": t2 - t1,
        "loop_s": t3 - t2,
        "finish_s": t4 - t3,
        "bytes": dir_bytes(Path(os.environ["WANDB_DIR"])),
        "version": wandb.__version__,
    }


def _mlflow_start(mlflow: Any, client_cls: Any, work: Path) -> Any:
    """Tracking store, experiment and run in ``work``: what a user's first MLflow calls do."""
    uri = f"sqlite:///{work / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    exp_id = client_cls(tracking_uri=uri).create_experiment(
        "bench", artifact_location=(work / "artifacts").as_uri()
    )
    run = mlflow.start_run(experiment_id=exp_id)
    mlflow.log_params({"lr": 1e-3, "batch_size": 64})
    return run


def _mlflow_bytes(work: Path) -> int:
    return sum(dir_bytes(p) for p in work.iterdir() if p.name.startswith(("mlflow.db", "art")))


def worker_mlflow(n: int, work: Path) -> dict[str, Any]:
    """``mlflow.log_metrics(row, step=i)`` once per step: the call MLflow's docs show."""
    t0 = time.perf_counter()
    import mlflow
    from mlflow.tracking import MlflowClient

    t1 = time.perf_counter()
    _mlflow_start(mlflow, MlflowClient, work)
    t2 = time.perf_counter()
    for i in range(n):
        mlflow.log_metrics(make_row(i), step=i)
    t3 = time.perf_counter()
    mlflow.end_run()
    t4 = time.perf_counter()
    return {
        "import_s": t1 - t0,
        "init_s": t2 - t1,
        "loop_s": t3 - t2,
        "finish_s": t4 - t3,
        "bytes": _mlflow_bytes(work),
        "version": mlflow.__version__,
    }


def worker_mlflow_batch(n: int, work: Path) -> dict[str, Any]:
    """MLflow used the fast way: buffer ``BATCH_STEPS`` steps, then one ``log_batch`` call."""
    t0 = time.perf_counter()
    import mlflow
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    t1 = time.perf_counter()
    run = _mlflow_start(mlflow, MlflowClient, work)
    client = MlflowClient()
    run_id = run.info.run_id
    t2 = time.perf_counter()
    buf: list[Any] = []
    for i in range(n):
        ts = int(time.time() * 1000)
        buf.extend(Metric(k, v, ts, i) for k, v in make_row(i).items())
        if (i + 1) % BATCH_STEPS == 0:
            client.log_batch(run_id, metrics=buf)
            buf = []
    if buf:
        client.log_batch(run_id, metrics=buf)
    t3 = time.perf_counter()
    mlflow.end_run()
    t4 = time.perf_counter()
    return {
        "import_s": t1 - t0,
        "init_s": t2 - t1,
        "loop_s": t3 - t2,
        "finish_s": t4 - t3,
        "bytes": _mlflow_bytes(work),
        "version": mlflow.__version__,
    }


def worker_jsonl(n: int, work: Path) -> dict[str, Any]:
    """The physical floor: the same rows as JSON lines in one file, fsync'd once at the end."""
    t0 = time.perf_counter()
    import json

    t1 = time.perf_counter()
    path = work / "history.jsonl"
    f = path.open("w", encoding="utf-8")
    t2 = time.perf_counter()
    dumps = json.dumps
    write = f.write
    for i in range(n):
        write(dumps({"_step": i, **make_row(i)}) + "\n")
    t3 = time.perf_counter()
    f.flush()
    os.fsync(f.fileno())
    f.close()
    t4 = time.perf_counter()
    return {
        "import_s": t1 - t0,
        "init_s": t2 - t1,
        "loop_s": t3 - t2,
        "finish_s": t4 - t3,
        "bytes": path.stat().st_size,
        "version": platform.python_version(),
    }


WORKERS: dict[str, Callable[[int, Path], dict[str, Any]]] = {
    "stemma": worker_stemma,
    "stemma-warm": worker_stemma,
    "wandb": worker_wandb,
    "mlflow": worker_mlflow,
    "mlflow-batch": worker_mlflow_batch,
    "jsonl": worker_jsonl,
}


def run_worker(tool: str, n: int, work: Path) -> None:
    """Entry point of ``--worker``: run, then print one JSON line for the parent."""
    baseline = bare_loop_s(n)  # before the tool is imported, so it is pure Python
    result = WORKERS[tool](n, work)
    result.update(tool=tool, n=n, bare_loop_s=baseline)
    import json

    sys.stdout.write("\n" + json.dumps(result) + "\n")
    sys.stdout.flush()


# --------------------------------------------------------------------------- parent


@dataclasses.dataclass
class Measurement:
    """The median over repeats of one tool at one N (``n`` is what actually ran)."""

    tool: str
    n_target: int
    n: int
    repeats: int
    import_s: float
    init_s: float
    per_call_s: float
    finish_s: float
    points_per_s: float
    bytes: int
    bare_per_step_s: float
    version: str
    verified: bool | None = None
    problems: list[str] = dataclasses.field(default_factory=list)
    raw: list[dict[str, Any]] = dataclasses.field(default_factory=list)  # one per repeat

    @property
    def capped(self) -> bool:
        return self.n < self.n_target


def clean_env(tool: str, work: Path) -> dict[str, str]:
    """The worker's environment: the caller's, minus any tracker settings that could redirect
    it (a server URL, an API key), plus a private data directory in ``work``."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("STEMMA_", "WANDB_", "MLFLOW_"))
    }
    env["PYTHONDONTWRITEBYTECODE"] = "0"
    if tool.startswith("stemma"):
        env.update(
            STEMMA_DIR=str(work / "stemma"),
            STEMMA_SILENT="1",
            STEMMA_SYSTEM_METRICS="false",
        )
    elif tool == "wandb":
        (work / "wandb").mkdir()
        env.update(
            WANDB_MODE="offline",
            WANDB_DIR=str(work / "wandb"),
            WANDB_SILENT="true",
            WANDB_CONFIG_DIR=str(work / "wandb-config"),
            WANDB_CACHE_DIR=str(work / "wandb-cache"),
            WANDB_DATA_DIR=str(work / "wandb-data"),
            WANDB_DISABLE_GIT="true",
            WANDB_DISABLE_CODE="true",
        )
    elif tool.startswith("mlflow"):
        env.update(MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING="false")
    return env


def interpreter(tool: str) -> Path:
    """Peers run in .bench-venv; stemma and the jsonl reference in the project venv."""
    return PEERS_PYTHON if tool in PEER_TOOLS else STEMMA_PYTHON


def prepare(tool: str, env: dict[str, str]) -> None:
    """``stemma-warm`` logs into a store that already exists, as every run after a user's
    first does: one throwaway run (another project, not timed) creates it beforehand."""
    if tool == "stemma-warm":
        code = "import stemma; stemma.init(project='warmup').finish()"
        subprocess.run([str(STEMMA_PYTHON), "-c", code], env=env, check=True, capture_output=True)


def spawn(tool: str, n: int, timeout: float) -> dict[str, Any]:
    """Run one worker in a fresh process and a fresh directory; returns its JSON result."""

    work = Path(tempfile.mkdtemp(prefix=f"stemma-bench-{tool}-"))
    try:
        cmd = [
            str(interpreter(tool)),
            str(Path(__file__).resolve()),
            "--worker",
            tool,
            "--n",
            str(n),
            "--work",
            str(work),
        ]
        env = clean_env(tool, work)
        prepare(tool, env)
        return run_json_worker(cmd, work, env, timeout, f"{tool} worker (N={n})")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def aggregate(tool: str, n_target: int, results: list[dict[str, Any]]) -> Measurement:
    """Median of every timing over the repeats; verification fails if any repeat failed."""

    def med(key: str) -> float:
        return statistics.median(r[key] for r in results)

    n = results[0]["n"]
    e2e = [n * POINTS_PER_STEP / (r["loop_s"] + r["finish_s"]) for r in results]
    verified = None
    problems: list[str] = []
    if any("verified" in r for r in results):
        verified = all(r.get("verified") for r in results)
        problems = [p for r in results for p in r.get("problems", [])]
    return Measurement(
        tool=tool,
        n_target=n_target,
        n=n,
        repeats=len(results),
        import_s=med("import_s"),
        init_s=med("init_s"),
        per_call_s=med("loop_s") / n,
        finish_s=med("finish_s"),
        points_per_s=statistics.median(e2e),
        bytes=int(med("bytes")),
        bare_per_step_s=med("bare_loop_s") / n,
        version=str(results[0].get("version", "")),
        verified=verified,
        problems=problems,
        raw=results,
    )


HEADERS = ["tool", "N", "reps", "import", "init", "per log call", "finish", "points/s", "on disk"]


def table_rows(ms: Sequence[Measurement]) -> list[list[str]]:
    rows = []
    for m in ms:
        n = f"{m.n:,}" + (f" of {m.n_target:,} *" if m.capped else "")
        rows.append(
            [
                LABELS[m.tool],
                n,
                str(m.repeats),
                fmt_s(m.import_s),
                fmt_s(m.init_s),
                fmt_us(m.per_call_s),
                fmt_s(m.finish_s),
                f"{m.points_per_s:,.0f}",
                fmt_bytes(m.bytes),
            ]
        )
    return rows


def ratio_lines(by_tool: dict[str, Measurement]) -> list[str]:
    """Stemma against each peer and the reference: >1 means Stemma is better (faster/smaller)."""
    s = by_tool.get("stemma")
    if s is None:
        return []
    out = []
    for tool in ("wandb", "mlflow", "mlflow-batch"):
        p = by_tool.get(tool)
        if p is not None:
            out.append(
                f"per log call: {LABELS[tool]} / stemma = {p.per_call_s / s.per_call_s:,.1f}x"
            )
    for tool in ("wandb", "mlflow", "mlflow-batch", "jsonl"):
        p = by_tool.get(tool)
        if p is not None:
            out.append(
                f"points/s: stemma / {LABELS[tool]} = {s.points_per_s / p.points_per_s:,.2f}x"
            )
    j = by_tool.get("jsonl")
    if j is not None:
        out.append(f"bytes on disk: stemma / jsonl = {s.bytes / j.bytes:,.2f}x")
    return out


def target_lines(s: Measurement, j: Measurement | None) -> list[tuple[str, bool]]:
    """Stemma's targets checked against one of its rows (``j`` is the jsonl reference)."""
    checks = [
        (
            f"per log call {fmt_us(s.per_call_s)} <= {fmt_us(TARGET_PER_CALL_S)}",
            s.per_call_s <= TARGET_PER_CALL_S,
        ),
        (
            f"end-to-end {s.points_per_s:,.0f} points/s >= {TARGET_POINTS_PER_S:,}",
            s.points_per_s >= TARGET_POINTS_PER_S,
        ),
        (
            f"import stemma {fmt_s(s.import_s)} <= {fmt_s(TARGET_IMPORT_S)}",
            s.import_s <= TARGET_IMPORT_S,
        ),
        (f"init {fmt_s(s.init_s)} <= {fmt_s(TARGET_INIT_S)}", s.init_s <= TARGET_INIT_S),
    ]
    if j is not None:
        checks.append(
            (f"bytes {fmt_bytes(s.bytes)} <= jsonl {fmt_bytes(j.bytes)}", s.bytes <= j.bytes)
        )
    if s.verified is not None:
        checks.append((f"all {s.n:,} rows read back via Api().runs().history()", s.verified))
    return checks


def parse_ints(text: str) -> list[int]:
    return [int(x.replace("_", "")) for x in text.split(",") if x.strip()]


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--steps", default="10000,100000", help="comma-separated N (default %(default)s)"
    )
    ap.add_argument(
        "--repeats",
        default="3",
        help="repeats per N: one number, or one per --steps entry (e.g. 3,1)",
    )
    ap.add_argument("--tools", default=",".join(TOOLS), help="comma-separated subset of tools")
    ap.add_argument("--quick", action="store_true", help="smoke run: N=500, 1 repeat, small caps")
    ap.add_argument("--timeout", type=float, default=1800, help="seconds per worker process")
    ap.add_argument("--no-save", action="store_true", help="do not write bench/results/*.json")
    ap.add_argument("--worker", choices=TOOLS, help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.worker:
        run_worker(args.worker, args.n, args.work)
        return 0

    steps = [500] if args.quick else parse_ints(args.steps)
    reps = [1] if args.quick else parse_ints(args.repeats)
    if len(reps) == 1:
        reps = reps * len(steps)
    if len(reps) != len(steps):
        ap.error("--repeats needs one number or one per --steps entry")
    caps = dict.fromkeys(STEP_CAPS, 200) if args.quick else STEP_CAPS
    tools = [t for t in args.tools.split(",") if t]
    unknown = set(tools) - set(TOOLS)
    if unknown:
        ap.error(f"unknown tools {sorted(unknown)}; choose from {', '.join(TOOLS)}")
    if not STEMMA_PYTHON.exists():
        ap.error(f"{STEMMA_PYTHON} is missing; run `make install` first")
    if not PEERS_PYTHON.exists() and any(t in PEER_TOOLS for t in tools):
        print(
            f"note: {PEERS_PYTHON} is missing (run `make bench-deps`); measuring stemma and the "
            "jsonl reference only",
            file=sys.stderr,
        )
        tools = [t for t in tools if t not in PEER_TOOLS]

    # Import every tool once untimed, so the measured runs see warm .pyc and page caches (a
    # user's second and later runs); a cold first import would only measure the disk.
    for tool in tools:
        module = {"mlflow-batch": "mlflow", "jsonl": "json", "stemma-warm": "stemma"}.get(
            tool, tool
        )
        subprocess.run(
            [str(interpreter(tool)), "-c", f"import {module}"],
            check=True,
            env=clean_env("jsonl", ROOT),
            capture_output=True,
        )

    started = time.time()
    all_ms: list[Measurement] = []
    failures: list[str] = []
    for n_target, repeats in zip(steps, reps, strict=True):
        results: dict[str, list[dict[str, Any]]] = {t: [] for t in tools}
        for r in range(repeats):  # tools interleaved, so slow drift hits all of them alike
            for tool in tools:
                n = min(n_target, caps.get(tool, n_target))
                t0 = time.perf_counter()
                try:
                    res = spawn(tool, n, args.timeout)
                except (RuntimeError, subprocess.TimeoutExpired) as exc:
                    failures.append(str(exc))
                    print(f"!! {exc}", file=sys.stderr)
                    continue
                results[tool].append(res)
                flag = ""
                if res.get("verified") is False:
                    flag = "  !! VERIFY FAILED: " + "; ".join(res["problems"])
                    print(f"!! {tool} N={n}: {res['problems']}", file=sys.stderr)
                if res.get("stderr"):
                    flag += f"  (stderr: {res['stderr'][-300:]!r})"
                print(
                    f"  N={n_target:,} rep {r + 1}/{repeats} {tool:13s} "
                    f"{time.perf_counter() - t0:7.1f} s wall{flag}",
                    file=sys.stderr,
                )
        ms = [aggregate(t, n_target, results[t]) for t in tools if results[t]]
        all_ms.extend(ms)
        report(n_target, ms)

    print(f"\ntotal wall time {time.time() - started:,.0f} s")
    print("\nmarkdown:\n")
    for n_target in steps:
        ms = [m for m in all_ms if m.n_target == n_target]
        print(f"N = {n_target:,}\n\n{markdown_table(HEADERS, table_rows(ms))}\n")
    if not args.no_save:
        save(all_ms, failures)
    if failures:
        print(f"\n{len(failures)} worker(s) FAILED:", file=sys.stderr)
        for f in failures:
            print(f, file=sys.stderr)
    stemma_bad = [m for m in all_ms if m.tool.startswith("stemma") and m.verified is False]
    return 1 if failures or stemma_bad else 0


def report(n_target: int, ms: list[Measurement]) -> None:
    """Table, ratios and target checks for one N."""
    by_tool = {m.tool: m for m in ms}
    print_table(
        f"Log throughput, N = {n_target:,} steps x {POINTS_PER_STEP} scalars",
        HEADERS,
        table_rows(ms),
    )
    if any(m.capped for m in ms):
        for m in ms:
            if m.capped:
                est = m.per_call_s * m.n_target
                print(
                    f"  * {LABELS[m.tool]} ran {m.n:,} of {m.n_target:,} steps (too slow); "
                    f"per-call and points/s are from those steps, bytes are for {m.n:,} "
                    f"steps; the full N would spend about {fmt_s(est)} in the log loop"
                )
    bare = statistics.median(m.bare_per_step_s for m in ms)
    print(
        f"  building the row dict alone costs {fmt_us(bare)} per step (included in every "
        "per-call figure)"
    )
    for line in ratio_lines(by_tool):
        print(f"  {line}")
    for tool in ("stemma", "stemma-warm"):
        s = by_tool.get(tool)
        if s is None:
            continue
        print(f"  targets, {LABELS[tool]}:")
        for text, ok in target_lines(s, by_tool.get("jsonl")):
            print(f"    [{'PASS' if ok else 'MISS'}] {text}")
        if s.problems:
            print(f"  !! {LABELS[tool]}: read-back problems:")
            for p in sorted(set(s.problems)):
                print(f"     {p}")


def save(ms: list[Measurement], failures: list[str]) -> None:
    """Results as JSON in bench/results/ (gitignored), for comparing runs over time."""
    path = save_results(
        "log_throughput",
        {"measurements": [dataclasses.asdict(m) for m in ms], "failures": failures},
    )
    print(f"\nresults saved to {path.relative_to(ROOT)}")


if __name__ == "__main__":
    sys.exit(main())

"""Ingest: how many points per second one server takes in from many concurrent clients.

The log-throughput benchmark times the client; this one times the server. Every setup gets the
same workload: C client processes (16 by default), each logging S steps (20,000) of 10 float
scalars as fast as it can, then finishing its run. Wall time runs from the moment every client
is told to start logging until the last one has finished (for Stemma: ``run.finish()`` has
returned, so every row has been accepted by the server). Afterwards, outside the timed region,
every row of every run is counted in the server's store through the public read API.

Setups:

- ``stemma-sqlite``: one ``stemma server`` over SQLite in a temp ``STEMMA_DIR``.
- ``stemma-pg``: two ``stemma server`` replicas over one throwaway PostgreSQL cluster and one
  shared blob directory; half of the clients talk to each replica, and each run is read back
  through the *other* replica.
- ``stemma-pg-auth``: as ``stemma-pg``, but the store has accounts, so every request is
  authenticated: the clients log into team ``bench`` with a service account's API key (each
  frame checks the key and the account's role, with no cache), the reader uses an admin key.
- ``mlflow``: ``mlflow server`` over SQLite; clients use ``MlflowClient.log_batch`` with 100
  steps (1,000 metrics) per call, MLflow's fastest client path. Capped (2,000 steps per client
  by default) because the full workload would take far longer than the others.

Usage::

    .venv/bin/python bench/ingest.py                 # 16 clients x 20,000 steps, all setups
    .venv/bin/python bench/ingest.py --quick         # 4 clients x 1,000 steps
    .venv/bin/python bench/ingest.py --setups stemma-sqlite --steps 5000 --clients 8

Clients run this same file with ``--worker stemma`` (under .venv) or ``--worker mlflow`` (under
.bench-venv). They import their tool, create their run, report ready and block on stdin until
the parent releases all of them at once, so imports and run creation are not timed.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import glob
import json
import math
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchutil import (
    PEERS_PYTHON,
    ROOT,
    STEMMA_PYTHON,
    cpu_model,
    fmt_s,
    markdown_table,
    print_table,
    save_results,
)

# Only the standard library at module level: workers run this file under .venv and
# .bench-venv, and each imports its own tool (and psutil/httpx in the parent) lazily.

KEYS = tuple(f"m{j}" for j in range(10))
POINTS_PER_STEP = len(KEYS)
CLIENTS = 16
STEPS = 20_000
QUICK_CLIENTS = 4
QUICK_STEPS = 1_000
NCPU = os.cpu_count() or 1
MLFLOW_BATCH_STEPS = 100  # steps per log_batch call: 1,000 metrics, MLflow's per-call limit
# MLflow takes in 5,500-12,500 points/s on this machine, so 16 x 20,000 steps would run for
# 4-10 minutes; its clients stop at this many steps and the table says so.
MLFLOW_STEP_CAP = 2_000
TARGET_RATIO = 20.0  # Stemma's sustained ingest must be at least this many times MLflow's

SETUPS = ("stemma-sqlite", "stemma-pg", "stemma-pg-auth", "mlflow")
LABELS = {
    "stemma-sqlite": "stemma, 1 server, SQLite",
    "stemma-pg": "stemma, 2 replicas, PostgreSQL",
    "stemma-pg-auth": "stemma, 2 replicas, PostgreSQL, API keys",
    "mlflow": f"mlflow server, SQLite, log_batch/{MLFLOW_BATCH_STEPS}",
}


def make_row(i: int) -> dict[str, float]:
    """Step ``i``'s 10 floats; every value changes every step, and is checked on read-back."""
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


# --------------------------------------------------------------------------- workers
# A worker writes ``ready-I.json`` (its run) once it can log, blocks until the parent writes a
# line to its stdin, logs, finishes, then writes ``result-I.json``. Files rather than stdout
# lines: the parent polls them without juggling 16 pipes, and a crash leaves a clear absence.


def _write_json(path: Path, data: dict[str, Any]) -> None:
    """Atomic, so the parent never reads half a file."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data), encoding="utf-8")
    os.replace(tmp, path)


def worker_stemma(steps: int, work: Path, index: int) -> None:
    """One Stemma client: ``init`` against STEMMA_BASE_URL, ``run.log`` per step, ``finish``.

    Frame latency is measured by wrapping ``httpx.Client.request`` in this process only: each
    ``POST .../frames`` is one spool frame sent by the writer thread, so its duration is what
    the server took to accept that batch (plus loopback). ``HttpBackend.apply`` is wrapped too,
    to count frames and to see the whole apply (compression and retries included).
    """
    import httpx

    posts: list[tuple[float, float, int]] = []  # (start, seconds, status)
    bad: list[str] = []
    request = httpx.Client.request

    def timed_request(self: Any, method: str, url: Any, *args: Any, **kwargs: Any) -> Any:
        if method != "POST" or not str(url).endswith("/frames"):
            return request(self, method, url, *args, **kwargs)
        t0 = time.monotonic()
        try:
            resp = request(self, method, url, *args, **kwargs)
        except Exception as exc:
            bad.append(f"POST frames raised {type(exc).__name__}: {exc}")
            raise
        posts.append((t0, time.monotonic() - t0, resp.status_code))
        if resp.status_code >= 400:
            bad.append(f"POST frames -> HTTP {resp.status_code}: {resp.text[:500]}")
        return resp

    httpx.Client.request = timed_request  # type: ignore[method-assign]

    import stemma
    from stemma.backend.http import HttpBackend

    applies: list[tuple[float, float]] = []
    apply = HttpBackend.apply

    def timed_apply(self: Any, *args: Any, **kwargs: Any) -> Any:
        t0 = time.monotonic()
        out = apply(self, *args, **kwargs)
        applies.append((t0, time.monotonic() - t0))
        return out

    HttpBackend.apply = timed_apply  # type: ignore[method-assign]

    run = stemma.init(project="ingest")
    _write_json(work / f"ready-{index}.json", {"path": run.path, "id": run.id})
    sys.stdin.readline()  # the parent releases every client at once

    t0 = time.monotonic()
    c0 = time.process_time()
    for i in range(steps):
        run.log(make_row(i))
    t1 = time.monotonic()
    run.finish()
    t2 = time.monotonic()
    c1 = time.process_time()

    window = [(s, d, st) for s, d, st in posts if s >= t0]
    _write_json(
        work / f"result-{index}.json",
        {
            "path": run.path,
            "t_start": t0,
            "t_loop_end": t1,
            "t_end": t2,
            "cpu_s": c1 - c0,
            "post_s": [d for _s, d, _st in window],
            "statuses": [st for _s, _d, st in window],
            "apply_s": [d for s, d in applies if s >= t0],
            "problems": bad,
            "version": stemma.__version__,
        },
    )


def worker_mlflow(steps: int, work: Path, index: int, uri: str, experiment_id: str) -> None:
    """One MLflow client: ``create_run``, then ``log_batch`` of 100 steps x 10 metrics each,
    then ``set_terminated``. Each ``log_batch`` is one HTTP POST, timed here."""
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    run_id = client.create_run(experiment_id, run_name=f"client-{index}").info.run_id
    _write_json(work / f"ready-{index}.json", {"path": run_id, "id": run_id})
    sys.stdin.readline()

    t0 = time.monotonic()
    c0 = time.process_time()
    calls: list[float] = []
    batch: list[Any] = []
    problems: list[str] = []
    for i in range(steps):
        ts = int(time.time() * 1000)
        batch.extend(Metric(k, v, ts, i) for k, v in make_row(i).items())
        if len(batch) >= MLFLOW_BATCH_STEPS * POINTS_PER_STEP or i == steps - 1:
            b0 = time.monotonic()
            try:
                client.log_batch(run_id, metrics=batch)
            except Exception as exc:  # report it; the read-back will show what is missing
                problems.append(f"log_batch raised {type(exc).__name__}: {str(exc)[:500]}")
            calls.append(time.monotonic() - b0)
            batch = []
    t1 = time.monotonic()
    client.set_terminated(run_id)
    t2 = time.monotonic()
    c1 = time.process_time()

    import mlflow

    _write_json(
        work / f"result-{index}.json",
        {
            "path": run_id,
            "t_start": t0,
            "t_loop_end": t1,
            "t_end": t2,
            "cpu_s": c1 - c0,
            "post_s": calls,
            "statuses": [],
            "apply_s": [],
            "problems": problems,
            "version": mlflow.__version__,
        },
    )


# --------------------------------------------------------------------------- processes


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgCluster:
    """A throwaway PostgreSQL cluster in a temp dir, reachable only through a Unix socket.

    Like the test suite's cluster (tests/fixtures/postgres.py), but with ``fsync`` on: this
    measures a server people would run. ``synchronous_commit`` is off, which is the durability
    Stemma's SQLite store has (WAL with ``synchronous=NORMAL``: a power cut may lose the last
    commits, never corrupt), so the two Stemma setups are compared on equal terms.
    PostgreSQL refuses to run as root, so as root it runs as the ``postgres`` user.
    """

    SETTINGS = {
        "listen_addresses": "''",
        "synchronous_commit": "off",
        "max_connections": "200",  # two replicas with pools of up to 30 each, plus checks
        "shared_buffers": "256MB",
        "max_wal_size": "2GB",
        "log_min_messages": "warning",
    }

    def __init__(self) -> None:
        self.bindir = self._bindir()
        self.user = self._user()
        self.root = Path(tempfile.mkdtemp(prefix="stemma-bench-pg-"))  # short: socket path
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.running = False
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)

    @staticmethod
    def _bindir() -> Path:
        found = shutil.which("initdb")
        candidates = [Path(os.path.realpath(found)).parent] if found else []
        candidates += [
            Path(d) for d in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
        ]
        for d in candidates:
            if all(os.access(d / t, os.X_OK) for t in ("initdb", "pg_ctl", "postgres")):
                return d
        raise RuntimeError("PostgreSQL server binaries (initdb, pg_ctl) not found")

    @staticmethod
    def _user() -> str | None:
        if os.geteuid() != 0:
            return None
        for name in ("postgres", "stemma-pg"):  # the test fixture creates stemma-pg if needed
            with contextlib.suppress(KeyError):
                pwd.getpwnam(name)
                return name
        raise RuntimeError("running as root needs a 'postgres' system user to run PostgreSQL")

    def _run(self, *args: str) -> None:
        cmd = [str(self.bindir / args[0]), *args[1:]]
        if self.user is not None:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=self.root)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}")

    def start(self) -> None:
        self._run(
            "initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "--no-sync",
            "--no-locale", "-E", "UTF8",
        )  # fmt: skip
        conf = {**self.SETTINGS, "unix_socket_directories": f"'{self.root}'"}
        with (self.data / "postgresql.conf").open("a") as fh:
            fh.writelines(f"{k} = {v}\n" for k, v in conf.items())
        self._run("pg_ctl", "start", "-w", "-t", "60", "-D", str(self.data), "-l", str(self.log))
        self.running = True

    def stop(self) -> None:
        try:
            if self.running:
                self._run("pg_ctl", "stop", "-w", "-m", "fast", "-D", str(self.data))
                self.running = False
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def postmaster_pid(self) -> int:
        """The postmaster, whose children are the backends serving the replicas."""
        return int((self.data / "postmaster.pid").read_text().split()[0])

    def url(self) -> str:
        return f"postgresql+psycopg://postgres@/postgres?host={self.root}"

    def problems(self) -> list[str]:
        """ERROR/FATAL/PANIC lines from the server log (deadlocks, too many connections...)."""
        try:
            lines = self.log.read_text(errors="replace").splitlines()
        except OSError:
            return []
        # The first server's migration check looks for alembic's table before creating it.
        expected = 'relation "alembic_version" does not exist'
        return [
            ln
            for ln in lines
            if any(w in ln for w in ("ERROR:", "FATAL:", "PANIC:")) and expected not in ln
        ]


class MlflowServer:
    """``mlflow server`` from .bench-venv over SQLite, in its own process group so that its
    uvicorn workers are stopped with it."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = work / "mlflow-server.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 120.0) -> None:
        import httpx

        env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
        cmd = [
            str(PEERS_PYTHON.parent / "mlflow"), "server",
            "--backend-store-uri", f"sqlite:///{self.work / 'mlflow.db'}",
            "--default-artifact-root", str(self.work / "artifacts"),
            "--host", "127.0.0.1", "--port", str(self.port),
        ]  # fmt: skip
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                cmd, cwd=self.work, env=env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mlflow server exited:\n{self.log_tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            time.sleep(0.2)
        raise RuntimeError(f"mlflow server did not answer in {timeout:.0f} s:\n{self.log_tail()}")

    def log_tail(self) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-30:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)  # our own session: the server and workers
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=20)


def tree_cpu_s(pids: Sequence[int]) -> float:
    """User + system CPU seconds of these processes and their live children (MLflow's
    uvicorn workers are children of ``mlflow server``)."""
    import psutil

    total = 0.0
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            p = psutil.Process(pid)
            for q in [p, *p.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):
                    t = q.cpu_times()
                    total += t.user + t.system
    return total


def server_log_problems(paths: Sequence[Path]) -> list[str]:
    """Tracebacks, errors and 5xx lines from the servers' logs (they run at --log-level
    warning, so normal requests print nothing)."""
    out = []
    for path in paths:
        with contextlib.suppress(OSError):
            for ln in path.read_text(errors="replace").splitlines():
                low = ln.lower()
                if any(w in low for w in ("error", "traceback", "exception", " 500 ", " 503 ")):
                    out.append(f"{path.name}: {ln.strip()[:400]}")
    return out


# --------------------------------------------------------------------------- one setup


@dataclasses.dataclass
class Result:
    """One setup's measurement (times in seconds)."""

    setup: str
    clients: int
    steps: int  # per client, what actually ran
    steps_target: int
    total_points: int
    wall_s: float
    points_per_s: float
    p50_ms: float
    p99_ms: float
    batches: int  # frames (Stemma) or log_batch calls (MLflow)
    server_cpu_s: float
    client_cpu_s: float
    db_cpu_s: float | None  # PostgreSQL's processes; None where the database is in-process
    machine_busy_s: float  # every core's non-idle time, all processes and the kernel
    cpu_window_s: float  # the window the CPU figures cover: release until results were seen
    loop_s: float  # the slowest client's logging loop, before finish
    rows_expected: int
    rows_found: int
    verified: bool
    version: str
    statuses: dict[str, int] = dataclasses.field(default_factory=dict)
    cpu_detail: dict[str, Any] = dataclasses.field(default_factory=dict)  # machine, top procs
    problems: list[str] = dataclasses.field(default_factory=list)
    clients_detail: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    @property
    def capped(self) -> bool:
        return self.steps < self.steps_target

    @property
    def server_bound(self) -> bool:
        """The server side (its processes, plus PostgreSQL's), not the clients, spent most of
        the CPU: the clients were not what held throughput down."""
        return self.server_side_cpu_s >= self.client_cpu_s

    @property
    def server_side_cpu_s(self) -> float:
        return self.server_cpu_s + (self.db_cpu_s or 0.0)

    def cpu_breakdown(self) -> str:
        """Where the machine's CPU went in the timed window, in core-seconds."""
        available = NCPU * self.cpu_window_s
        other = self.machine_busy_s - self.server_side_cpu_s - self.client_cpu_s
        db = "" if self.db_cpu_s is None else f", PostgreSQL {self.db_cpu_s:.2f}"
        return (
            f"of {available:.2f} core-s: server {self.server_cpu_s:.2f}{db}, clients "
            f"{self.client_cpu_s:.2f}, kernel and other processes {other:.2f}, "
            f"idle {available - self.machine_busy_s:.2f}"
        )


def run_clients(
    kind: str,
    n_clients: int,
    steps: int,
    work: Path,
    envs: Sequence[dict[str, str]],
    server_pids: Sequence[int],
    timeout: float,
    procs: list[subprocess.Popen[bytes]],
    extra_args: Sequence[str] = (),
    db_pids: Sequence[int] = (),
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], float, dict[str, Any], list[str]]:
    """Start the clients, release them together, wait for all; returns
    ``(ready, results, t_go, cpu, problems)``, where ``cpu`` holds the CPU seconds the
    servers, the database and the whole machine spent in the timed window. Started processes
    go into ``procs`` so the caller can kill them whatever happens."""
    import psutil

    python = STEMMA_PYTHON if kind == "stemma" else PEERS_PYTHON
    for i in range(n_clients):
        cdir = work / f"client-{i}"
        cdir.mkdir()
        cmd = [str(python), str(Path(__file__).resolve()), "--worker", kind, "--index", str(i)]
        cmd += ["--steps", str(steps), "--work", str(work), *extra_args]
        with (cdir / "stdout.log").open("wb") as out:
            procs.append(
                subprocess.Popen(
                    cmd,
                    cwd=cdir,
                    env=envs[i],
                    stdin=subprocess.PIPE,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            )
    ready = _wait_files(work, "ready", procs, timeout, "getting ready")
    time.sleep(1.0)  # let every run's first frame (its creation) reach the server first
    cpu0 = tree_cpu_s(server_pids)
    db0 = tree_cpu_s(db_pids)
    m0 = psutil.cpu_times()
    snap0 = _all_cpu(psutil)
    w0 = time.monotonic()
    t_go = time.monotonic()
    for p in procs:
        assert p.stdin is not None
        p.stdin.write(b"go\n")
        p.stdin.flush()
    results = _wait_files(work, "result", procs, timeout, "logging")
    cpu1 = tree_cpu_s(server_pids)
    db1 = tree_cpu_s(db_pids)
    m1 = psutil.cpu_times()
    w1 = time.monotonic()
    snap1 = _all_cpu(psutil)
    idle = (m1.idle - m0.idle) + (m1.iowait - m0.iowait)
    cpu: dict[str, Any] = {
        "server": cpu1 - cpu0,
        "db": db1 - db0,
        "window": w1 - w0,
        "machine": {f: getattr(m1, f) - getattr(m0, f) for f in m1._fields},
        "top_processes": sorted(
            ((snap1[k] - snap0[k], f"{k[1]} ({k[0]})") for k in snap1.keys() & snap0.keys()),
            reverse=True,
        )[:12],
        "machine_busy": sum(m1)
        - sum(m0)
        - idle
        - (m1.guest - m0.guest)
        - (m1.guest_nice - m0.guest_nice),
    }
    problems = []
    for i, p in enumerate(procs):
        try:
            p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            problems.append(f"client {i} did not exit 60 s after writing its result")
            continue
        out = (work / f"client-{i}" / "stdout.log").read_text(errors="replace").splitlines()
        text = "\n".join(ln for ln in out if ln.strip() and not benign(ln))
        if p.returncode != 0 or text:
            problems.append(f"client {i} exited {p.returncode}; output: {text[-1500:]}")
    return ready, results, t_go, cpu, problems


def benign(line: str) -> bool:
    """MLflow's client prints links to the run and experiment when a run ends."""
    return line.startswith(("\N{RUNNER}", "\N{TEST TUBE}"))


def _all_cpu(psutil: Any) -> dict[tuple[int, str], float]:
    """CPU seconds of every process on the machine, to see who else spent the window's CPU
    (kernel threads doing writeback or loopback networking show up here too)."""
    out = {}
    for p in psutil.process_iter(["name", "cpu_times"]):
        t = p.info["cpu_times"]
        if t is not None:
            out[(p.pid, p.info["name"] or "?")] = t.user + t.system
    return out


def _wait_files(
    work: Path, stem: str, procs: Sequence[subprocess.Popen[bytes]], timeout: float, what: str
) -> list[dict[str, Any]]:
    """Poll for ``STEM-I.json`` from every client; a client that exits without it, or a
    timeout, is an error that names the client and shows its output."""
    deadline = time.monotonic() + timeout
    paths = [work / f"{stem}-{i}.json" for i in range(len(procs))]
    while not all(p.exists() for p in paths):
        for i, (path, proc) in enumerate(zip(paths, procs, strict=True)):
            if not path.exists() and proc.poll() is not None and not path.exists():
                out = (work / f"client-{i}" / "stdout.log").read_text(errors="replace")
                raise RuntimeError(f"client {i} exited {proc.returncode} while {what}:\n{out}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"clients still {what} after {timeout:.0f} s")
        time.sleep(0.02)
    return [json.loads(p.read_text(encoding="utf-8")) for p in paths]


def summarize(
    setup: str,
    steps: int,
    steps_target: int,
    results: list[dict[str, Any]],
    t_go: float,
    cpu: dict[str, Any],
    rows: tuple[int, int, list[str]],
    problems: list[str],
) -> Result:
    """Turn the clients' reports into one row: wall runs from the release until the last
    client's finish returned."""
    n = len(results)
    wall = max(r["t_end"] for r in results) - t_go
    lat = sorted(d for r in results for d in r["post_s"])
    statuses: dict[str, int] = {}
    for r in results:
        for st in r["statuses"]:
            statuses[str(st)] = statuses.get(str(st), 0) + 1
    expected, found, read_problems = rows
    all_problems = [*problems, *read_problems]
    all_problems += [f"client {i}: {p}" for i, r in enumerate(results) for p in r["problems"]]
    points = n * steps * POINTS_PER_STEP
    return Result(
        setup=setup,
        clients=n,
        steps=steps,
        steps_target=steps_target,
        total_points=points,
        wall_s=wall,
        points_per_s=points / wall,
        p50_ms=percentile(lat, 0.50) * 1e3,
        p99_ms=percentile(lat, 0.99) * 1e3,
        batches=len(lat),
        server_cpu_s=cpu["server"],
        db_cpu_s=cpu["db"] if setup.startswith("stemma-pg") else None,
        machine_busy_s=cpu["machine_busy"],
        cpu_window_s=cpu["window"],
        cpu_detail={k: cpu[k] for k in ("machine", "top_processes")},
        client_cpu_s=sum(r["cpu_s"] for r in results),
        loop_s=max(r["t_loop_end"] - r["t_start"] for r in results),
        rows_expected=expected,
        rows_found=found,
        verified=expected == found and not read_problems,
        version=str(results[0]["version"]),
        statuses=statuses,
        problems=all_problems,
        clients_detail=[
            {k: v for k, v in r.items() if k not in ("post_s", "statuses", "apply_s")}
            | {"frames": len(r["post_s"]), "apply_s_total": sum(r["apply_s"])}
            for r in results
        ],
    )


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (no interpolation: with few batches, p99 is the slowest one)."""
    if not sorted_values:
        return float("nan")
    k = max(0, min(len(sorted_values) - 1, math.ceil(q * len(sorted_values)) - 1))
    return sorted_values[k]


def stemma_env(base_url: str, client_dir: Path, api_key: str | None = None) -> dict[str, str]:
    """A client's environment: nothing inherited that could redirect it, its own STEMMA_DIR."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STEMMA_", "MLFLOW_"))}
    env.update(
        STEMMA_BASE_URL=base_url,
        STEMMA_DIR=str(client_dir),
        STEMMA_SILENT="1",
        STEMMA_SYSTEM_METRICS="false",
    )
    if api_key:
        env["STEMMA_API_KEY"] = api_key
    return env


def verify_stemma(
    urls: Sequence[str],
    ready: list[dict[str, Any]],
    steps: int,
    work: Path,
    api_key: str | None = None,
) -> tuple[int, int, list[str]]:
    """Count every run's rows through ``stemma.Api()`` against the server, outside the timed
    region. Run ``i`` is read through ``urls[(i + 1) % len(urls)]``: with two replicas, each
    run is read through the replica its client did not write to."""
    import stemma

    extra = {"api_key": api_key} if api_key else {}
    apis = [stemma.Api({"base_url": u, "dir": work / "reader", **extra}) for u in urls]
    found = 0
    problems: list[str] = []
    want_last = make_row(steps - 1)
    for i, r in enumerate(ready):
        try:
            run = apis[(i + 1) % len(apis)].run(r["path"])
            hist = run.history(keys=list(KEYS))
            found += len(hist)
            if len(hist) != steps:
                problems.append(f"run {r['path']}: {len(hist)} rows stored, {steps} logged")
            elif len(hist):
                last = hist.iloc[-1]
                diff = {k: float(last[k]) for k, v in want_last.items() if float(last[k]) != v}
                if diff:
                    problems.append(f"run {r['path']}: last row differs: {diff}")
            if run.state != "finished":
                problems.append(f"run {r['path']}: state {run.state!r}, expected 'finished'")
        except Exception as exc:  # report, never hide, a failure to read back
            problems.append(f"run {r['path']}: reading back raised {type(exc).__name__}: {exc}")
    return len(ready) * steps, found, problems


def verify_mlflow(url: str, ready: list[dict[str, Any]], steps: int) -> tuple[int, int, list[str]]:
    """Count every run's points per metric through MLflow's REST API (``get-history``)."""
    import httpx

    found = 0
    problems: list[str] = []
    with httpx.Client(base_url=url, timeout=120) as client:
        for r in ready:
            for key in KEYS:
                n, token = 0, None
                while True:
                    params: dict[str, Any] = {"run_id": r["id"], "metric_key": key}
                    params["max_results"] = 25_000
                    if token:
                        params["page_token"] = token
                    resp = client.get("/api/2.0/mlflow/metrics/get-history", params=params)
                    if resp.status_code != 200:
                        problems.append(f"get-history {r['id']}/{key}: HTTP {resp.status_code}")
                        break
                    body = resp.json()
                    n += len(body.get("metrics", []))
                    token = body.get("next_page_token")
                    if not token:
                        break
                found += n
                if n != steps:
                    problems.append(f"run {r['id']} {key}: {n} points stored, {steps} logged")
    return len(ready) * steps * POINTS_PER_STEP, found, problems


def make_bench_accounts(store: Path, db_url: str | None) -> tuple[str, str]:
    """An instance admin and team ``bench`` with service account ``ingest`` (a member),
    made straight in the store as ``stemma user create`` does: (client key, reader key)."""
    from stemma.backend.embedded import EmbeddedBackend
    from stemma.settings import Settings

    backend = EmbeddedBackend(
        Settings(dir=store, database_url=db_url, silent=True, system_metrics=False)
    )
    try:
        _user, _pw, admin_key = backend.create_user_with_key("bench@example.com", is_admin=True)
        backend.create_team("bench")
        _info, client_key = backend.create_service_account("bench", "ingest", "member")
    finally:
        backend.close()
    return client_key, admin_key


def bench_stemma(
    setup: str, n_clients: int, steps: int, timeout: float, stack: contextlib.ExitStack
) -> Result:
    """One or two ``stemma server`` processes (tests/fixtures/server.py's ServerProcess), then
    the clients, spread evenly over the servers."""
    sys.path.insert(0, str(ROOT))
    from tests.fixtures.server import ServerProcess

    work = Path(tempfile.mkdtemp(prefix=f"stemma-bench-ingest-{setup}-"))
    stack.callback(shutil.rmtree, work, True)
    store = work / "server-store"  # the servers' STEMMA_DIR (blobs; SQLite db for sqlite)
    db_url = None
    pg: PgCluster | None = None
    if setup.startswith("stemma-pg"):
        pg = PgCluster()
        stack.callback(pg.stop)
        pg.start()
        db_url = pg.url()
    client_key = reader_key = None
    if setup.endswith("-auth"):
        client_key, reader_key = make_bench_accounts(store, db_url)
    servers = []
    for _ in range(2 if pg else 1):  # one after the other: the first creates the schema
        srv = ServerProcess(store, database_url=db_url)
        stack.callback(srv.stop)
        srv.start()
        servers.append(srv)
    urls = [s.url for s in servers]
    procs: list[subprocess.Popen[bytes]] = []
    stack.callback(kill_all, procs)
    envs = [
        stemma_env(urls[i % len(urls)], work / f"client-{i}" / "stemma", client_key)
        for i in range(n_clients)
    ]
    pids = [s.proc.pid for s in servers if s.proc is not None]
    db_pids = [pg.postmaster_pid()] if pg is not None else []
    ready, results, t_go, cpu, problems = run_clients(
        "stemma", n_clients, steps, work, envs, pids, timeout, procs, db_pids=db_pids
    )
    rows = verify_stemma(urls, ready, steps, work, reader_key)
    problems += server_log_problems([s.log_path for s in servers])
    if pg is not None:
        problems += [f"postgresql: {ln}" for ln in pg.problems()]
    return summarize(setup, steps, steps, results, t_go, cpu, rows, problems)


def bench_mlflow(
    n_clients: int, steps: int, steps_target: int, timeout: float, stack: contextlib.ExitStack
) -> Result:
    """``mlflow server`` over SQLite, one experiment created over REST, then the clients."""
    import httpx

    work = Path(tempfile.mkdtemp(prefix="stemma-bench-ingest-mlflow-"))
    stack.callback(shutil.rmtree, work, True)
    server = MlflowServer(work)
    stack.callback(server.stop)
    server.start()
    resp = httpx.post(
        f"{server.url}/api/2.0/mlflow/experiments/create", json={"name": "ingest"}, timeout=60
    )
    resp.raise_for_status()
    experiment_id = str(resp.json()["experiment_id"])
    procs: list[subprocess.Popen[bytes]] = []
    stack.callback(kill_all, procs)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STEMMA_", "MLFLOW_"))}
    env["MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING"] = "false"
    assert server.proc is not None
    ready, results, t_go, cpu, problems = run_clients(
        "mlflow",
        n_clients,
        steps,
        work,
        [env] * n_clients,
        [server.proc.pid],
        timeout,
        procs,
        extra_args=["--uri", server.url, "--experiment-id", experiment_id],
    )
    rows = verify_mlflow(server.url, ready, steps)
    problems += server_log_problems([server.log_path])
    result = summarize("mlflow", steps, steps_target, results, t_go, cpu, rows, problems)
    result.rows_expected //= POINTS_PER_STEP  # report rows (steps), as for Stemma
    result.rows_found //= POINTS_PER_STEP
    return result


def kill_all(procs: Sequence[subprocess.Popen[bytes]]) -> None:
    """Stop every client this script started, by its own handle: terminate, then kill."""
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=10)


# --------------------------------------------------------------------------- report

HEADERS = [
    "tool / setup",
    "clients",
    "steps per client",
    "total points",
    "wall",
    "points/s",
    "batch p50",
    "batch p99",
    "batches",
    "server CPU",
    "database CPU",
    "client CPU",
    "machine busy",
    "rows read back",
]


def table_rows(results: Sequence[Result]) -> list[list[str]]:
    rows = []
    for r in results:
        steps = f"{r.steps:,}" + (f" of {r.steps_target:,} *" if r.capped else "")
        rows.append(
            [
                LABELS[r.setup],
                str(r.clients),
                steps,
                f"{r.total_points:,}",
                f"{r.wall_s:.2f} s",
                f"{r.points_per_s:,.0f}",
                f"{r.p50_ms:,.1f} ms",
                f"{r.p99_ms:,.1f} ms",
                f"{r.batches:,}",
                f"{r.server_cpu_s:.2f} s ({r.server_cpu_s / r.cpu_window_s:.2f} cores)",
                "in server" if r.db_cpu_s is None else f"{r.db_cpu_s:.2f} s",
                f"{r.client_cpu_s:.2f} s",
                f"{r.machine_busy_s:.2f} of {NCPU * r.cpu_window_s:.2f} s",
                f"{r.rows_found:,} of {r.rows_expected:,}",
            ]
        )
    return rows


def verdicts(results: Sequence[Result]) -> list[tuple[str, bool]]:
    """Stemma against MLflow (>= 20x) and where the time goes (the server should be the
    limit, not the clients), for each Stemma setup."""
    by = {r.setup: r for r in results}
    out: list[tuple[str, bool]] = []
    m = by.get("mlflow")
    if "stemma-pg" in by and "stemma-pg-auth" in by:
        cost = 1 - by["stemma-pg-auth"].points_per_s / by["stemma-pg"].points_per_s
        out.append(
            (
                f"authentication costs {cost:.0%} of PostgreSQL ingest throughput "
                "(a key and a role check on every frame), target <= 15%",
                cost <= 0.15,
            )
        )
    for setup in ("stemma-sqlite", "stemma-pg", "stemma-pg-auth"):
        s = by.get(setup)
        if s is None:
            continue
        if m is not None:
            ratio = s.points_per_s / m.points_per_s
            out.append(
                (
                    f"{LABELS[setup]}: {ratio:,.1f}x MLflow's points/s ({s.points_per_s:,.0f} "
                    f"vs {m.points_per_s:,.0f}), target >= {TARGET_RATIO:g}x",
                    ratio >= TARGET_RATIO,
                )
            )
        out.append(
            (
                f"{LABELS[setup]}: server-side CPU {s.server_side_cpu_s:.2f} s vs clients' "
                f"{s.client_cpu_s:.2f} s (the server must be the limit)",
                s.server_bound,
            )
        )
        out.append((f"{LABELS[setup]}: all {s.rows_expected:,} rows read back", s.verified))
    return out


def report(results: Sequence[Result]) -> None:
    print_table("Sustained ingest", HEADERS, table_rows(results))
    for r in results:
        if r.capped:
            est = r.clients * r.steps_target * POINTS_PER_STEP / r.points_per_s
            print(
                f"  * {LABELS[r.setup]} ran {r.steps:,} of {r.steps_target:,} steps per client; "
                f"points/s is from what ran; the full workload would take about {fmt_s(est)}"
            )
        rows_per_batch = r.clients * r.steps / r.batches if r.batches else 0
        print(
            f"  {LABELS[r.setup]} {r.version}: slowest logging loop {fmt_s(r.loop_s)}, "
            f"{rows_per_batch:,.0f} steps per batch on average, HTTP statuses {r.statuses or '-'}"
        )
        print(f"    CPU in the timed window {r.cpu_breakdown()}")
    for text, ok in verdicts(results):
        print(f"  [{'PASS' if ok else 'MISS'}] {text}")
    for r in results:
        if r.problems:
            print(f"  !! {LABELS[r.setup]}: {len(r.problems)} problem(s):")
            for p in r.problems[:40]:
                print(f"     {p}")


# --------------------------------------------------------------------------- main


def git_state() -> str:
    """HEAD, plus the files under stemma/ that differ from it (others may be editing)."""

    def git(*args: str) -> str:
        proc = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
        return proc.stdout.strip()

    dirty = git("status", "--short", "--", "stemma").splitlines()
    head = git("rev-parse", "--short", "HEAD") or "unknown"
    return head + (f" + uncommitted changes in {len(dirty)} stemma file(s)" if dirty else "")


def _sigterm(_signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt  # so the ExitStack stops servers and clients on `kill`, too


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, help=f"steps per client (default {STEPS:,})")
    ap.add_argument("--clients", type=int, help=f"client processes (default {CLIENTS})")
    ap.add_argument(
        "--mlflow-steps",
        type=int,
        default=MLFLOW_STEP_CAP,
        help="cap on MLflow's steps per client (default %(default)s)",
    )
    ap.add_argument("--setups", default=",".join(SETUPS), help="comma-separated subset")
    ap.add_argument("--quick", action="store_true", help="4 clients x 1,000 steps, 1 run each")
    ap.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="runs of each Stemma setup; the median is reported (MLflow runs once)",
    )
    ap.add_argument("--timeout", type=float, default=900, help="seconds per phase per setup")
    ap.add_argument("--no-save", action="store_true", help="do not write bench/results/*.json")
    ap.add_argument("--worker", choices=("stemma", "mlflow"), help=argparse.SUPPRESS)
    ap.add_argument("--index", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--uri", help=argparse.SUPPRESS)
    ap.add_argument("--experiment-id", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.worker == "stemma":
        worker_stemma(args.steps, args.work, args.index)
        return 0
    if args.worker == "mlflow":
        worker_mlflow(args.steps, args.work, args.index, args.uri, args.experiment_id)
        return 0

    steps = args.steps or (QUICK_STEPS if args.quick else STEPS)
    clients = args.clients or (QUICK_CLIENTS if args.quick else CLIENTS)
    setups = [s for s in args.setups.split(",") if s]
    unknown = set(setups) - set(SETUPS)
    if unknown:
        ap.error(f"unknown setups {sorted(unknown)}; choose from {', '.join(SETUPS)}")
    if "mlflow" in setups and not PEERS_PYTHON.exists():
        print(
            f"note: {PEERS_PYTHON} is missing (make bench-deps); skipping mlflow", file=sys.stderr
        )
        setups.remove("mlflow")
    if Path(sys.executable).resolve() != STEMMA_PYTHON.resolve():
        print(f"note: run this with {STEMMA_PYTHON} (servers start with sys.executable)")

    signal.signal(signal.SIGTERM, _sigterm)
    started = time.time()
    # The machine and the checkout may be shared: say what else was running and what code ran.
    load_at_start = os.getloadavg()
    code = git_state()
    print(f"load average at start {load_at_start}; stemma at {code}", file=sys.stderr)
    results: list[Result] = []
    failures: list[str] = []
    all_runs: list[Result] = []
    for setup in setups:
        reps = 1 if setup == "mlflow" or args.quick else args.repeats
        runs: list[Result] = []
        for rep in range(reps):
            t0 = time.monotonic()
            print(
                f"-- {LABELS[setup]}: {clients} clients, run {rep + 1}/{reps} ...",
                file=sys.stderr,
                flush=True,
            )
            try:
                with contextlib.ExitStack() as stack:  # servers, clients, dirs: always undone
                    if setup == "mlflow":
                        n = min(steps, args.mlflow_steps)
                        r = bench_mlflow(clients, n, steps, args.timeout, stack)
                    else:
                        r = bench_stemma(setup, clients, steps, args.timeout, stack)
            except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
                failures.append(f"{setup}: {exc}")
                print(f"!! {setup} failed: {exc}", file=sys.stderr)
                continue
            runs.append(r)
            print(
                f"   {r.points_per_s:,.0f} points/s, wall {r.wall_s:.2f} s "
                f"({time.monotonic() - t0:.0f} s with setup and read-back)",
                file=sys.stderr,
                flush=True,
            )
        all_runs += runs
        if runs:  # the median run by throughput stands for the setup (odd repeats: a real run)
            ranked = sorted(runs, key=lambda x: x.points_per_s)
            median = ranked[(len(ranked) - 1) // 2]
            median.problems += [p for x in runs if x is not median for p in x.problems]
            median.verified = all(x.verified for x in runs)
            results.append(median)
            if len(runs) > 1:
                spread = ", ".join(f"{x.points_per_s:,.0f}" for x in runs)
                print(f"   points/s over {len(runs)} runs: {spread}", file=sys.stderr)

    if results:
        report(results)
        for setup in setups:
            runs = [x for x in all_runs if x.setup == setup]
            if len(runs) > 1:
                each = ", ".join(f"{x.points_per_s:,.0f} ({x.wall_s:.2f} s)" for x in runs)
                print(f"  {LABELS[setup]}: {len(runs)} runs, points/s (wall): {each}; median shown")
        print(f"\ntotal wall time {time.time() - started:,.0f} s")
        print(f"\nmarkdown:\n\n{markdown_table(HEADERS, table_rows(results))}\n")
    if not args.no_save:
        path = save_results(
            "ingest",
            {
                "clients": clients,
                "steps": steps,
                "results": [
                    dataclasses.asdict(r) | {"server_bound": r.server_bound} for r in results
                ],
                "all_runs": [dataclasses.asdict(r) for r in all_runs],
                "verdicts": [{"check": t, "pass": ok} for t, ok in verdicts(results)],
                "failures": failures,
                "machine_extra": {"cpu_model": cpu_model(), "loadavg_at_start": load_at_start},
                "code": code,
            },
        )
        print(f"results saved to {path.relative_to(ROOT)}")
    for f in failures:
        print(f"FAILED: {f}", file=sys.stderr)
    bad = failures or any(not r.verified for r in results)
    return 1 if bad else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # servers, clients and temp dirs are already cleaned up
        print("interrupted; every server, client and temp dir was removed", file=sys.stderr)
        sys.exit(130)

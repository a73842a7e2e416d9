"""Deduplication: what 20 versions of a big, slowly changing file cost to store.

Three cases, each 20 successive versions of one file, logged as 20 versions of one artifact:

* (a) a 256 MiB float32 checkpoint (64 tensors of 4 MiB); each version rewrites ~10% of the
  tensors entirely (6 of 64, chosen at random) with new values;
* (b) a CSV table of ~64 MiB (ids, timestamps, names, prices, scores, ...); each version
  appends 2% more rows;
* (c) a 256 MiB file of random bytes; each version is the previous one with 1 MiB of new
  random bytes inserted at a random (unaligned) offset.

Every version is generated once, deterministically (fixed seeds), into a temp dir under
/tmp, and every tool logs that same file before the next version replaces it ("lockstep"),
so at most two versions are on disk at a time. Every Python tool is one fresh subprocess
per case (this script with ``--worker``), under .venv for Stemma and .bench-venv for the
peers; it stays alive for the case's versions and logs one when the parent says so. DVC
runs through its CLI. Storage is the growth of each tool's directories after the last
version (apparent bytes, and allocated blocks), time is the sum over versions of the
logging call(s); generating the data is not timed.

A last measurement compares logging one fresh 1 GiB random file into a fresh Stemma store
with the floor ``cp FILE DEST && sha256sum FILE``.

Usage::

    .venv/bin/python bench/dedup.py                     # full sizes, 20 versions
    .venv/bin/python bench/dedup.py --quick             # 32 MiB files, 5 versions (< 2 min)
    .venv/bin/python bench/dedup.py --cases a,c --tools stemma,stemma-file --versions 10
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from benchutil import (
    PEERS_PYTHON,
    ROOT,
    STEMMA_PYTHON,
    WANDB_DIRS,
    disk_usage,
    fmt_bytes,
    fmt_s,
    markdown_table,
    print_table,
    save_results,
    timed_cli,
    tool_env,
    wandb_settings,
)

# No third-party import at module level: workers run this file under both venvs, and the
# parent imports numpy only to generate the data.

DVC = ROOT / ".bench-venv" / "bin" / "dvc"
MiB = 1 << 20
SEED = 20261128
PROTO = "@@dedup "  # prefix of the worker's protocol lines on stdout

TOOLS = ("stemma", "stemma-file", "wandb", "dvc", "mlflow")
PEER_TOOLS = ("wandb", "dvc", "mlflow")
LABELS = {
    "stemma": "stemma (chunked)",
    "stemma-file": "stemma (file-level)",
    "wandb": "wandb (offline staging)",
    "dvc": "dvc",
    "mlflow": "mlflow",
}
REFERENCE = "stemma-file"  # the ratio columns are against this row
CASES = ("a", "b", "c", "baseline")

# Per case: artifact name, artifact type, file name inside the artifact (and on disk).
ARTIFACT = {
    "a": ("ckpt", "model", "model.bin"),
    "b": ("table", "dataset", "data.csv"),
    "c": ("blob", "dataset", "blob.bin"),
    "baseline": ("big", "dataset", "big.bin"),
}

# The targets for the chunked store, against the file-level one.
TARGET_BYTES = {"a": 0.25, "b": 0.1, "c": 0.1}
TARGET_TIME = 1.5  # chunked logging time <= 1.5 x file-level, per case
TARGET_BASELINE = 1.5  # logging a fresh file <= 1.5 x (cp + sha256sum)


@dataclasses.dataclass(frozen=True)
class Sizes:
    """The workload; ``--quick`` shrinks the files (not the granularity of the changes)."""

    versions: int
    tensors: int  # (a)
    tensor_bytes: int
    perturb: float  # fraction of tensors rewritten per version
    csv_bytes: int  # (b) size of version 0
    csv_growth: float  # rows appended per version, as a fraction of the current rows
    blob_bytes: int  # (c) size of version 0
    insert_bytes: int
    baseline_bytes: int


FULL = Sizes(
    versions=20,
    tensors=64,
    tensor_bytes=4 * MiB,
    perturb=0.10,
    csv_bytes=64 * MiB,
    csv_growth=0.02,
    blob_bytes=256 * MiB,
    insert_bytes=1 * MiB,
    baseline_bytes=1024 * MiB,
)
QUICK = dataclasses.replace(
    FULL, versions=5, tensors=8, csv_bytes=32 * MiB, blob_bytes=32 * MiB, baseline_bytes=64 * MiB
)


# --------------------------------------------------------------------------- test data
# Each generator writes version k of its case to ``path`` from version k-1 (already at
# ``path``), through a temp file renamed into place, so every version is a new inode and no
# tool's link or stat cache can see a half-written file. Only the parent calls them.


def _rng(case: str, version: int) -> Any:
    import numpy as np

    return np.random.default_rng([SEED, ord(case[0]), version])


def _replace(path: Path, write: Callable[[Any], None]) -> None:
    tmp = path.with_name(path.name + ".next")
    with tmp.open("wb") as f:
        write(f)
    os.replace(tmp, path)


def gen_checkpoint(path: Path, version: int, sizes: Sizes) -> str:
    """(a) ``tensors`` float32 tensors back to back; version k>0 rewrites round(10%) of them
    with new values (different scale per tensor, as layers have)."""
    import numpy as np

    rng = _rng("a", version)
    n = sizes.tensor_bytes // 4

    def tensor(i: int) -> bytes:
        scale = 0.02 * (1 + i % 7)
        return (rng.standard_normal(n, dtype=np.float32) * np.float32(scale)).tobytes()

    if version == 0:
        _replace(path, lambda f: [f.write(tensor(i)) for i in range(sizes.tensors)])
        return f"{sizes.tensors} tensors"
    k = max(1, round(sizes.perturb * sizes.tensors))
    chosen = sorted(int(i) for i in rng.choice(sizes.tensors, size=k, replace=False))

    def write(f: Any) -> None:
        with path.open("rb") as src:
            shutil.copyfileobj(src, f, 16 * MiB)
        for i in chosen:
            f.seek(i * sizes.tensor_bytes)
            f.write(tensor(i))

    _replace(path, write)
    return f"rewrote tensors {chosen}"


CSV_HEADER = b"id,ts,user,country,product,category,price,qty,score,status,note\n"
_WORDS = (
    "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november "
    "oscar papa quebec romeo sierra tango uniform victor whiskey xray yankee zulu"
)
_COUNTRIES = "US DE FR GB JP BR IN CN CA AU ES IT NL SE PL KR MX ZA NG AR"
_CATEGORIES = "books toys garden kitchen sports tools music games office beauty"
_STATUS = "ok ok ok ok pending refunded failed"  # space-separated vocabularies


def csv_rows(first_id: int, n: int, rng: Any) -> bytes:
    """``n`` realistic rows starting at id ``first_id`` (numbers, timestamps, strings)."""
    import numpy as np

    ids = np.arange(first_id, first_id + n)
    ts = np.datetime_as_string(
        np.datetime64("2024-01-01T00:00:00") + (ids * 7 + rng.integers(0, 7, n)), unit="s"
    )
    words = np.array(_WORDS.split())

    def choice(vocab: str) -> Any:
        arr = np.array(vocab.split())
        return arr[rng.integers(0, len(arr), n)]

    users = rng.integers(0, 50_000, n)
    country = choice(_COUNTRIES)
    prod_a = words[rng.integers(0, len(words), n)]
    prod_b = rng.integers(100, 9999, n)
    cat = choice(_CATEGORIES)
    price = np.round(rng.lognormal(3.0, 1.0, n), 2)
    qty = rng.integers(1, 20, n)
    score = rng.random(n)
    status = choice(_STATUS)
    note_len = rng.integers(0, 5, n)
    note_words = words[rng.integers(0, len(words), (n, 4))]
    lines = [
        f"{i},{t},user_{u:05d},{c},{pa}-{pb},{ca},{p:.2f},{q},{s:.6f},{st},{' '.join(nw[:nl])}\n"
        for i, t, u, c, pa, pb, ca, p, q, s, st, nl, nw in zip(
            ids.tolist(),
            ts.tolist(),
            users.tolist(),
            country.tolist(),
            prod_a.tolist(),
            prod_b.tolist(),
            cat.tolist(),
            price.tolist(),
            qty.tolist(),
            score.tolist(),
            status.tolist(),
            note_len.tolist(),
            note_words.tolist(),
            strict=True,
        )
    ]
    return "".join(lines).encode()


def gen_csv(path: Path, version: int, sizes: Sizes, state: dict[str, Any]) -> str:
    """(b) version 0: rows until ``csv_bytes``; version k>0 appends 2% of the current rows."""
    rng = _rng("b", version)
    block = 100_000
    if version == 0:
        rows = 0

        def write0(f: Any) -> None:
            nonlocal rows
            f.write(CSV_HEADER)
            size = len(CSV_HEADER)
            while size < sizes.csv_bytes:
                chunk = csv_rows(rows, block, rng)
                if size + len(chunk) > sizes.csv_bytes:  # trim the last block to the target
                    per_row = len(chunk) / block
                    want = max(1, int((sizes.csv_bytes - size) / per_row))
                    chunk = b"".join(chunk.splitlines(keepends=True)[:want])
                    f.write(chunk)
                    rows += want
                    return
                f.write(chunk)
                size += len(chunk)
                rows += block

        _replace(path, write0)
        state["rows"] = rows
        return f"{rows:,} rows"
    add = max(1, round(sizes.csv_growth * state["rows"]))
    first = state["rows"]

    def write(f: Any) -> None:
        with path.open("rb") as src:
            shutil.copyfileobj(src, f, 16 * MiB)
        done = 0
        while done < add:
            n = min(block, add - done)
            f.write(csv_rows(first + done, n, rng))
            done += n

    _replace(path, write)
    state["rows"] = first + add
    return f"+{add:,} rows = {state['rows']:,}"


def gen_blob(path: Path, version: int, sizes: Sizes) -> str:
    """(c) version 0: random bytes; version k>0 inserts ``insert_bytes`` new random bytes at
    a random offset of version k-1 (anywhere, not aligned)."""
    rng = _rng("c", version)
    if version == 0:

        def write0(f: Any) -> None:
            left = sizes.blob_bytes
            while left:
                n = min(64 * MiB, left)
                f.write(rng.bytes(n))
                left -= n

        _replace(path, write0)
        return "random bytes"
    size = path.stat().st_size
    offset = int(rng.integers(0, size + 1))
    insert = rng.bytes(sizes.insert_bytes)

    def write(f: Any) -> None:
        with path.open("rb") as src:
            left = offset
            while left:
                buf = src.read(min(16 * MiB, left))
                f.write(buf)
                left -= len(buf)
            f.write(insert)
            shutil.copyfileobj(src, f, 16 * MiB)

    _replace(path, write)
    return f"inserted {sizes.insert_bytes:,} bytes at offset {offset:,}"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while buf := f.read(16 * MiB):
            h.update(buf)
    return h.hexdigest()


# --------------------------------------------------------------------------- workers
# A worker is one tool in one fresh interpreter for one case. It prints a "ready" line, then
# for each {"op": "log", "path", "version"} line on stdin logs that file as the next version
# and prints its timings; {"op": "done", ...} lets it check what it stored and exit.
# ``log_s`` is the time until the tool says the version is stored (the sum over versions is
# the table's "log time"); ``finish_s`` is what the run's finish call costs after that.


class StemmaWorker:
    """A new ``stemma.init`` run per version (untimed), then ``Artifact`` + ``add_file`` +
    ``log_artifact`` + ``wait`` (timed), then ``finish`` (reported separately)."""

    def __init__(self, case: str) -> None:
        t0 = time.perf_counter()
        import stemma

        self.import_s = time.perf_counter() - t0
        self.stemma = stemma
        self.case = case
        self.name, self.type, self.file = ARTIFACT[case]

    def info(self) -> dict[str, Any]:
        return {"import_s": self.import_s, "version": self.stemma.__version__}

    def log(self, path: Path, version: int) -> dict[str, Any]:
        stemma = self.stemma
        run = stemma.init(project="dedup", job_type="bench")
        t0 = time.perf_counter()
        art = stemma.Artifact(self.name, type=self.type)
        art.add_file(str(path), name=self.file)
        run.log_artifact(art)
        art.wait()
        t1 = time.perf_counter()
        run.finish()
        t2 = time.perf_counter()
        return {"log_s": t1 - t0, "finish_s": t2 - t1, "artifact_version": art.version}

    def done(self, cmd: dict[str, Any], work: Path) -> dict[str, Any]:
        """Download the first and the last version and compare their SHA-256 with the
        source's (outside every timed region); also check the version count."""
        api = self.stemma.Api()
        problems = []
        checks = {0: cmd["sha256"][0], len(cmd["sha256"]) - 1: cmd["sha256"][-1]}
        for v, want in checks.items():
            root = work / f"download-v{v}"
            try:
                art = api.artifact(f"dedup/{self.name}:v{v}")
                art.download(root=str(root))
                got_file = root / self.file
                got = sha256_file(got_file) if got_file.is_file() else "missing"
            except Exception as exc:  # reported; fails the script
                problems.append(f"v{v}: {type(exc).__name__}: {exc}")
                continue
            if got != want:
                problems.append(f"v{v}: downloaded sha256 {got[:16]}..., source {want[:16]}...")
            shutil.rmtree(root, ignore_errors=True)
        try:
            latest = api.artifact(f"dedup/{self.name}:latest").version
            if latest != f"v{len(cmd['sha256']) - 1}":
                problems.append(f"latest is {latest}, expected v{len(cmd['sha256']) - 1}")
        except Exception as exc:
            problems.append(f"latest: {type(exc).__name__}: {exc}")
        return {"verified": not problems, "problems": problems}


class WandbWorker:
    """A new offline ``wandb.init`` per version (untimed), then ``Artifact`` + ``add_file`` +
    ``log_artifact`` + ``finish`` (timed: ``log_artifact`` returns before wandb has handled
    the file, as in bench/artifacts.py)."""

    def __init__(self, case: str) -> None:
        t0 = time.perf_counter()
        import wandb

        self.import_s = time.perf_counter() - t0
        self.wandb = wandb
        self.name, self.type, self.file = ARTIFACT[case]

    def info(self) -> dict[str, Any]:
        return {"import_s": self.import_s, "version": self.wandb.__version__}

    def log(self, path: Path, version: int) -> dict[str, Any]:
        wandb = self.wandb
        run = wandb.init(project="dedup", job_type="bench", settings=wandb_settings(wandb))
        t0 = time.perf_counter()
        art = wandb.Artifact(self.name, type=self.type)
        art.add_file(str(path), name=self.file)
        run.log_artifact(art)
        t1 = time.perf_counter()
        run.finish()
        t2 = time.perf_counter()
        return {"log_s": t2 - t0, "log_call_s": t1 - t0, "finish_s": 0.0}

    def done(self, cmd: dict[str, Any], work: Path) -> dict[str, Any]:
        return {}


class MlflowWorker:
    """A new MLflow run per version (SQLite tracking store, artifacts under ``mlruns/``),
    ``mlflow.log_artifact(file)`` timed, ``end_run`` reported separately. MLflow copies the
    whole file every time."""

    def __init__(self, case: str) -> None:
        t0 = time.perf_counter()
        import mlflow
        from mlflow.tracking import MlflowClient

        self.import_s = time.perf_counter() - t0
        self.mlflow = mlflow
        self.client_cls = MlflowClient
        self.exp_id: str | None = None

    def info(self) -> dict[str, Any]:
        return {"import_s": self.import_s, "version": self.mlflow.__version__}

    def log(self, path: Path, version: int) -> dict[str, Any]:
        mlflow = self.mlflow
        work = Path.cwd()
        if self.exp_id is None:
            uri = f"sqlite:///{work / 'mlflow.db'}"
            mlflow.set_tracking_uri(uri)
            self.exp_id = self.client_cls(tracking_uri=uri).create_experiment(
                "dedup", artifact_location=(work / "mlruns").as_uri()
            )
        mlflow.start_run(experiment_id=self.exp_id, run_name=f"v{version}")
        t0 = time.perf_counter()
        mlflow.log_artifact(str(path))
        t1 = time.perf_counter()
        mlflow.end_run()
        t2 = time.perf_counter()
        return {"log_s": t1 - t0, "finish_s": t2 - t1}

    def done(self, cmd: dict[str, Any], work: Path) -> dict[str, Any]:
        return {}


WORKERS: dict[str, Callable[[str], Any]] = {
    "stemma": StemmaWorker,
    "stemma-file": StemmaWorker,
    "wandb": WandbWorker,
    "mlflow": MlflowWorker,
}


def reply(obj: dict[str, Any]) -> None:
    sys.stdout.write("\n" + PROTO + json.dumps(obj) + "\n")
    sys.stdout.flush()


def run_worker(tool: str, case: str) -> None:
    """Entry point of ``--worker`` (cwd is the tool's work dir)."""
    try:
        w = WORKERS[tool](case)
    except ImportError as exc:
        reply({"skipped": f"cannot import: {exc}"})
        return
    reply({"ready": True, **w.info()})
    for line in sys.stdin:
        if not line.strip():
            continue
        cmd = json.loads(line)
        if cmd["op"] == "log":
            reply(w.log(Path(cmd["path"]), cmd["version"]))
        elif cmd["op"] == "done":
            reply(w.done(cmd, Path.cwd()))
            return


# --------------------------------------------------------------------------- parent side


def bench_env(tool: str, work: Path) -> dict[str, str]:
    """benchutil.tool_env, with chunking off for the file-level Stemma row."""
    env = tool_env(tool, work)
    if tool == "stemma-file":
        env["STEMMA_CHUNKING"] = "off"
    return env


def store_paths(tool: str, work: Path, case: str) -> list[Path]:
    """The directories whose growth is the tool's storage cost. Stemma's download cache
    (``STEMMA_CACHE_DIR``) is not counted: only the verification after the last version
    uses it, and that runs after the measurement."""
    if tool.startswith("stemma"):
        return [work / "stemma"]
    if tool == "wandb":
        return [work / f"wandb-{k.lower()}" for k in WANDB_DIRS]
    if tool == "mlflow":
        return [work / "mlflow.db", work / "mlruns"]
    if tool == "dvc":
        repo = work / "repo"
        return [repo / ".dvc", repo / f"{ARTIFACT[case][2]}.dvc", work / "dvc-site-cache"]
    return []


class Worker:
    """A ``--worker`` subprocess driven over stdin/stdout; stderr goes to a file."""

    def __init__(self, tool: str, case: str, work: Path, timeout: float) -> None:
        python = PEERS_PYTHON if tool in PEER_TOOLS else STEMMA_PYTHON
        cmd = [str(python), str(Path(__file__).resolve()), "--worker", tool, "--case", case]
        self.label = f"{tool} worker, case ({case})"
        self.timeout = timeout
        self.stderr_path = work / "worker.stderr"
        self.stderr = self.stderr_path.open("w")
        self.proc = subprocess.Popen(
            cmd,
            cwd=work,
            env=bench_env(tool, work),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            text=True,
            bufsize=1,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith(PROTO):
                self.lines.put(line[len(PROTO) :])
        self.lines.put(None)

    def tail(self) -> str:
        self.stderr.flush()
        try:
            text = self.stderr_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.strip().splitlines()[-25:])

    def receive(self) -> dict[str, Any]:
        try:
            line = self.lines.get(timeout=self.timeout)
        except queue.Empty:
            self.kill()
            raise RuntimeError(f"{self.label} timed out after {self.timeout:.0f} s") from None
        if line is None:
            self.proc.wait()
            raise RuntimeError(f"{self.label} exited with {self.proc.returncode}:\n{self.tail()}")
        return json.loads(line)

    def send(self, obj: dict[str, Any]) -> dict[str, Any]:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps(obj) + "\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            self.proc.wait()
            raise RuntimeError(
                f"{self.label} exited with {self.proc.returncode}:\n{self.tail()}"
            ) from None
        return self.receive()

    def close(self) -> None:
        try:
            if self.proc.stdin:
                self.proc.stdin.close()
            self.proc.wait(timeout=120)
        except (subprocess.TimeoutExpired, OSError):
            self.kill()
        self.stderr.close()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class DvcTool:
    """``dvc init --no-scm`` in a fresh repo; per version the file is copied into the
    workspace (untimed; the previous workspace file is unlinked first, so nothing can write
    through a link into the cache), then ``dvc add`` (timed, CLI start-up included), which
    hashes the file and stores it in ``.dvc/cache``. ``dvc add`` already commits the new
    version to the cache, so no separate ``dvc commit`` runs."""

    def __init__(self, case: str, work: Path, timeout: float) -> None:
        self.env = tool_env("dvc", work)
        self.repo = work / "repo"
        self.repo.mkdir()
        self.file = ARTIFACT[case][2]
        self.timeout = timeout
        subprocess.run(
            [str(DVC), "init", "--no-scm", "-q"], cwd=self.repo, check=True, env=self.env
        )

    def log(self, path: Path, version: int) -> dict[str, Any]:
        dst = self.repo / self.file
        dst.unlink(missing_ok=True)
        shutil.copyfile(path, dst)
        os.sync()
        took = timed_cli([str(DVC), "add", "-q", self.file], self.repo, self.env, self.timeout)
        shutil.copyfile(self.repo / f"{self.file}.dvc", self.repo.parent / f"v{version}.dvc")
        return {"log_s": took, "finish_s": 0.0}


@dataclasses.dataclass
class Series:
    """One tool's results over the versions of one case."""

    tool: str
    case: str
    versions: int = 0
    log_s: list[float] = dataclasses.field(default_factory=list)
    finish_s: list[float] = dataclasses.field(default_factory=list)
    apparent: int | None = None
    blocks: int | None = None
    verified: bool | None = None
    problems: list[str] = dataclasses.field(default_factory=list)
    info: dict[str, Any] = dataclasses.field(default_factory=dict)
    skipped: str = ""
    failed: str = ""

    @property
    def total_s(self) -> float:
        return sum(self.log_s)

    @property
    def active_ok(self) -> bool:
        """Measured: neither skipped nor failed, and at least one version logged."""
        return not (self.skipped or self.failed) and self.versions > 0


class Participant:
    """One tool in one case: its work dir, its worker (or DVC), its storage baseline."""

    def __init__(self, tool: str, case: str, root: Path, timeout: float) -> None:
        self.tool = tool
        self.case = case
        self.work = root / tool
        self.work.mkdir()
        self.series = Series(tool, case)
        self.worker: Worker | None = None
        self.dvc: DvcTool | None = None
        if tool == "wandb":
            for k in WANDB_DIRS:
                (self.work / f"wandb-{k.lower()}").mkdir(exist_ok=True)
        self.paths = store_paths(tool, self.work, case)
        try:
            if tool == "dvc":
                self.dvc = DvcTool(case, self.work, timeout)
            else:
                self.worker = Worker(tool, case, self.work, timeout)
                hello = self.worker.receive()
                if hello.get("skipped"):
                    self.series.skipped = hello["skipped"]
                    self.worker.close()
                    self.worker = None
                else:
                    self.series.info = hello
        except (RuntimeError, subprocess.CalledProcessError, OSError) as exc:
            self.fail(exc)
        self.before = disk_usage(self.paths)

    @property
    def active(self) -> bool:
        return not (self.series.skipped or self.series.failed)

    def fail(self, exc: BaseException) -> None:
        self.series.failed = str(exc)
        print(f"!! {LABELS[self.tool]} ({self.case}): {exc}", file=sys.stderr)
        if self.worker:
            self.worker.kill()
            self.worker.close()
            self.worker = None

    def log(self, path: Path, version: int) -> None:
        if not self.active:
            return
        try:
            if self.dvc:
                res = self.dvc.log(path, version)
            else:
                assert self.worker is not None
                res = self.worker.send({"op": "log", "path": str(path), "version": version})
        except (RuntimeError, subprocess.SubprocessError, OSError) as exc:
            self.fail(exc)
            return
        self.series.log_s.append(res["log_s"])
        self.series.finish_s.append(res.get("finish_s", 0.0))
        self.series.versions += 1

    def finish(self, shas: list[str]) -> None:
        """Measure the storage (before anything else touches the store), then let the
        worker verify and exit."""
        if not self.active:
            return
        after = disk_usage(self.paths)
        self.series.apparent = after[0] - self.before[0]
        self.series.blocks = after[1] - self.before[1]
        if self.worker:
            try:
                res = self.worker.send({"op": "done", "sha256": shas})
            except RuntimeError as exc:
                self.fail(exc)
                return
            if "verified" in res:
                self.series.verified = res["verified"]
                self.series.problems = res["problems"]
            self.worker.close()
            self.worker = None

    def close(self) -> None:
        if self.worker:
            self.worker.kill()
            self.worker.close()


def generator(case: str, sizes: Sizes) -> Callable[[Path, int], str]:
    if case == "a":
        return lambda p, v: gen_checkpoint(p, v, sizes)
    if case == "b":
        state: dict[str, Any] = {}
        return lambda p, v: gen_csv(p, v, sizes, state)
    return lambda p, v: gen_blob(p, v, sizes)


def unique_bytes(case: str, sizes: Sizes, version_bytes: Sequence[int]) -> int:
    """The bytes a perfect deduplicator must keep (before compression): version 0 plus what
    each later version adds (rewritten tensors, appended rows, inserted bytes)."""
    if not version_bytes:
        return 0
    later = len(version_bytes) - 1
    if case == "a":
        k = max(1, round(sizes.perturb * sizes.tensors))
        return version_bytes[0] + later * k * sizes.tensor_bytes
    if case == "b":
        return version_bytes[-1]  # every version is a prefix of the next
    return version_bytes[0] + later * sizes.insert_bytes


def run_case(
    case: str, tools: Sequence[str], sizes: Sizes, timeout: float
) -> tuple[list[Series], dict[str, Any]]:
    """All tools in lockstep: version k is generated once, then every tool logs it."""
    root = Path(tempfile.mkdtemp(prefix=f"stemma-bench-dedup-{case}-", dir="/tmp"))
    data_dir = root / "data"
    data_dir.mkdir()
    path = data_dir / ARTIFACT[case][2]
    gen = generator(case, sizes)
    shas: list[str] = []
    version_bytes: list[int] = []
    parts: list[Participant] = []
    try:
        parts = [Participant(t, case, root, timeout) for t in tools]
        for p in parts:
            if p.series.skipped:
                print(f"   note: {LABELS[p.tool]} skipped: {p.series.skipped}", file=sys.stderr)
        for v in range(sizes.versions):
            t0 = time.perf_counter()
            what = gen(path, v)
            shas.append(sha256_file(path))  # also reads the file: every tool starts warm
            version_bytes.append(path.stat().st_size)
            gen_s = time.perf_counter() - t0
            took = []
            for p in parts:
                if not p.active:
                    continue
                os.sync()  # no tool pays for the generator's or the previous tool's writeback
                p.log(path, v)
                if p.active:
                    took.append(f"{p.tool} {fmt_s(p.series.log_s[-1])}")
            print(
                f"  ({case}) v{v:<2d} {fmt_bytes(version_bytes[-1]):>10s} gen {gen_s:5.1f} s "
                f"[{what[:60]}]: {', '.join(took)}",
                file=sys.stderr,
            )
        for p in parts:
            p.finish(shas)
            if p.series.verified is False:
                print(f"!! FAIL {LABELS[p.tool]} ({case}): {p.series.problems}", file=sys.stderr)
    finally:
        for p in parts:
            p.close()
        shutil.rmtree(root, ignore_errors=True)
    meta = {
        "version_bytes": version_bytes,
        "logical_bytes": sum(version_bytes),
        "unique_bytes": unique_bytes(case, sizes, version_bytes),
        "sha256": shas,
    }
    return [p.series for p in parts], meta


def run_baseline(tools: Sequence[str], sizes: Sizes, timeout: float) -> dict[str, Any]:
    """``cp FILE DEST && sha256sum FILE`` of one fresh random file against logging that file
    into a fresh Stemma store (chunked, and file-level when that tool is selected)."""
    root = Path(tempfile.mkdtemp(prefix="stemma-bench-dedup-baseline-", dir="/tmp"))
    out: dict[str, Any] = {"bytes": sizes.baseline_bytes}
    try:
        src = root / "data" / ARTIFACT["baseline"][2]
        src.parent.mkdir()
        with src.open("wb") as f:
            left = sizes.baseline_bytes
            while left:
                n = min(64 * MiB, left)
                f.write(os.urandom(n))
                left -= n
        sha = sha256_file(src)  # also warms the page cache for both sides
        os.sync()
        dest = root / "copy.bin"
        cmd = f'cp "{src}" "{dest}" && sha256sum "{src}" > /dev/null'
        out["cp_sha256sum_s"] = timed_cli(["bash", "-c", cmd], root, dict(os.environ), timeout)
        dest.unlink()
        for tool in [t for t in ("stemma", "stemma-file") if t in tools]:
            os.sync()
            p = Participant(tool, "baseline", root, timeout)
            try:
                p.log(src, 0)
                p.finish([sha])
            finally:
                p.close()
            s = p.series
            if s.failed or s.skipped:
                out[tool] = {"failed": s.failed or s.skipped}
                continue
            out[tool] = {
                "log_s": s.total_s,
                "finish_s": sum(s.finish_s),
                "apparent": s.apparent,
                "verified": s.verified,
                "problems": s.problems,
            }
            shutil.rmtree(p.work, ignore_errors=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return out


# --------------------------------------------------------------------------- report


def case_title(case: str, sizes: Sizes, meta: dict[str, Any]) -> str:
    n = sizes.versions
    last = fmt_bytes(meta["version_bytes"][-1]) if meta.get("version_bytes") else "?"
    k = max(1, round(sizes.perturb * sizes.tensors))
    return {
        "a": f"(a) {n} versions of a {sizes.tensors * sizes.tensor_bytes / MiB:,.0f} MiB float32 "
        f"checkpoint ({sizes.tensors} x {sizes.tensor_bytes / MiB:g} MiB tensors, {k} rewritten "
        f"per version)",
        "b": f"(b) {n} versions of a {sizes.csv_bytes / MiB:,.0f} MiB CSV, "
        f"+{sizes.csv_growth:.0%} rows per version (last: {last})",
        "c": f"(c) {n} versions of a {sizes.blob_bytes / MiB:,.0f} MiB random file, "
        f"+{sizes.insert_bytes / MiB:g} MiB inserted at a random offset per version "
        f"(last: {last})",
    }[case]


HEADERS = [
    "tool",
    "versions",
    "log time (sum)",
    "per version",
    "stored (apparent)",
    "stored (blocks)",
    "x one version",
    "bytes / file-level",
    "time / file-level",
]


def table_rows(rows: Sequence[Series], meta: dict[str, Any]) -> list[list[str]]:
    ref = next((r for r in rows if r.tool == REFERENCE and r.active_ok), None)
    last = meta["version_bytes"][-1] if meta.get("version_bytes") else 0
    out = []
    for r in rows:
        if not r.active_ok:
            last = [ln for ln in r.failed.splitlines() if ln.strip()][-1:]
            why = f"skipped: {r.skipped}" if r.skipped else f"FAILED: {''.join(last)[:120]}"
            out.append([LABELS[r.tool], str(r.versions), why, *["—"] * (len(HEADERS) - 3)])
            continue
        bytes_ratio = time_ratio = "—"
        if ref and ref.apparent and r.apparent is not None:
            bytes_ratio = f"{r.apparent / ref.apparent:.3f}x"
        if ref and ref.total_s:
            time_ratio = f"{r.total_s / ref.total_s:.2f}x"
        out.append(
            [
                LABELS[r.tool] + (" **FAIL**" if r.verified is False else ""),
                str(r.versions),
                fmt_s(r.total_s),
                fmt_s(r.total_s / r.versions) if r.versions else "—",
                fmt_bytes(r.apparent or 0),
                fmt_bytes(r.blocks or 0),
                f"{(r.apparent or 0) / last:.2f}" if last else "—",
                bytes_ratio,
                time_ratio,
            ]
        )
    return out


def verdicts(
    by: dict[tuple[str, str], Series],
    baseline: dict[str, Any] | None,
    metas: dict[str, dict[str, Any]],
) -> list[tuple[str, bool | None, str]]:
    """The issue's targets: (text, PASS/MISS or None when not measurable, detail)."""
    out: list[tuple[str, bool | None, str]] = []
    ideal = {
        c: m["unique_bytes"] / m["logical_bytes"] for c, m in metas.items() if m["logical_bytes"]
    }
    for case, limit in TARGET_BYTES.items():
        s, f = by.get(("stemma", case)), by.get((REFERENCE, case))
        if not s or not f:
            continue
        text = f"({case}) stemma chunked bytes <= {limit}x stemma file-level"
        if not (s.active_ok and f.active_ok and f.apparent):
            out.append((text, None, "not measured"))
            continue
        assert s.apparent is not None
        ratio = s.apparent / f.apparent
        out.append(
            (
                text,
                ratio <= limit,
                f"{fmt_bytes(s.apparent)} vs {fmt_bytes(f.apparent)} = {ratio:.3f}x "
                f"(perfect dedup: {ideal.get(case, 0):.3f}x of the logical bytes)",
            )
        )
    for case in TARGET_BYTES:
        s, f = by.get(("stemma", case)), by.get((REFERENCE, case))
        if not s or not f or not (s.active_ok and f.active_ok and f.total_s):
            continue
        ratio = s.total_s / f.total_s
        out.append(
            (
                f"({case}) stemma chunked log time <= {TARGET_TIME}x file-level",
                ratio <= TARGET_TIME,
                f"{fmt_s(s.total_s)} vs {fmt_s(f.total_s)} = {ratio:.2f}x",
            )
        )
    for case in TARGET_BYTES:
        for tool in ("stemma", REFERENCE):
            s = by.get((tool, case))
            if s and s.verified is not None:
                out.append(
                    (
                        f"({case}) {LABELS[tool]}: first and last version download byte-identical",
                        s.verified,
                        "; ".join(s.problems),
                    )
                )
    b = (baseline or {}).get("stemma")
    if isinstance(b, dict):
        text = f"(baseline) stemma chunked, fresh file <= {TARGET_BASELINE}x cp + sha256sum"
        if "log_s" in b:
            assert baseline is not None
            cp, st = baseline["cp_sha256sum_s"], b["log_s"]
            out.append(
                (text, st <= TARGET_BASELINE * cp, f"{fmt_s(st)} vs {fmt_s(cp)} = {st / cp:.2f}x")
            )
        else:
            out.append((text, False, "stemma FAILED to log the file"))
    return out


def baseline_lines(baseline: dict[str, Any]) -> list[str]:
    size = f"{baseline['bytes'] / MiB:,.0f} MiB"
    cp = baseline["cp_sha256sum_s"]
    lines = [f"baseline: `cp FILE DEST && sha256sum FILE`, fresh {size} random file: {fmt_s(cp)}"]
    for tool in ("stemma", "stemma-file"):
        r = baseline.get(tool)
        if not r:
            continue
        if "log_s" not in r:
            last = [ln for ln in r.get("failed", "").splitlines() if ln.strip()][-1:]
            lines.append(f"baseline: {LABELS[tool]}: FAILED ({''.join(last)[:300]})")
            continue
        ok = {True: "", False: " **download FAIL**", None: ""}[r["verified"]]
        lines.append(
            f"baseline: {LABELS[tool]} logging the same file, fresh store: {fmt_s(r['log_s'])} "
            f"(+ finish {fmt_s(r['finish_s'])}) = {r['log_s'] / cp:.2f}x cp + sha256sum; "
            f"stored {fmt_bytes(r['apparent'])}{ok}"
        )
    return lines


# --------------------------------------------------------------------------- main


def disk_needed(cases: Sequence[str], tools: Sequence[str], sizes: Sizes) -> int:
    """An estimate, with a margin, of the most any one case needs at once (cases run one
    after the other and clean up): the stores of every tool (whole copies for all but
    Stemma's chunked store; measured: wandb keeps one staged copy), DVC's workspace copy
    and two versions of the input."""
    copies = sum({"stemma": 0.3, "wandb": 1.1}.get(t, 1.0) for t in tools)
    extra = 3 + ("dvc" in tools)  # the input's two versions, a temp file, DVC's workspace
    v = sizes.versions
    worst = 0.0
    for case in cases:
        if case == "a":
            last = sizes.tensors * sizes.tensor_bytes
            worst = max(worst, (v * copies + extra) * last)
        elif case == "b":
            last = sizes.csv_bytes * (1 + sizes.csv_growth) ** (v - 1)
            worst = max(worst, (v * copies + extra) * last)
        elif case == "c":
            last = sizes.blob_bytes + (v - 1) * sizes.insert_bytes
            worst = max(worst, (v * copies + extra) * last)
        elif case == "baseline":
            worst = max(worst, 4 * sizes.baseline_bytes)
    return int(1.15 * worst)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="smoke run: 32 MiB files, 5 versions")
    ap.add_argument("--versions", type=int, help="versions per case (default 20, quick 5)")
    ap.add_argument("--tools", default=",".join(TOOLS), help="comma-separated subset of tools")
    ap.add_argument("--cases", default=",".join(CASES), help="comma-separated: a,b,c,baseline")
    ap.add_argument("--timeout", type=float, default=1800, help="seconds per worker reply")
    ap.add_argument("--no-save", action="store_true", help="do not write bench/results/*.json")
    ap.add_argument("--worker", choices=tuple(WORKERS), help=argparse.SUPPRESS)
    ap.add_argument("--case", choices=CASES, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.worker:
        run_worker(args.worker, args.case)
        return 0

    sizes = QUICK if args.quick else FULL
    if args.versions:
        if args.versions < 1:
            ap.error("--versions must be >= 1")
        sizes = dataclasses.replace(sizes, versions=args.versions)
    tools = [t for t in args.tools.split(",") if t]
    cases = [c for c in args.cases.split(",") if c]
    if set(tools) - set(TOOLS) or set(cases) - set(CASES):
        ap.error(f"choose tools from {', '.join(TOOLS)} and cases from {', '.join(CASES)}")
    if not STEMMA_PYTHON.exists():
        ap.error(f"{STEMMA_PYTHON} is missing; run `make install` first")
    if not PEERS_PYTHON.exists() and any(t in PEER_TOOLS for t in tools):
        print(f"note: {PEERS_PYTHON} is missing (run `make bench-deps`); no peers", file=sys.stderr)
        tools = [t for t in tools if t not in PEER_TOOLS]
    if "dvc" in tools and not DVC.exists():
        print(f"note: {DVC} is missing (dvc failed to install?); skipping dvc", file=sys.stderr)
        tools.remove("dvc")
    try:
        import numpy  # noqa: F401 - the generators need it
    except ImportError:
        ap.error("numpy is needed to generate the data; run this with .venv/bin/python")

    need = disk_needed(cases, tools, sizes)
    free = shutil.disk_usage("/tmp").free
    print(
        f"disk: about {fmt_bytes(need)} needed at most, {fmt_bytes(free)} free in /tmp",
        file=sys.stderr,
    )
    if free < need:
        print("!! not enough free space in /tmp; use fewer tools or cases", file=sys.stderr)
        return 1

    # Import each Python tool once untimed, so .pyc files exist (a user's second run).
    for tool in {t for t in tools if t in WORKERS}:
        module = "stemma" if tool.startswith("stemma") else tool
        python = PEERS_PYTHON if tool in PEER_TOOLS else STEMMA_PYTHON
        proc = subprocess.run([str(python), "-c", f"import {module}"], capture_output=True)
        if proc.returncode != 0:
            print(f"note: `import {module}` fails; skipping {tool}", file=sys.stderr)
            tools.remove(tool)

    started = time.time()
    rows: dict[tuple[str, str], Series] = {}
    metas: dict[str, dict[str, Any]] = {}
    baseline: dict[str, Any] | None = None
    for case in cases:
        if case == "baseline":
            continue
        t0 = time.perf_counter()
        series, meta = run_case(case, tools, sizes, args.timeout)
        metas[case] = meta
        for s in series:
            rows[(s.tool, case)] = s
        print(f"  ({case}) done in {time.perf_counter() - t0:,.1f} s wall", file=sys.stderr)
    if "baseline" in cases:
        if "stemma" in tools or "stemma-file" in tools:
            baseline = run_baseline(tools, sizes, args.timeout)
        else:
            print("note: the baseline needs --tools stemma", file=sys.stderr)

    md = []
    for case in [c for c in cases if c in metas]:
        crows = [rows[(t, case)] for t in tools if (t, case) in rows]
        trows = table_rows(crows, metas[case])
        title = case_title(case, sizes, metas[case])
        title += f"; logical {fmt_bytes(metas[case]['logical_bytes'])}"
        print_table(title, HEADERS, trows)
        md.append(f"{title}\n\n{markdown_table(HEADERS, trows)}\n")
    print(
        '\n"x one version": stored bytes over the size of the last version; '
        '"/ file-level": against the stemma (file-level) row.'
    )
    if baseline:
        print()
        for line in baseline_lines(baseline):
            print(line)
            md.append(line + "\n")
    verdict = verdicts(rows, baseline, metas)
    print("\nStemma's targets:")
    for text, ok, detail in verdict:
        tag = {True: "PASS", False: "MISS", None: "----"}[ok]
        print(f"  [{tag}] {text}" + (f": {detail}" if detail else ""))
    failed = [s for s in rows.values() if s.failed]
    bad = [s for s in rows.values() if s.verified is False]
    if baseline:
        bad += [
            Series(t, "baseline", verified=False, problems=r.get("problems", []))
            for t in ("stemma", "stemma-file")
            if isinstance(r := baseline.get(t), dict) and r.get("verified") is False
        ]
    for s in bad:
        print(f"\n!!!! FAIL: {LABELS[s.tool]} ({s.case}) download is wrong:", file=sys.stderr)
        for p in s.problems:
            print(f"!!!!   {p}", file=sys.stderr)
    print(f"\ntotal wall time {time.time() - started:,.0f} s")
    print("\nmarkdown:\n")
    print("\n".join(md))
    if not args.no_save:
        path = save_results(
            "dedup",
            {
                "sizes": dataclasses.asdict(sizes),
                "cases": metas,
                "rows": [
                    {**dataclasses.asdict(s), "total_s": s.total_s, "label": LABELS[s.tool]}
                    for s in rows.values()
                ],
                "baseline": baseline,
                "targets": [{"target": t, "ok": ok, "detail": d} for t, ok, d in verdict],
            },
        )
        print(f"\nresults saved to {path.relative_to(ROOT)}")
    if failed:
        print(f"\n{len(failed)} series FAILED:", file=sys.stderr)
        for s in failed:
            print(f"{LABELS[s.tool]} ({s.case}): {s.failed[-500:]}", file=sys.stderr)
    return 1 if failed or bad else 0


if __name__ == "__main__":
    sys.exit(main())

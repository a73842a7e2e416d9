"""Artifacts: what storing, versioning and downloading a dataset costs in Stemma and its peers.

Four cases, on random bytes generated once into a temp dir under /tmp (removed at the end):

* (a) one 1 GiB file;
* (b) 10,000 files of 10 KiB in 100 subdirectories;
* (c) (b) again with 100 files rewritten in place, logged after (b) into the same store;
* (d) download of version (b) into an empty directory, then the same call into the same
  directory again (the second call should find everything already there).

Every Python tool runs in a fresh subprocess per case (this script with ``--worker``): Stemma
under .venv, the peers under .bench-venv, as in log_throughput.py. DVC runs through its CLI;
``cp`` and an in-memory SHA-256 are the physical references. Storage is the growth of each
tool's directories, as apparent bytes (sum of file sizes) and as allocated blocks.

Usage::

    .venv/bin/python bench/artifacts.py                  # full sizes, 3 repeats (~10 min)
    .venv/bin/python bench/artifacts.py --quick          # 64 MiB, 1,000 files, 1 repeat
    .venv/bin/python bench/artifacts.py --tools stemma,cp --repeats 1
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import random
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
    WANDB_DIRS,
    disk_usage,
    fmt_bytes,
    fmt_s,
    markdown_table,
    print_table,
    run_json_worker,
    save_results,
    timed_cli,
    tool_env,
    wandb_settings,
)

# No third-party import at module level: workers import their tool inside the timed script.

DVC = ROOT / ".bench-venv" / "bin" / "dvc"
FILE_SIZE = 10 * 1024  # case (b): bytes per small file
CHUNK = 64 << 20  # generation / copy chunk

TOOLS = ("stemma", "wandb", "wandb-immutable", "mlflow", "dvc", "cp", "sha256")
PEER_TOOLS = ("wandb", "wandb-immutable", "mlflow", "dvc")
PY_TOOLS = ("stemma", "wandb", "wandb-immutable", "mlflow", "sha256")
LABELS = {
    "stemma": "stemma",
    "wandb": "wandb (offline)",
    "wandb-immutable": "wandb (offline, immutable)",
    "mlflow": "mlflow",
    "dvc": "dvc",
    "cp": "cp (reference)",
    "sha256": "sha256 in memory (reference)",
}
CASES = ("a", "b", "c", "d")

# Stemma's targets.
TARGET_A_VS_CP = 1.2
TARGET_B_VS_CP = 2.0
TARGET_C_S = 0.3
TARGET_C_BYTES = 1.2  # x the changed bytes
TARGET_D_SPEEDUP = 10.0


@dataclasses.dataclass(frozen=True)
class Sizes:
    """The workload; ``--quick`` shrinks it so the whole script runs in about a minute."""

    big: int
    dirs: int
    per_dir: int
    changed: int

    @property
    def files(self) -> int:
        return self.dirs * self.per_dir

    @property
    def tree_bytes(self) -> int:
        return self.files * FILE_SIZE

    @property
    def changed_bytes(self) -> int:
        return self.changed * FILE_SIZE


FULL = Sizes(big=1 << 30, dirs=100, per_dir=100, changed=100)
QUICK = Sizes(big=64 << 20, dirs=10, per_dir=100, changed=10)


# --------------------------------------------------------------------------- test data


@dataclasses.dataclass(frozen=True)
class Data:
    """Where the generated test data lives: ``big.bin``, ``tree/`` (version 1), the list of
    files to change and their new contents in ``changes/`` (identical for every tool)."""

    root: Path

    @property
    def big(self) -> Path:
        return self.root / "big.bin"

    @property
    def tree(self) -> Path:
        return self.root / "tree"

    @property
    def changes(self) -> Path:
        return self.root / "changes"

    def changed_files(self) -> list[str]:
        return (self.root / "changed.txt").read_text().split()


def generate(root: Path, sizes: Sizes) -> Data:
    """Random (incompressible, non-dedupable) bytes, written once for all tools and repeats."""
    data = Data(root)
    with data.big.open("wb") as f:
        left = sizes.big
        while left:
            n = min(CHUNK, left)
            f.write(os.urandom(n))
            left -= n
    names = []
    for d in range(sizes.dirs):
        sub = data.tree / f"d{d:03d}"
        sub.mkdir(parents=True)
        for i in range(sizes.per_dir):
            (sub / f"f{i:03d}.bin").write_bytes(os.urandom(FILE_SIZE))
            names.append(f"d{d:03d}/f{i:03d}.bin")
    changed = sorted(random.Random(42).sample(names, sizes.changed))
    (data.root / "changed.txt").write_text("\n".join(changed) + "\n")
    for name in changed:
        target = data.changes / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(os.urandom(FILE_SIZE))
    return data


def warm(data: Data) -> None:
    """Read every input file once, so every tool starts with the data in the page cache."""
    for dirpath, _dirs, files in os.walk(data.root):
        for name in files:
            with open(os.path.join(dirpath, name), "rb") as f:
                while f.read(CHUNK):
                    pass


def working_copy(src: Path, dst: Path) -> None:
    """``cp -a``: a tree each tool can modify in place. Keeping mtimes matters: a file whose
    mtime is seconds old is not trusted by stat caches (Stemma's, git's), and real datasets
    are older than that."""
    subprocess.run(["cp", "-a", str(src), str(dst)], check=True)


def apply_changes(data: Data, tree: Path) -> None:
    """Rewrite the chosen files in place (same inode, same size, new bytes, new mtime)."""
    for name in data.changed_files():
        with open(tree / name, "r+b") as f:
            f.write((data.changes / name).read_bytes())


def compare_trees(src: Path, dst: Path) -> list[str]:
    """What differs between two trees (names, count, total size, every file's bytes)."""

    def listing(root: Path) -> dict[str, int]:
        out = {}
        for dirpath, _dirs, files in os.walk(root):
            for name in files:
                full = os.path.join(dirpath, name)
                out[os.path.relpath(full, root)] = os.path.getsize(full)
        return out

    a, b = listing(src), listing(dst)
    problems = []
    if len(a) != len(b):
        problems.append(f"{len(b)} files downloaded, source has {len(a)}")
    if sum(a.values()) != sum(b.values()):
        problems.append(f"{sum(b.values()):,} bytes downloaded, source has {sum(a.values()):,}")
    missing = sorted(set(a) - set(b))
    extra = sorted(set(b) - set(a))
    if missing:
        problems.append(f"missing: {missing[:5]}{' ...' if len(missing) > 5 else ''}")
    if extra:
        problems.append(f"extra: {extra[:5]}{' ...' if len(extra) > 5 else ''}")
    differ = [
        n for n in sorted(set(a) & set(b)) if (src / n).read_bytes() != (dst / n).read_bytes()
    ]
    if differ:
        problems.append(f"{len(differ)} files differ, e.g. {differ[:5]}")
    return problems


# --------------------------------------------------------------------------- workers
# A worker runs one tool for one case in its series directory ``work`` and returns timings.
# ``stored_s`` is the time until the tool says the data is stored (what the targets compare);
# ``finish_s`` is what the run's finish/end call costs after that.


def worker_stemma(case: str, src: Path, work: Path) -> dict[str, Any]:
    """``stemma.Artifact`` + ``add_file``/``add_dir`` + ``run.log_artifact``, or a download."""
    t0 = time.perf_counter()
    import stemma

    t1 = time.perf_counter()
    if case == "d":
        return download_twice(
            lambda: stemma.Api().artifact("bench/data:v0"),
            lambda art, root: art.download(root=str(root)),
            src,
            work / "download",
            {"import_s": t1 - t0, "version": stemma.__version__},
        )
    run = stemma.init(project="bench")
    t2 = time.perf_counter()
    art = stemma.Artifact("data", type="dataset")
    if src.is_file():
        art.add_file(str(src))
    else:
        art.add_dir(str(src))
    run.log_artifact(art)
    t3 = time.perf_counter()
    run.finish()
    t4 = time.perf_counter()
    return {
        "import_s": t1 - t0,
        "init_s": t2 - t1,
        "stored_s": t3 - t2,
        "finish_s": t4 - t3,
        "version": stemma.__version__,
    }


def download_twice(
    resolve: Callable[[], Any],
    download: Callable[[Any, Path], Any],
    src: Path,
    root: Path,
    extra: dict[str, Any],
    subdir: str = "",
) -> dict[str, Any]:
    """Case (d): resolve the version, download into an empty ``root``, then again into the
    same ``root``; each result is checked against the source tree outside the timed region."""
    t0 = time.perf_counter()
    art = resolve()
    t1 = time.perf_counter()
    download(art, root)
    t2 = time.perf_counter()
    problems = [f"first download: {p}" for p in compare_trees(src, root / subdir)]
    t3 = time.perf_counter()
    download(art, root)
    t4 = time.perf_counter()
    problems += [f"second download: {p}" for p in compare_trees(src, root / subdir)]
    return {
        **extra,
        "resolve_s": t1 - t0,
        "first_s": t2 - t1,
        "second_s": t4 - t3,
        "verified": not problems,
        "problems": problems,
    }


def worker_wandb(case: str, src: Path, work: Path, immutable: bool = False) -> dict[str, Any]:
    """``wandb.Artifact`` + ``add_file``/``add_dir`` + ``log_artifact``; offline, so the data
    only lands in wandb's staging/cache dirs and the offline run directory. ``log_artifact``
    returns before the files are handled, so ``stored_s`` runs until ``finish`` returns."""
    import inspect

    t0 = time.perf_counter()
    import wandb

    t1 = time.perf_counter()
    kwargs: dict[str, Any] = {}
    if immutable:
        if "policy" not in inspect.signature(wandb.Artifact.add_dir).parameters:
            return {"skipped": f"wandb {wandb.__version__} has no policy= on add_file/add_dir"}
        kwargs["policy"] = "immutable"
    run = wandb.init(project="bench", settings=wandb_settings(wandb))
    t2 = time.perf_counter()
    art = wandb.Artifact("data", type="dataset")
    if src.is_file():
        art.add_file(str(src), **kwargs)
    else:
        art.add_dir(str(src), **kwargs)
    run.log_artifact(art)
    t3 = time.perf_counter()
    run.finish()
    t4 = time.perf_counter()
    return {
        "import_s": t1 - t0,
        "init_s": t2 - t1,
        "log_call_s": t3 - t2,
        "stored_s": t4 - t2,
        "finish_s": t4 - t3,
        "version": wandb.__version__,
    }


def worker_mlflow(case: str, src: Path, work: Path) -> dict[str, Any]:
    """``mlflow.log_artifact(file)`` / ``mlflow.log_artifacts(dir)`` in a new run of one
    experiment (SQLite tracking store, local artifact root); (d) is ``download_artifacts``."""
    import json

    t0 = time.perf_counter()
    import mlflow
    from mlflow.tracking import MlflowClient

    t1 = time.perf_counter()
    uri = f"sqlite:///{work / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    state_file = work / "mlflow-state.json"
    state = json.loads(state_file.read_text()) if state_file.exists() else {}
    if case == "d":
        return download_twice(
            lambda: state["b"],
            lambda run_id, root: mlflow.artifacts.download_artifacts(
                run_id=run_id, artifact_path="tree", dst_path=str(root)
            ),
            src,
            work / "download",
            {"import_s": t1 - t0, "version": mlflow.__version__},
            subdir="tree",
        )
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("bench")
    exp_id = (
        exp.experiment_id
        if exp
        else client.create_experiment("bench", artifact_location=(work / "artifacts").as_uri())
    )
    run = mlflow.start_run(experiment_id=exp_id)
    t2 = time.perf_counter()
    if src.is_file():
        mlflow.log_artifact(str(src))
    else:
        mlflow.log_artifacts(str(src), artifact_path="tree")
    t3 = time.perf_counter()
    mlflow.end_run()
    t4 = time.perf_counter()
    state[case] = run.info.run_id
    state_file.write_text(json.dumps(state))
    return {
        "import_s": t1 - t0,
        "init_s": t2 - t1,
        "stored_s": t3 - t2,
        "finish_s": t4 - t3,
        "version": mlflow.__version__,
    }


def worker_sha256(case: str, src: Path, work: Path) -> dict[str, Any]:
    """The hashing floor: SHA-256 of the whole file, already in memory (read untimed)."""
    import hashlib

    data = src.read_bytes()
    t0 = time.perf_counter()
    hashlib.sha256(data).hexdigest()
    return {"stored_s": time.perf_counter() - t0, "finish_s": 0.0}


WORKERS: dict[str, Callable[[str, Path, Path], dict[str, Any]]] = {
    "stemma": worker_stemma,
    "wandb": worker_wandb,
    "wandb-immutable": lambda c, s, w: worker_wandb(c, s, w, immutable=True),
    "mlflow": worker_mlflow,
    "sha256": worker_sha256,
}


def run_worker(tool: str, case: str, src: Path, work: Path) -> None:
    """Entry point of ``--worker``: run, then print one JSON line for the parent."""
    import json

    result = WORKERS[tool](case, src, work)
    sys.stdout.write("\n" + json.dumps(result) + "\n")
    sys.stdout.flush()


# --------------------------------------------------------------------------- parent side


def store_paths(tool: str, work: Path) -> list[Path]:
    """The directories whose growth is the tool's storage cost."""
    if tool == "stemma":
        return [work / "stemma"]
    if tool.startswith("wandb"):
        return [work / f"wandb-{k.lower()}" for k in WANDB_DIRS]
    if tool == "mlflow":
        return [work / "mlflow.db", work / "artifacts"]
    if tool == "dvc":
        repo = work / "repo"
        return [
            repo / ".dvc",
            repo / "big.bin.dvc",
            repo / "tree.dvc",
            repo / ".gitignore",
            work / "dvc-site-cache",
        ]
    if tool == "cp":
        return [work / "copy"]
    return []


def spawn_python(tool: str, case: str, src: Path, work: Path, timeout: float) -> dict[str, Any]:
    """One worker in a fresh interpreter; returns its JSON result."""

    python = PEERS_PYTHON if tool in PEER_TOOLS else STEMMA_PYTHON
    cmd = [str(python), str(Path(__file__).resolve()), "--worker", tool, "--case", case]
    cmd += ["--src", str(src), "--work", str(work)]
    if tool.startswith("wandb"):
        for k in WANDB_DIRS:
            (work / f"wandb-{k.lower()}").mkdir(exist_ok=True)
    return run_json_worker(
        cmd, work, tool_env(tool, work), timeout, f"{tool} worker, case ({case})"
    )


def run_dvc(case: str, data: Data, work: Path, timeout: float) -> dict[str, Any]:
    """``dvc add`` (hash + copy into .dvc/cache) in a fresh git+DVC repo; (c) rewrites files in
    the workspace and adds again; (d) restores version (b)'s ``tree.dvc`` into an emptied
    workspace with ``dvc checkout``, twice. Times include DVC's CLI start-up, as users see."""
    env = tool_env("dvc", work)
    repo = work / "repo"
    dvc = str(DVC)
    if case in ("a", "b"):
        repo.mkdir()
        subprocess.run(["git", "init", "-q"], cwd=repo, check=True, env=env)
        subprocess.run([dvc, "init", "-q"], cwd=repo, check=True, env=env)
        subprocess.run([dvc, "config", "core.autostage", "false"], cwd=repo, check=True, env=env)
    if case == "a":
        subprocess.run(["cp", "-a", str(data.big), str(repo / "big.bin")], check=True)
        return {"stored_s": timed_cli([dvc, "add", "-q", "big.bin"], repo, env, timeout)}
    if case == "b":
        working_copy(data.tree, repo / "tree")
        took = timed_cli([dvc, "add", "-q", "tree"], repo, env, timeout)
        shutil.copy2(repo / "tree.dvc", work / "tree.dvc.v0")  # kept for (d)
        return {"stored_s": took}
    if case == "c":
        apply_changes(data, repo / "tree")
        return {"stored_s": timed_cli([dvc, "add", "-q", "tree"], repo, env, timeout)}
    # (d)
    shutil.copy2(work / "tree.dvc.v0", repo / "tree.dvc")
    shutil.rmtree(repo / "tree")
    os.sync()
    first = timed_cli([dvc, "checkout", "-q", "tree.dvc"], repo, env, timeout)
    problems = [f"first checkout: {p}" for p in compare_trees(data.tree, repo / "tree")]
    os.sync()
    second = timed_cli([dvc, "checkout", "-q", "tree.dvc"], repo, env, timeout)
    problems += [f"second checkout: {p}" for p in compare_trees(data.tree, repo / "tree")]
    return {"first_s": first, "second_s": second, "verified": not problems, "problems": problems}


def run_cp(case: str, data: Data, work: Path, timeout: float) -> dict[str, Any]:
    """The copy floor on the same filesystem: ``cp`` of the file, ``cp -r`` of the tree."""
    env = dict(os.environ)
    if case == "a":
        return {"stored_s": timed_cli(["cp", str(data.big), str(work / "copy")], work, env, 600)}
    if case == "b":
        return {
            "stored_s": timed_cli(["cp", "-r", str(data.tree), str(work / "copy")], work, env, 600)
        }
    return {"skipped": "no reference for this case"}


def measure(tool: str, case: str, data: Data, work: Path, timeout: float) -> dict[str, Any] | None:
    """One tool, one case, in the series directory ``work``; adds the storage growth.

    The page cache is flushed of dirty pages (``sync``) first, so no tool pays for the
    previous tool's writeback."""
    if tool == "sha256" and case != "a":
        return None
    if tool == "cp" and case not in ("a", "b"):
        return None
    if tool.startswith("wandb") and case == "d":
        return {"skipped": "offline mode cannot download"}
    if case == "c" and tool not in ("dvc",):
        apply_changes(data, work / "tree")  # untimed; dvc changes its own workspace
    src = data.big if case == "a" else (data.tree if case == "d" else work / "tree")
    paths = store_paths(tool, work)
    before = disk_usage(paths)
    os.sync()
    t0 = time.perf_counter()
    if tool == "dvc":
        res = run_dvc(case, data, work, timeout)
    elif tool == "cp":
        res = run_cp(case, data, work, timeout)
    else:
        res = spawn_python(tool, case, src, work, timeout)
    res["wall_s"] = time.perf_counter() - t0
    after = disk_usage(paths)
    res["apparent"] = after[0] - before[0]
    res["blocks"] = after[1] - before[1]
    return res


def run_series(
    tool: str, cases: Sequence[str], data: Data, timeout: float
) -> dict[str, dict[str, Any]]:
    """(a) alone, or (b) -> (c) -> (d) in one store, each case in a fresh process."""
    out: dict[str, dict[str, Any]] = {}
    work = Path(tempfile.mkdtemp(prefix=f"stemma-bench-art-{tool}-", dir="/tmp"))
    try:
        if any(c in cases for c in ("b", "c", "d")) and tool not in ("dvc", "cp"):
            working_copy(data.tree, work / "tree")
        for case in cases:
            res = measure(tool, case, data, work, timeout)
            if res is None:
                continue
            out[case] = res
            if res.get("skipped"):
                break
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out


# --------------------------------------------------------------------------- report


@dataclasses.dataclass
class Row:
    """Medians over repeats of one tool in one case."""

    tool: str
    case: str
    repeats: int
    stored_s: float | None = None
    finish_s: float | None = None
    init_s: float | None = None
    import_s: float | None = None
    apparent: int | None = None
    blocks: int | None = None
    first_s: float | None = None
    second_s: float | None = None
    verified: bool | None = None
    problems: list[str] = dataclasses.field(default_factory=list)
    version: str = ""
    skipped: str = ""
    raw: list[dict[str, Any]] = dataclasses.field(default_factory=list)


def aggregate(tool: str, case: str, results: list[dict[str, Any]]) -> Row:
    def med(key: str) -> Any:
        vals = [r[key] for r in results if r.get(key) is not None]
        return statistics.median(vals) if vals else None

    row = Row(tool=tool, case=case, repeats=len(results), raw=results)
    if results and results[0].get("skipped"):
        row.skipped = results[0]["skipped"]
        return row
    for key in ("stored_s", "finish_s", "init_s", "import_s", "first_s", "second_s"):
        setattr(row, key, med(key))
    for key in ("apparent", "blocks"):
        v = med(key)
        setattr(row, key, None if v is None else int(v))
    if any("verified" in r for r in results):
        row.verified = all(r.get("verified") for r in results)
        row.problems = sorted({p for r in results for p in r.get("problems", [])})
    row.version = str(results[0].get("version", ""))
    return row


def case_title(case: str, sizes: Sizes) -> str:
    return {
        "a": f"(a) one {sizes.big / 2**20:,.0f} MiB file of random bytes",
        "b": f"(b) {sizes.files:,} files x 10 KiB ({sizes.dirs} dirs x {sizes.per_dir})",
        "c": f"(c) version 2 of (b): {sizes.changed} files rewritten, logged into the same store",
        "d": "(d) download of version (b): into an empty dir, then again into the same dir",
    }[case]


def data_bytes(case: str, sizes: Sizes) -> int:
    return {"a": sizes.big, "b": sizes.tree_bytes, "c": sizes.changed_bytes}.get(
        case, sizes.tree_bytes
    )


STORE_HEADERS = [
    "tool",
    "reps",
    "stored",
    "+ finish",
    "extra (apparent)",
    "extra (blocks)",
    "x data",
]
DL_HEADERS = ["tool", "reps", "first download", "second download", "first / second", "verified"]


def opt_s(v: float | None) -> str:
    return "—" if v is None else fmt_s(v)


def opt_b(v: int | None) -> str:
    return "—" if v is None else fmt_bytes(v)


def table_rows(case: str, rows: Sequence[Row], sizes: Sizes) -> list[list[str]]:
    out = []
    for r in rows:
        if r.skipped:
            blank = ["—"] * (len(DL_HEADERS if case == "d" else STORE_HEADERS) - 2)
            out.append([LABELS[r.tool], "0", *blank[:-1], f"skipped: {r.skipped}"])
            continue
        if case == "d":
            ratio = f"{r.first_s / r.second_s:,.1f}x" if r.first_s and r.second_s else "—"
            ok = {None: "—", True: "yes", False: "**FAIL**"}[r.verified]
            out.append(
                [LABELS[r.tool], str(r.repeats), opt_s(r.first_s), opt_s(r.second_s), ratio, ok]
            )
            continue
        x = (
            "—"
            if r.apparent is None or r.tool == "sha256"
            else f"{r.apparent / data_bytes(case, sizes):.2f}"
        )
        out.append(
            [
                LABELS[r.tool],
                str(r.repeats),
                opt_s(r.stored_s),
                "—" if not r.finish_s else fmt_s(r.finish_s),
                "—" if r.tool == "sha256" else opt_b(r.apparent),
                "—" if r.tool == "sha256" else opt_b(r.blocks),
                x,
            ]
        )
    return out


def verdicts(by: dict[tuple[str, str], Row], sizes: Sizes) -> list[tuple[str, bool | None, str]]:
    """Stemma's targets: (text, PASS/MISS or None when not measurable, detail)."""
    out: list[tuple[str, bool | None, str]] = []
    s_a, cp_a = by.get(("stemma", "a")), by.get(("cp", "a"))
    if s_a and s_a.stored_s:
        if cp_a and cp_a.stored_s:
            lim = TARGET_A_VS_CP * cp_a.stored_s
            out.append(
                (
                    f"(a) stemma <= {TARGET_A_VS_CP}x cp",
                    s_a.stored_s <= lim,
                    f"{fmt_s(s_a.stored_s)} vs {fmt_s(cp_a.stored_s)} "
                    f"({s_a.stored_s / cp_a.stored_s:.2f}x)",
                )
            )
        for tool in PEER_TOOLS:
            p = by.get((tool, "a"))
            if not p or p.skipped or p.stored_s is None:
                continue
            keeps = p.apparent is not None and p.apparent >= 0.5 * sizes.big
            if keeps:
                out.append(
                    (
                        f"(a) stemma faster than {LABELS[tool]} (keeps a copy)",
                        s_a.stored_s < p.stored_s,
                        f"{fmt_s(s_a.stored_s)} vs {fmt_s(p.stored_s)}",
                    )
                )
            else:
                out.append(
                    (
                        f"(a) {LABELS[tool]} keeps no copy ({opt_b(p.apparent)}): not a target",
                        None,
                        f"{fmt_s(s_a.stored_s)} vs {fmt_s(p.stored_s)}",
                    )
                )
    s_b, cp_b = by.get(("stemma", "b")), by.get(("cp", "b"))
    if s_b and s_b.stored_s and cp_b and cp_b.stored_s:
        out.append(
            (
                f"(b) stemma <= {TARGET_B_VS_CP}x cp -r",
                s_b.stored_s <= TARGET_B_VS_CP * cp_b.stored_s,
                f"{fmt_s(s_b.stored_s)} vs {fmt_s(cp_b.stored_s)} "
                f"({s_b.stored_s / cp_b.stored_s:.2f}x)",
            )
        )
    s_c = by.get(("stemma", "c"))
    if s_c and s_c.stored_s is not None:
        out.append((f"(c) stemma < {TARGET_C_S} s", s_c.stored_s < TARGET_C_S, fmt_s(s_c.stored_s)))
        lim = TARGET_C_BYTES * sizes.changed_bytes
        for label, v in (("apparent", s_c.apparent), ("blocks", s_c.blocks)):
            if v is not None:
                out.append(
                    (
                        f"(c) extra storage ({label}) <= {TARGET_C_BYTES}x changed bytes",
                        v <= lim,
                        f"{v:,} vs {int(lim):,} ({v / sizes.changed_bytes:.2f}x)",
                    )
                )
    s_d = by.get(("stemma", "d"))
    if s_d and s_d.first_s and s_d.second_s:
        sp = s_d.first_s / s_d.second_s
        out.append(
            (
                f"(d) second download >= {TARGET_D_SPEEDUP:.0f}x faster than first",
                sp >= TARGET_D_SPEEDUP,
                f"{fmt_s(s_d.first_s)} / {fmt_s(s_d.second_s)} = {sp:.1f}x",
            )
        )
    if s_d and s_d.verified is not None:
        out.append(("(d) downloaded tree equals the source", s_d.verified, ""))
    return out


def ratio_lines(by: dict[tuple[str, str], Row]) -> list[str]:
    """Stemma against cp and each peer, per case: time peer / stemma (>1: Stemma is faster),
    apparent bytes peer / stemma (>1: Stemma stores less)."""
    out = []
    for case in ("a", "b", "c"):
        s = by.get(("stemma", case))
        if not s or not s.stored_s:
            continue
        for tool in ("cp", *PEER_TOOLS, "sha256"):
            p = by.get((tool, case))
            if not p or p.skipped or not p.stored_s:
                continue
            line = f"({case}) time {LABELS[tool]} / stemma = {p.stored_s / s.stored_s:,.2f}x"
            if tool != "sha256" and p.apparent and s.apparent:
                line += f"; bytes {LABELS[tool]} / stemma = {p.apparent / s.apparent:,.2f}x"
            out.append(line)
    s = by.get(("stemma", "d"))
    if s and s.first_s:
        for tool in PEER_TOOLS:
            p = by.get((tool, "d"))
            if p and p.first_s and p.second_s and s.second_s:
                out.append(
                    f"(d) first download {LABELS[tool]} / stemma = {p.first_s / s.first_s:,.2f}x; "
                    f"second = {p.second_s / s.second_s:,.2f}x"
                )
        cp_b = by.get(("cp", "b"))
        if cp_b and cp_b.stored_s:
            out.append(f"(d) stemma first download / cp -r = {s.first_s / cp_b.stored_s:,.2f}x")
    return out


# --------------------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=3, help="repeats per case (median reported)")
    ap.add_argument("--quick", action="store_true", help="smoke run: 64 MiB, 1,000 files, 1 rep")
    ap.add_argument("--tools", default=",".join(TOOLS), help="comma-separated subset of tools")
    ap.add_argument("--cases", default="a,b,c,d", help="comma-separated subset of a,b,c,d")
    ap.add_argument("--timeout", type=float, default=1800, help="seconds per worker process")
    ap.add_argument("--no-save", action="store_true", help="do not write bench/results/*.json")
    ap.add_argument("--worker", choices=tuple(WORKERS), help=argparse.SUPPRESS)
    ap.add_argument("--case", choices=CASES, help=argparse.SUPPRESS)
    ap.add_argument("--src", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.worker:
        run_worker(args.worker, args.case, args.src, args.work)
        return 0

    sizes = QUICK if args.quick else FULL
    repeats = 1 if args.quick else args.repeats
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

    # Import each Python tool once untimed, so .pyc files exist (a user's second run).
    for tool in {t for t in tools if t in PY_TOOLS}:
        module = {"wandb-immutable": "wandb", "sha256": "hashlib"}.get(tool, tool)
        python = PEERS_PYTHON if tool in PEER_TOOLS else STEMMA_PYTHON
        subprocess.run([str(python), "-c", f"import {module}"], check=True, capture_output=True)

    started = time.time()
    root = Path(tempfile.mkdtemp(prefix="stemma-bench-artifacts-data-", dir="/tmp"))
    failures: list[str] = []
    results: dict[tuple[str, str], list[dict[str, Any]]] = {}
    try:
        t0 = time.perf_counter()
        data = generate(root, sizes)
        warm(data)
        print(
            f"generated {fmt_bytes(sizes.big)} + {sizes.files:,} x 10 KiB in {root} "
            f"({time.perf_counter() - t0:.1f} s); read once so every tool sees a warm cache",
            file=sys.stderr,
        )
        series = [c for c in ("a",) if c in cases], [c for c in ("b", "c", "d") if c in cases]
        for rep in range(repeats):  # tools interleaved, so slow drift hits all of them alike
            for group in series:
                if not group:
                    continue
                for tool in tools:
                    if tool == "sha256" and "a" not in group:
                        continue  # the hashing floor is only defined for the one big file
                    t1 = time.perf_counter()
                    try:
                        out = run_series(tool, group, data, args.timeout)
                    except (RuntimeError, subprocess.TimeoutExpired, OSError) as exc:
                        failures.append(f"{tool} {group}: {exc}")
                        print(f"!! {tool} {group}: {exc}", file=sys.stderr)
                        continue
                    for case, res in out.items():
                        results.setdefault((tool, case), []).append(res)
                        if res.get("verified") is False:
                            print(f"!! FAIL {tool} ({case}): {res['problems']}", file=sys.stderr)
                        if res.get("stderr"):
                            print(
                                f"   {tool} ({case}) stderr: {res['stderr'][-400:]!r}",
                                file=sys.stderr,
                            )
                    print(
                        f"  rep {rep + 1}/{repeats} {tool:16s} {'/'.join(group):6s} "
                        f"{time.perf_counter() - t1:7.1f} s wall",
                        file=sys.stderr,
                    )
    finally:
        shutil.rmtree(root, ignore_errors=True)

    rows = {k: aggregate(k[0], k[1], v) for k, v in results.items()}
    md = []
    for case in cases:
        crows = [rows[(t, case)] for t in tools if (t, case) in rows]
        if not crows:
            continue
        headers = DL_HEADERS if case == "d" else STORE_HEADERS
        trows = table_rows(case, crows, sizes)
        print_table(case_title(case, sizes), headers, trows)
        md.append(f"{case_title(case, sizes)}\n\n{markdown_table(headers, trows)}\n")
    print("\nratios (> 1: Stemma is faster / stores less):")
    for line in ratio_lines(rows):
        print(f"  {line}")
    print("\nStemma's targets:")
    verdict = verdicts(rows, sizes)
    for text, ok, detail in verdict:
        tag = {True: "PASS", False: "MISS", None: "----"}[ok]
        print(f"  [{tag}] {text}: {detail}")
    bad = [r for r in rows.values() if r.verified is False]
    for r in bad:
        print(f"\n!!!! FAIL: {LABELS[r.tool]} download is wrong:", file=sys.stderr)
        for p in r.problems:
            print(f"!!!!   {p}", file=sys.stderr)
    print(f"\ntotal wall time {time.time() - started:,.0f} s")
    print("\nmarkdown:\n")
    print("\n".join(md))
    if not args.no_save:
        path = save_results(
            "artifacts",
            {
                "sizes": dataclasses.asdict(sizes),
                "rows": [dataclasses.asdict(r) for r in rows.values()],
                "targets": [{"target": t, "ok": ok, "detail": d} for t, ok, d in verdict],
                "failures": failures,
            },
        )
        print(f"\nresults saved to {path.relative_to(ROOT)}")
    if failures:
        print(f"\n{len(failures)} series FAILED:", file=sys.stderr)
        for f in failures:
            print(f, file=sys.stderr)
    return 1 if failures or any(r.tool == "stemma" for r in bad) else 0


if __name__ == "__main__":
    sys.exit(main())

"""Helpers shared by the benchmark scripts in bench/ (paths, sizes, formatting, tables).

Standard library only, and nothing imported at module level beyond it: the scripts run this
module under both .venv (Stemma) and .bench-venv (the peers), and a worker must pay for its
own tool's imports inside its timed region, not for ours.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
STEMMA_PYTHON = ROOT / ".venv" / "bin" / "python"
PEERS_PYTHON = ROOT / ".bench-venv" / "bin" / "python"
RESULTS_DIR = HERE / "results"


def dir_bytes(path: Path) -> int:
    """Apparent size of every file under ``path`` (a file counts as itself)."""
    if path.is_file():
        return path.stat().st_size
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except FileNotFoundError:  # a tool's temp file vanished while we walked
                pass
    return total


def disk_usage(paths: Sequence[Path]) -> tuple[int, int]:
    """``(apparent, blocks)`` bytes under ``paths``, counting each inode once.

    Apparent is the sum of file sizes (``du -sb`` without directory entries, so a tool is not
    charged for how many directories it makes). Blocks is what ``du -s --block-size=1``
    reports: allocated blocks of files *and* directories, i.e. what the disk really lost,
    including the rounding of every small file up to the 4 KiB block.
    """
    seen: set[tuple[int, int]] = set()
    apparent = blocks = 0

    def count(p: str, is_file: bool) -> None:
        nonlocal apparent, blocks
        try:
            st = os.lstat(p)
        except FileNotFoundError:
            return
        key = (st.st_dev, st.st_ino)
        if key in seen:
            return
        seen.add(key)
        blocks += st.st_blocks * 512
        if is_file:
            apparent += st.st_size

    for path in paths:
        if not path.exists():
            continue
        if not path.is_dir():
            count(str(path), True)
            continue
        for dirpath, dirs, files in os.walk(path):
            count(dirpath, False)
            for name in files:
                count(os.path.join(dirpath, name), True)
            for name in dirs:  # symlinks to directories are not walked; count the link
                full = os.path.join(dirpath, name)
                if os.path.islink(full):
                    count(full, True)
    return apparent, blocks


def wandb_settings(wandb: Any) -> Any:
    """Offline settings without the stats sampler or console capture, whatever this version
    calls them (Stemma runs with STEMMA_SYSTEM_METRICS=false, so the peer must not sample)."""
    fields = getattr(wandb.Settings, "model_fields", {})
    wanted = {
        "mode": "offline",
        "x_disable_stats": True,
        "_disable_stats": True,
        "console": "off",
        "silent": True,
    }
    return wandb.Settings(**{k: v for k, v in wanted.items() if not fields or k in fields})


def fmt_s(s: float) -> str:
    return f"{s * 1e3:.1f} ms" if s < 1 else f"{s:.2f} s"


def fmt_us(s: float) -> str:
    return f"{s * 1e6:,.1f} µs" if s < 1e-3 else f"{s * 1e3:,.2f} ms"


def fmt_bytes(b: float) -> str:
    """Decimal units, as the README tables use (MB = 10^6 bytes)."""
    if abs(b) >= 1e9:
        return f"{b / 1e9:,.2f} GB"
    return f"{b / 1e6:,.2f} MB" if abs(b) >= 1e5 else f"{b / 1e3:,.1f} kB"


def print_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """A rich table when rich is importable, else aligned plain text (same columns)."""
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]
        print(f"\n{title}")
        for r in [headers, *rows]:
            print(
                "  ".join(
                    c.ljust(w) if i == 0 else c.rjust(w)
                    for i, (c, w) in enumerate(zip(r, widths, strict=True))
                )
            )
        return
    t = Table(title=title, title_justify="left")
    for i, h in enumerate(headers):
        t.add_column(h, justify="left" if i == 0 else "right")
    for r in rows:
        t.add_row(*r)
    Console(width=160).print(t)


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    out = [
        "| " + " | ".join(headers) + " |",
        "|" + "|".join(["---"] + ["--:"] * (len(headers) - 1)) + "|",
    ]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def save_results(name: str, payload: dict[str, Any]) -> Path:
    """Write ``payload`` plus when/where it ran to bench/results/NAME-STAMP.json (gitignored),
    for comparing runs over time."""
    import json  # lazily: log_throughput's jsonl worker times its own ``import json``

    RESULTS_DIR.mkdir(exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = RESULTS_DIR / f"{name}-{stamp}.json"
    full = {
        "when": dt.datetime.now().isoformat(timespec="seconds"),
        "machine": {
            "nproc": os.cpu_count(),
            "cpu": cpu_model(),
            "python": platform.python_version(),
        },
        **payload,
    }
    path.write_text(json.dumps(full, indent=2) + "\n", encoding="utf-8")
    return path


def benign(line: str) -> bool:
    """MLflow announces creating its database schema on stderr; that is not a problem."""
    return "INFO mlflow.store.db.utils" in line or line.startswith("INFO  [alembic")


def run_json_worker(
    cmd: Sequence[str], cwd: Path, env: dict[str, str], timeout: float, label: str
) -> dict[str, Any]:
    """Run one worker process and return the last JSON line it printed.

    A failure raises with the tail of the worker's own output; unexpected stderr lines
    are kept under ``"stderr"`` so the tables can flag them.
    """
    proc = subprocess.run(
        list(cmd), cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-25:])
        raise RuntimeError(f"{label} exited with {proc.returncode}:\n{tail}")
    result: dict[str, Any] = json.loads(lines[-1])
    noise = [ln for ln in proc.stderr.splitlines() if ln.strip() and not benign(ln)]
    if noise:
        result["stderr"] = "\n".join(noise)[-2000:]
    return result


def report_timings(
    name: str,
    title: str,
    rows: Sequence[dict[str, Any]],
    label: str,
    sizes: dict[str, Any],
    save: bool,
    extra: tuple[str, Any] | None = None,
) -> int:
    """Print timed ``rows`` ({label, median_s, max_s, target_s}) as a table and as Markdown,
    name every target missed, save them (when ``save``), and return the exit status: 1 when
    a median missed its target. ``extra`` adds a column: (heading, row -> text)."""
    headers = [label, "median", "slowest", "target"] + ([extra[0]] if extra else [])
    table = [
        [
            str(r[label]),
            fmt_s(r["median_s"]),
            fmt_s(r["max_s"]),
            f"< {fmt_s(r['target_s'])}" if r.get("target_s") else "",
        ]
        + ([extra[1](r)] if extra else [])
        for r in rows
    ]
    print_table(title, headers, table)
    missed = [r for r in rows if r.get("target_s") and r["median_s"] > r["target_s"]]
    for r in missed:
        print(f"  [MISS] {r[label]}: {fmt_s(r['median_s'])}")
    if not missed:
        print("  [PASS] every timing within its target")
    print("\nmarkdown:\n")
    print(markdown_table(headers, table))
    if save:
        path = save_results(
            name, {"cpu": cpu_model(), "sizes": sizes, "rows": json.loads(json.dumps(rows))}
        )
        print(f"\nsaved {path}")
    return 1 if missed else 0


WANDB_DIRS = ("", "CACHE", "DATA", "ARTIFACT", "CONFIG")  # WANDB_<K>_DIR variables


def tool_env(tool: str, work: Path) -> dict[str, str]:
    """The caller's environment minus tracker settings, plus the tool's private dirs inside
    ``work`` (``stemma*``, ``wandb*``, ``mlflow`` or ``dvc``), so no run touches the user's."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("STEMMA_", "WANDB_", "MLFLOW_", "DVC_"))
    }
    if tool.startswith("stemma"):
        env.update(
            STEMMA_DIR=str(work / "stemma"),
            STEMMA_CACHE_DIR=str(work / "stemma-cache"),
            STEMMA_SILENT="1",
            STEMMA_SYSTEM_METRICS="false",
        )
    elif tool.startswith("wandb"):
        env.update(
            WANDB_MODE="offline",
            WANDB_SILENT="true",
            WANDB_DISABLE_GIT="true",
            WANDB_DISABLE_CODE="true",
            **{f"WANDB_{k}_DIR": str(work / f"wandb-{k.lower()}") for k in WANDB_DIRS},
        )
    elif tool == "mlflow":
        env.update(
            MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING="false",
            MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR="false",
        )
    elif tool == "dvc":
        env.update(DVC_NO_ANALYTICS="1", DVC_SITE_CACHE_DIR=str(work / "dvc-site-cache"))
    return env


def timed_cli(cmd: Sequence[str], cwd: Path, env: dict[str, str], timeout: float) -> float:
    """Wall seconds of one CLI call; a failure raises with the tool's own message."""
    t0 = time.perf_counter()
    proc = subprocess.run(
        list(cmd), cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    took = time.perf_counter() - t0
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
        raise RuntimeError(f"`{' '.join(cmd)}` exited {proc.returncode}:\n{tail}")
    return took

"""Bulk export to Parquet: ``stemma export`` and ``Api().export``, read back value by value."""

from __future__ import annotations

import datetime as dt
import json
import math
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

import stemma
from stemma.api import export as export_mod
from stemma.cli.main import cli
from stemma.errors import NotFound, UsageError

NAN, INF = math.nan, math.inf

# What run "a" and run "b" log, step -> row (the store adds _runtime and _timestamp).
HISTORY_A: dict[int, dict[str, Any]] = {
    s: {
        "loss": {3: NAN, 5: INF, 7: -INF}.get(s, 1.0 / (s + 1)),
        **({"acc": s / 10} if s % 2 == 0 else {}),
        **({"phase": "eval" if s == 4 else "test"} if s in (4, 8) else {}),
    }
    for s in range(10)
}
HISTORY_B: dict[int, dict[str, Any]] = {
    s: {
        "loss": 0.5**s,
        "count": 3 * s,
        **({"flag": s == 1} if s in (1, 3) else {}),
        **({"sparse": None if s == 0 else 2.5} if s in (0, 2) else {}),  # a logged None
    }
    for s in range(5)
}


def _same(a: Any, b: Any) -> bool:
    """Equality where NaN equals NaN (and nothing else is loosened)."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return type(a) is type(b) and a == b


def _log_project() -> dict[str, stemma.Run]:
    runs = {}
    with stemma.init(
        project="p",
        name="a",
        config={
            "lr": 0.001,
            "opt": {"name": "adam", "betas": [0.9, 0.999]},
            "mixed": 3,
            "weird": NAN,
            "big": INF,
            "label": "x",
        },
        tags=["bert", "base"],
        group="g1",
        job_type="train",
        notes="first",
    ) as run:
        for step, row in HISTORY_A.items():
            run.log(row, step=step)
        run.summary["best"] = -INF
        runs["a"] = run
    with stemma.init(
        project="p", name="b", config={"lr": 0.1, "mixed": "three", "epochs": 2}, tags=[]
    ) as run:
        for step, row in HISTORY_B.items():
            run.log(row, step=step)
        runs["b"] = run
    with stemma.init(project="p", name="c", config={"lr": 0.5}) as run:
        runs["c"] = run  # no history at all
    return runs


@pytest.fixture
def work(tmp_path: Path) -> Path:
    """A directory for exports (tmp_path also holds the store)."""
    d = tmp_path / "work"
    d.mkdir()
    return d


def _rows(path: Path) -> list[dict[str, Any]]:
    return pq.read_table(path).to_pylist()


def _history_by_run(out: Path) -> dict[str, dict[int, dict[str, Any]]]:
    """run_id -> step -> the row's logged values (nulls, _runtime and _timestamp left out)."""
    table = pq.read_table(out / "history")
    by_run: dict[str, dict[int, dict[str, Any]]] = {}
    for row in table.to_pylist():
        run_id, step = row.pop("run_id"), row.pop("_step")
        assert step not in by_run.get(run_id, {}), "a step appears twice"
        by_run.setdefault(run_id, {})[step] = {
            k: v for k, v in row.items() if v is not None and k not in ("_runtime", "_timestamp")
        }
    return by_run


def _assert_history(got: dict[int, dict[str, Any]], want: dict[int, dict[str, Any]]) -> None:
    assert sorted(got) == sorted(want)
    for step, logged in want.items():
        row = {k: v for k, v in logged.items() if v is not None}  # a logged None is null
        assert sorted(got[step]) == sorted(row), step
        for key, value in row.items():
            if isinstance(value, bool):
                assert got[step][key] is value
            elif isinstance(value, str):
                assert got[step][key] == value
            else:  # numbers are float64, bit for bit (NaN and infinities kept)
                assert _same(got[step][key], float(value)), (step, key, got[step][key], value)


def test_export_writes_every_value(api: stemma.Api, work: Path) -> None:
    runs = _log_project()
    out = work / "export"
    with pytest.warns(export_mod.ExportWarning, match=r"config\.mixed"):
        result = api.export("p", out, progress=False)
    assert result["runs"] == 3 and result["rows"] == 15
    assert result["files"] == 3  # runs.parquet, one history part, manifest.json
    assert result["bytes"] == sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    assert result["seconds"] >= 0 and result["path"] == str(out.absolute())
    assert sorted(p.name for p in out.iterdir()) == ["history", "manifest.json", "runs.parquet"]
    assert [p.name for p in work.iterdir()] == ["export"]  # no temp dir left beside

    # runs.parquet: one row per run, every field
    table = pq.read_table(out / "runs.parquet")
    assert table.schema.field("created_at").type == pa.timestamp("us", tz="UTC")
    assert table.schema.field("tags").type == pa.list_(pa.string())
    assert table.schema.field("config.lr").type == pa.float64()
    assert table.schema.field("config.epochs").type == pa.int64()
    assert table.schema.field("config.mixed").type == pa.string()
    names = table.column_names
    assert names[:3] == ["id", "name", "display_name"]
    first_config = names.index("config.big")
    assert names.index("summary.best") > first_config
    assert names.index("metadata.host") > names.index("summary.best")
    rows = {r["name"]: r for r in table.to_pylist()}
    assert sorted(rows) == ["a", "b", "c"]
    for name, run in runs.items():
        stored = api.run(run.path)
        row = rows[name]
        assert row["id"] == stored.id and row["display_name"] == name
        assert row["state"] == "finished" and row["exit_code"] == 0
        assert row["user"] == stored.user and row["host"] == stored.host
        assert row["created_at"] == stored.created_at
        assert row["created_at"].tzinfo is not None
        assert row["finished_at"] == stored.finished_at
        assert row["heartbeat_at"] == stored.heartbeat_at
        assert row["last_step"] == stored.last_step
        assert row["tags"] == stored.tags
        assert row["metadata.python"] == stored.metadata["python"]
        for key, value in stored.summary.items():
            if not isinstance(value, dict):
                assert _same(row[f"summary.{key}"], value), key
    a, b, c = rows["a"], rows["b"], rows["c"]
    assert a["tags"] == ["bert", "base"] and b["tags"] == [] and c["tags"] == []
    assert (a["group"], a["job_type"], a["notes"]) == ("g1", "train", "first")
    assert b["group"] is None and b["notes"] is None
    assert a["config.lr"] == 0.001 and b["config.lr"] == 0.1 and c["config.lr"] == 0.5
    assert math.isnan(a["config.weird"]) and a["config.big"] == INF
    assert b["config.weird"] is None  # not in b's config: null, not NaN
    assert a["config.opt.name"] == "adam"
    assert json.loads(a["config.opt.betas"]) == [0.9, 0.999]
    assert (a["config.mixed"], b["config.mixed"], c["config.mixed"]) == ("3", '"three"', None)
    assert a["config.label"] == "x" and b["config.epochs"] == 2 and a["config.epochs"] is None
    assert a["summary.best"] == -INF
    assert _same(a["summary.loss"], 1.0 / 10) and a["summary.acc"] == 0.8
    assert b["summary.flag"] is False and b["summary.count"] == 12

    # history: outer join of each run's keys on _step, float64 numbers, nulls where absent
    hist = pq.read_table(out / "history")
    assert hist.column_names == [
        "run_id",
        "_step",
        "_runtime",
        "_timestamp",
        "acc",
        "count",
        "flag",
        "loss",
        "phase",
        "sparse",
    ]
    types = {f.name: f.type for f in hist.schema}
    assert types["_step"] == pa.int64() and types["count"] == pa.float64()
    assert types["flag"] == pa.bool_() and types["phase"] == pa.string()
    assert types["sparse"] == pa.float64()  # numbers and None, stored as a list
    assert hist.column("_runtime").null_count == 0
    by_run = _history_by_run(out)
    assert sorted(by_run) == sorted([runs["a"].id, runs["b"].id])  # c logged nothing
    _assert_history(by_run[runs["a"].id], HISTORY_A)
    _assert_history(by_run[runs["b"].id], HISTORY_B)
    # every value agrees with what the read API returns, row for row
    for name in ("a", "b"):
        stored_rows = api.run(runs[name].path).history(pandas=False)
        exported = [r for r in hist.to_pylist() if r["run_id"] == runs[name].id]
        assert len(stored_rows) == len(exported)
        for want, got in zip(stored_rows, exported, strict=True):
            present = {k for k, v in want.items() if v is not None}
            assert {k for k, v in got.items() if v is not None} - {"run_id"} == present
            for key, value in want.items():
                if key != "_step" and not isinstance(value, str | bool | None):
                    value = float(value)
                assert _same(got[key], value), key

    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["format"] == "stemma-export"
    assert manifest["project"] == f"{runs['a'].entity}/p"
    assert manifest["runs"] == 3 and manifest["rows"] == 15
    assert manifest["stemma_version"] == stemma.__version__
    assert manifest["files"]["runs.parquet"]["rows"] == 3
    assert manifest["files"]["history/part-00000.parquet"]["rows"] == 15
    assert manifest["history_columns"]["loss"] == "float"
    assert manifest["json_columns"] == ["config.mixed"]
    exported_at = dt.datetime.fromisoformat(manifest["exported_at"])
    assert abs((dt.datetime.now(dt.UTC) - exported_at).total_seconds()) < 120


def test_cli_export_filters_keys_and_samples(work: Path) -> None:
    runs = _log_project()
    out = work / "out"
    res = CliRunner().invoke(
        cli,
        [
            "export",
            "p",
            "-o",
            str(out),
            "--format",
            "parquet",
            "--filters",
            '{"config.lr": {"$lt": 0.01}}',
            "--keys",
            "loss,acc",
            "--keys",
            "never_logged",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "exported 1 run(s) and 10 history row(s)" in res.stdout
    assert [r["name"] for r in _rows(out / "runs.parquet")] == ["a"]
    hist = pq.read_table(out / "history")
    assert hist.column_names == ["run_id", "_step", "loss", "acc", "never_logged"]
    assert hist.column("never_logged").null_count == 10
    want = {
        s: {k: v for k, v in row.items() if k in ("loss", "acc")} for s, row in HISTORY_A.items()
    }
    _assert_history(_history_by_run(out)[runs["a"].id], want)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["filters"] == {"config.lr": {"$lt": 0.01}}
    assert manifest["keys"] == ["loss", "acc", "never_logged"]

    sampled = work / "sampled"
    res = CliRunner().invoke(cli, ["export", "p", "-o", str(sampled), "--samples", "3"])
    assert res.exit_code == 0, res.output
    assert "config.mixed" in res.stderr and "JSON" in res.stderr  # the coercion warning
    by_run = _history_by_run(sampled)
    for name, logged in (("a", HISTORY_A), ("b", HISTORY_B)):
        got = by_run[runs[name].id]
        for key in ("loss", "acc", "count"):
            points = {s: row[key] for s, row in got.items() if key in row}
            assert len(points) <= 3
            for step, value in points.items():  # every sampled point is a logged one
                assert _same(value, float(logged[step][key]))
        assert min(got) == 0 and max(got) == max(logged)  # first and last points kept


def test_refuses_a_non_empty_dir_and_leaves_nothing_on_failure(
    api: stemma.Api, work: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _log_project()
    busy = work / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    res = CliRunner().invoke(cli, ["export", "p", "-o", str(busy)])
    assert res.exit_code == 1 and "not empty" in res.output and "--overwrite" in res.output
    res = CliRunner().invoke(cli, ["export", "p", "-o", str(busy), "--overwrite"])
    assert res.exit_code == 1 and "not a Stemma export" in res.output  # never deleted
    assert [p.name for p in busy.iterdir()] == ["notes.txt"]

    # a bad filter: a clear error, and the directory is not created
    missing = work / "new" / "export"
    res = CliRunner().invoke(cli, ["export", "p", "-o", str(missing), "--filters", '{"x": 1}'])
    assert res.exit_code == 1 and "unknown filter field" in res.output
    assert not (work / "new").exists()
    res = CliRunner().invoke(cli, ["export", "p", "-o", str(missing), "--filters", "{x"])
    assert res.exit_code == 2 and "not JSON" in res.output
    with pytest.raises(NotFound, match="no project"):
        api.export("nope", missing)
    with pytest.raises(UsageError, match="stream"):
        api.export("p", missing, stream="gpu")
    assert not (work / "new").exists()

    # an export, then a failure half-way through a second one over it: the first stays
    out = work / "out"
    with pytest.warns(export_mod.ExportWarning):
        api.export("p", out, progress=False)
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    calls = []

    def broken(*args: Any, **kwargs: Any) -> int:
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("disk on fire")
        return 0

    with monkeypatch.context() as patch:
        patch.setattr(export_mod, "PAGE_RUNS", 1)
        patch.setattr(export_mod, "_write_history", broken)
        with pytest.raises(RuntimeError, match="disk on fire"):
            api.export("p", out, overwrite=True, progress=False)
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before
    assert sorted(p.name for p in work.iterdir()) == ["busy", "out"]  # no temp dirs

    # --overwrite replaces an earlier export
    time.sleep(0.01)
    res = CliRunner().invoke(
        cli, ["export", "p", "-o", str(out), "--overwrite", "--filters", '{"name": "b"}']
    )
    assert res.exit_code == 0, res.output
    assert [r["name"] for r in _rows(out / "runs.parquet")] == ["b"]
    assert sorted(p.name for p in work.iterdir()) == ["busy", "out"]


def test_streams_pages_of_runs_into_row_groups(
    api: stemma.Api, work: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(export_mod, "PAGE_RUNS", 2)
    calls: list[int] = []
    real = export_mod._write_history

    def counting(writer: Any, page: list[Any], *args: Any) -> int:
        calls.append(len(page))
        return real(writer, page, *args)

    monkeypatch.setattr(export_mod, "_write_history", counting)
    ids = []
    for i in range(5):
        with stemma.init(project="p", name=f"r{i}", config={"i": i}) as run:
            for step in range(3 + i):
                run.log({"x": i * 100.0 + step}, step=step)
            ids.append(run.id)
    out = work / "out"
    result = api.export("p", out, progress=False)
    assert calls == [2, 2, 1]  # three pages, never the whole project at once
    assert result["runs"] == 5 and result["rows"] == sum(3 + i for i in range(5))
    assert [r["id"] for r in _rows(out / "runs.parquet")] == ids  # oldest first
    assert pq.ParquetFile(out / "runs.parquet").num_row_groups == 3
    parts = sorted((out / "history").iterdir())
    assert [p.name for p in parts] == ["part-00000.parquet"]
    assert pq.ParquetFile(parts[0]).num_row_groups == 3
    by_run = _history_by_run(out)
    for i, run_id in enumerate(ids):
        assert by_run[run_id] == {s: {"x": i * 100.0 + s} for s in range(3 + i)}

    # one page of runs, split into history batches by their size: one run per batch here
    monkeypatch.setattr(export_mod, "PAGE_RUNS", 200)
    monkeypatch.setattr(export_mod, "POINTS_PER_BATCH", 1)
    calls.clear()
    again = work / "again"
    api.export("p", again, progress=False)
    assert calls == [1, 1, 1, 1, 1]
    assert pq.ParquetFile(again / "runs.parquet").num_row_groups == 1
    assert pq.ParquetFile(again / "history" / "part-00000.parquet").num_row_groups == 5
    assert _history_by_run(again) == by_run


def test_schema_that_changes_between_pages(
    api: stemma.Api, work: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A column that appears, or changes type, in a later page: every file ends up with
    the final schema, and the earlier pages' values are kept."""
    monkeypatch.setattr(export_mod, "PAGE_RUNS", 2)
    values: list[Any] = [1, 2, 3.5, "four", 5]  # int, int | float | str, int
    ids = []
    for i, v in enumerate(values):
        config = {"v": v, **({"late": [i]} if i == 4 else {})}
        with stemma.init(project="p", name=f"r{i}", config=config) as run:
            run.log({"m": v, **({"extra": True} if i >= 2 else {})}, step=0)
            ids.append(run.id)
    out = work / "out"
    with pytest.warns(export_mod.ExportWarning, match="3 column"):
        api.export("p", out, progress=False)
    runs = pq.read_table(out / "runs.parquet")
    assert runs.schema.field("config.v").type == pa.string()
    assert runs.column("config.v").to_pylist() == ["1", "2", "3.5", '"four"', "5"]
    assert runs.column("config.late").to_pylist() == [None, None, None, None, "[4]"]
    parts = sorted((out / "history").iterdir())
    assert len(parts) == 2  # the schema changed once; the first part was brought up to date
    schemas = {str(pq.read_schema(p)) for p in parts}
    assert len(schemas) == 1
    hist = pq.read_table(out / "history")
    assert hist.schema.field("m").type == pa.string()
    assert hist.column("run_id").to_pylist() == ids
    assert [json.loads(v) for v in hist.column("m").to_pylist()] == values
    assert hist.column("extra").to_pylist() == [None, None, True, True, True]
    manifest = json.loads((out / "manifest.json").read_text())
    assert sum(f["rows"] for n, f in manifest["files"].items() if n.startswith("history/")) == 5
    assert manifest["json_columns"] == ["config.v", "m", "summary.m"]


def test_system_stream(api: stemma.Api, work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STEMMA_SYSTEM_METRICS", "true")
    monkeypatch.setenv("STEMMA_SYSTEM_METRICS_INTERVAL", "0.1")
    with stemma.init(project="p") as run:
        run.log({"x": 1.0})
        time.sleep(0.5)
    out = work / "sys"
    res = CliRunner().invoke(cli, ["export", "p", "-o", str(out), "--stream", "system"])
    assert res.exit_code == 0, res.output
    want = api.run(run.path).history(stream="system", pandas=False)
    got = pq.read_table(out / "history")
    assert len(want) >= 2 and got.num_rows == len(want)
    assert "system/cpu" in got.column_names and "x" not in got.column_names
    for w, g in zip(want, got.to_pylist(), strict=True):
        for key, value in w.items():
            assert _same(g[key], float(value) if key != "_step" else value), key
    assert json.loads((out / "manifest.json").read_text())["stream"] == "system"


def test_histories_as_polars(api: stemma.Api) -> None:
    import polars as pl

    runs = _log_project()
    listing = api.runs("p", order="+created_at")
    frame = listing.histories()
    table = listing.histories(format="polars")
    assert isinstance(table, pl.DataFrame)
    assert table.columns == list(frame.columns)
    assert table.height == len(frame) == len(HISTORY_A) + len(HISTORY_B)

    def same(a: Any, b: Any) -> bool:
        nan_a = isinstance(a, float) and math.isnan(a)
        nan_b = isinstance(b, float) and math.isnan(b)
        return (nan_a and nan_b) or a == b

    for key in frame.columns:
        # polars keeps a logged NaN as NaN and has null where the key was not logged
        got = table[key].to_list()
        for v, g in zip(frame[key].tolist(), got, strict=True):
            assert g is None or same(v, g), key
    a_rows = table.filter(pl.col("run_id") == runs["a"].id)
    loss = a_rows["loss"].to_list()
    assert math.isnan(loss[3]) and loss[5] == math.inf and loss[7] == -math.inf  # not nulls
    assert a_rows["acc"].to_list()[:4] == [0.0, None, 0.2, None]  # not logged: null
    b_rows = table.filter(pl.col("run_id") == runs["b"].id)
    assert b_rows["count"].to_list() == [3.0 * s for s in range(5)]
    assert b_rows["flag"].to_list() == [None, True, None, False, None]
    assert b_rows["sparse"].to_list() == [None, None, 2.5, None, None]

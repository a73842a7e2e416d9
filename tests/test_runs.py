"""Runs on the embedded store: logging, steps, config, summary, states, module-level API."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import math
import pathlib
import time
import warnings

import numpy as np
import pytest

import stemma
from stemma.errors import AlreadyExists, InvalidNameError, InvalidValueError, NotFound, UsageError
from tests.conftest import store_untouched


def _only_run(api: stemma.Api, project: str = "p"):  # type: ignore[no-untyped-def]
    runs = list(api.runs(project))
    assert len(runs) == 1
    return runs[0]


def test_log_and_read_back(api: stemma.Api) -> None:
    run = stemma.init(
        project="p", job_type="train", group="g", tags=["a", "b"], notes="n", config={"lr": 0.1}
    )
    for i in range(100):
        run.log({"loss": 1.0 / (i + 1), "acc": i / 100})
    run.finish()
    stored = _only_run(api)
    assert stored.state == "finished"
    assert stored.exit_code == 0
    assert (stored.job_type, stored.group, stored.tags, stored.notes) == (
        "train",
        "g",
        ["a", "b"],
        "n",
    )
    assert stored.config == {"lr": 0.1}
    assert stored.summary["loss"] == pytest.approx(0.01)
    assert stored.summary["_step"] == 99
    assert stored.summary.get("missing", 42) == 42
    assert stored.summary["_runtime"] >= 0
    hist = stored.history()
    assert list(hist["_step"]) == list(range(100))
    assert hist["loss"].iloc[-1] == pytest.approx(0.01)
    assert {"_runtime", "_timestamp", "loss", "acc"} <= set(hist.columns)
    assert stored.metadata["user"] and stored.metadata["host"]
    assert stored.metadata["python"].count(".") == 2


def test_context_manager_marks_failure(api: stemma.Api) -> None:
    def body() -> None:
        with stemma.init(project="p") as run:
            run.log({"x": 1})
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        body()
    stored = _only_run(api)
    assert stored.state == "failed"
    assert stored.exit_code == 1


def test_finish_with_exit_code(api: stemma.Api) -> None:
    run = stemma.init(project="p")
    run.finish(exit_code=3)
    assert _only_run(api).state == "failed"
    assert _only_run(api).exit_code == 3
    with pytest.raises(UsageError, match="finished"):
        run.log({"x": 1})


def test_explicit_steps_merge_and_drop_lower(api: stemma.Api) -> None:
    run = stemma.init(project="p")
    run.log({"a": 1}, step=5)
    run.log({"b": 2}, step=5)  # same step: merged into one row
    run.log({"a": 3}, step=7)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run.log({"a": 99}, step=6)  # lower than current: dropped, warned once
        run.log({"a": 98}, step=2)
    assert len([w for w in caught if "lower than the current step" in str(w.message)]) == 1
    run.log({"c": 4})  # no step: merges into pending step 7 and commits it (as W&B)
    run.log({"a": 5})  # then continues at 8
    run.finish()
    h = _only_run(api).history()
    assert list(h["_step"]) == [5, 7, 8]
    assert h.loc[0, "a"] == 1 and h.loc[0, "b"] == 2
    assert math.isnan(h.loc[1, "b"])
    assert list(h["a"]) == [1, 3, 5]
    assert h.loc[1, "c"] == 4


def test_commit_false_accumulates(api: stemma.Api) -> None:
    run = stemma.init(project="p")
    run.log({"a": 1}, commit=False)
    run.log({"b": 2}, commit=False)
    run.log({"c": 3})
    run.log({"a": 10})
    run.finish()
    h = _only_run(api).history()
    assert list(h["_step"]) == [0, 1]
    assert (h.loc[0, "a"], h.loc[0, "b"], h.loc[0, "c"]) == (1, 2, 3)


def test_nested_dicts_are_flattened(api: stemma.Api) -> None:
    run = stemma.init(project="p")
    run.log({"train": {"loss": 0.5, "inner": {"x": 1}}, "val/acc": 0.9})
    run.finish()
    stored = _only_run(api)
    assert set(stored.history().columns) >= {"train/loss", "train/inner/x", "val/acc"}
    assert stored.summary["train/inner/x"] == 1


def test_value_types_round_trip_exactly(api: stemma.Api) -> None:
    run = stemma.init(project="p")
    values = [
        {"f": math.nan, "i": 2**62, "s": "x", "b": True, "n": None},
        {"f": math.inf, "i": -5, "s": "", "b": False, "n": 1.5},
        {"f": -math.inf, "i": 0, "s": "ünïcode", "b": True, "n": "mixed"},
        {"f": np.float32(0.25), "i": np.int64(7), "s": "z", "b": np.bool_(False), "n": 3},
    ]
    for v in values:
        run.log(v)
    run.finish()
    stored = _only_run(api)
    rows = stored.history(pandas=False)
    assert math.isnan(rows[0]["f"])
    assert [r["f"] for r in rows[1:]] == [math.inf, -math.inf, 0.25]
    assert [r["i"] for r in rows] == [2**62, -5, 0, 7]
    assert all(type(r["i"]) is int for r in rows)
    assert [r["s"] for r in rows] == ["x", "", "ünïcode", "z"]
    assert [r["b"] for r in rows] == [True, False, True, False]
    assert [r["n"] for r in rows] == [None, 1.5, "mixed", 3]
    assert stored.summary["f"] == 0.25
    run2 = stemma.init(project="q")
    run2.log({"nan": math.nan, "inf": -math.inf})
    run2.finish()
    s = _only_run(api, "q").summary
    assert math.isnan(s["nan"]) and s["inf"] == -math.inf


def test_sparse_keys_and_history_keys(api: stemma.Api) -> None:
    run = stemma.init(project="p")
    for i in range(10):
        row = {"train/loss": float(i)}
        if i % 3 == 0:
            row["val/loss"] = float(i) * 10
        run.log(row)
    run.finish()
    stored = _only_run(api)
    full = stored.history()
    assert len(full) == 10
    assert full["val/loss"].isna().sum() == 6
    only_val = stored.history(keys=["val/loss"])
    assert list(only_val["_step"]) == [0, 3, 6, 9]
    assert list(only_val.columns) == ["_step", "val/loss"]
    both = stored.history(keys=["train/loss", "val/loss"])
    assert list(both["_step"]) == [0, 3, 6, 9]
    rows = list(stored.scan_history(keys=["val/loss"], page_size=4))
    assert [r["_step"] for r in rows] == [0, 3, 6, 9]
    assert [r["val/loss"] for r in rows] == [0.0, 30.0, 60.0, 90.0]
    all_rows = list(stored.scan_history(page_size=3))
    assert len(all_rows) == 10 and "val/loss" not in all_rows[1]


def test_history_samples_keeps_extremes(api: stemma.Api) -> None:
    run = stemma.init(project="p")
    rng = np.random.default_rng(0)
    vals = rng.normal(size=5000)
    vals[1234] = 50.0
    vals[4321] = -50.0
    for v in vals:
        run.log({"x": float(v)})
    run.finish()
    stored = _only_run(api)
    assert len(stored.history()) == 5000  # all rows unless samples is given
    sample = stored.history(keys=["x"], samples=100)
    assert len(sample) <= 100
    assert sample["x"].max() == 50.0 and sample["x"].min() == -50.0
    assert sample["_step"].iloc[0] == 0 and sample["_step"].iloc[-1] == 4999


def test_large_history_spans_chunks(api: stemma.Api) -> None:
    run = stemma.init(project="p")
    n = 40_000  # more than two chunks, written in several batches
    for i in range(n):
        run.log({"x": i})
    run.finish()
    h = _only_run(api).history(keys=["x"])
    assert len(h) == n
    assert (h["x"].to_numpy() == np.arange(n)).all()


def test_config_behaviour(api: stemma.Api) -> None:
    class Color(enum.Enum):
        RED = "red"

    @dataclasses.dataclass
    class Opt:
        name: str
        beta: float

    run = stemma.init(project="p", config={"lr": np.float64(0.5), "path": pathlib.Path("/d")})
    run.config.batch = 32
    run.config["color"] = Color.RED
    run.config.update({"opt": Opt("adam", 0.9), "arr": np.arange(3), "t": (1, 2)})
    assert run.config.lr == 0.5 and run.config["batch"] == 32
    assert run.config.get("missing") is None
    assert run.config.get("missing", "d") == "d"
    with pytest.raises(AttributeError):
        _ = run.config.missing
    with pytest.raises(InvalidValueError, match="'bad'"):
        run.config.update({"ok": 1, "bad": object()})
    assert "ok" not in run.config  # nothing changed by a refused update
    run.finish()
    cfg = _only_run(api).config
    assert cfg.as_dict() == {
        "lr": 0.5,
        "path": "/d",
        "batch": 32,
        "color": "red",
        "opt": {"name": "adam", "beta": 0.9},
        "arr": [0, 1, 2],
        "t": [1, 2],
    }
    assert cfg.get("nothing", 1) == 1


def test_summary_override(api: stemma.Api) -> None:
    run = stemma.init(project="p")
    run.log({"acc": 0.5})
    run.log({"acc": 0.7})
    run.summary["best_acc"] = 0.9
    run.summary["acc"] = 0.6  # an explicit override wins over the last logged value
    assert run.summary.get("acc") == 0.6
    assert run.summary.get("nope", 1) == 1
    run.finish()
    s = _only_run(api).summary
    assert s["best_acc"] == 0.9 and s["acc"] == 0.6


def test_module_level_api_acts_on_most_recent(api: stemma.Api) -> None:
    with pytest.raises(UsageError, match="init"):
        stemma.log({"x": 1})
    assert stemma.config.get("lr", 3) == 3  # before init: .get still answers
    first = stemma.init(project="p", name="first")
    second = stemma.init(project="p", name="second")
    assert stemma.run is second
    stemma.log({"x": 2})
    stemma.config.update({"k": "v"})
    stemma.summary["s"] = 1
    first.log({"x": 1})
    stemma.finish()
    assert stemma.run is first
    first.finish()
    assert stemma.run is None
    by_name = {r.name: r for r in api.runs("p")}
    assert by_name["second"].summary["x"] == 2 and by_name["second"].config["k"] == "v"
    assert by_name["first"].summary["x"] == 1 and "k" not in by_name["first"].config


@pytest.mark.parametrize(
    ("row", "match"),
    [
        ({1: 1.0}, "keys must be strings"),
        ({"": 1.0}, "must not be empty"),
        ({"x": object()}, "cannot log 'x'"),
        ({"x": [1, 2]}, "cannot log 'x'"),
        ({"nested": {"bad": {1, 2}}}, "cannot log 'nested/bad'"),
        ({"_step": 3}, "set by Stemma"),
        ({"k" * 600: 1}, "characters"),
    ],
)
def test_bad_log_input_is_refused_whole(api: stemma.Api, row: dict, match: str) -> None:
    run = stemma.init(project="p")
    run.log({"good": 1.0})
    with pytest.raises(InvalidValueError, match=match):
        run.log({"also_good": 2.0, **row})
    run.log({"good": 3.0})
    run.finish()
    h = _only_run(api).history()
    assert list(h["good"]) == [1.0, 3.0]
    assert "also_good" not in h.columns


def test_bad_log_calls() -> None:
    run = stemma.init(project="p")
    with pytest.raises(InvalidValueError, match="dict"):
        run.log([("a", 1)])  # type: ignore[arg-type]
    with pytest.raises(InvalidValueError, match="step must be an integer"):
        run.log({"a": 1}, step=1.5)  # type: ignore[arg-type]
    run.finish()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"project": "bad name"},
        {"project": "a/b/c"},
        {"entity": "-x", "project": "p"},
        {"project": "p", "id": "has space"},
        {"project": "x" * 200},
    ],
)
def test_invalid_names(kwargs: dict) -> None:
    with pytest.raises(InvalidNameError, match=r"must match|entity/project"):
        stemma.init(**kwargs)


def test_invalid_init_arguments() -> None:
    with pytest.raises(UsageError, match="mode"):
        stemma.init(project="p", mode="sideways")
    with pytest.raises(UsageError, match="resume"):
        stemma.init(project="p", id="abc", resume="sometimes")
    with pytest.raises(UsageError, match="tags"):
        stemma.init(project="p", tags="one-string")
    with pytest.raises(UsageError, match="needs the id"):
        stemma.init(project="p", resume="must")


def test_entity_in_project_path(api: stemma.Api) -> None:
    run = stemma.init(project="team-a/pretraining")
    assert (run.entity, run.project) == ("team-a", "pretraining")
    run.finish()
    assert len(api.runs("team-a/pretraining")) == 1


def test_resume(api: stemma.Api) -> None:
    run = stemma.init(project="p", id="run1", config={"lr": 1}, tags=["t"])
    run.log({"x": 1})
    run.log({"x": 2})
    run.summary["keep"] = "yes"
    run.finish()
    with pytest.raises(AlreadyExists, match="resume='allow'"):
        stemma.init(project="p", id="run1")
    with pytest.raises(AlreadyExists, match="never"):
        stemma.init(project="p", id="run1", resume="never")
    with pytest.raises(NotFound, match="must"):
        stemma.init(project="p", id="other", resume="must")
    again = stemma.init(project="p", id="run1", resume="must", config={"extra": True})
    assert again.resumed
    assert again.step == 2
    assert again.config.as_dict() == {"lr": 1, "extra": True}
    assert again.summary["keep"] == "yes"
    again.log({"x": 3})
    again.finish()
    stored = _only_run(api)
    assert stored.state == "finished"
    assert list(stored.history()["x"]) == [1, 2, 3]
    assert list(stored.history()["_step"]) == [0, 1, 2]
    assert stored.tags == ["t"]
    allowed = stemma.init(project="p", id="fresh", resume="allow")
    assert not allowed.resumed
    allowed.finish()


def test_run_update_and_delete(api: stemma.Api) -> None:
    run = stemma.init(project="p", name="before")
    run.log({"x": 1})
    run.finish()
    stored = _only_run(api)
    stored.name = "after"
    stored.tags = ["new"]
    stored.notes = "edited"
    stored.update()
    again = api.run(f"p/{stored.id}")
    assert (again.name, again.tags, again.notes) == ("after", ["new"], "edited")
    again.delete()
    assert len(api.runs("p")) == 0
    with pytest.raises(NotFound):
        api.run(f"p/{stored.id}")


def test_runs_pagination_and_order(api: stemma.Api) -> None:
    for i in range(7):
        stemma.init(project="p", name=f"r{i}").finish()
    runs = api.runs("p", per_page=3, order="+created_at")
    assert len(runs) == 7
    assert [r.name for r in runs] == [f"r{i}" for i in range(7)]
    assert runs[0].name == "r0" and runs[-1].name == "r6"
    assert next(r.name for r in api.runs("p", order="-created_at")) == "r6"
    with pytest.raises(UsageError, match="order"):
        list(api.runs("p", order="colour"))


def test_disabled_mode_writes_nothing(store_dir: pathlib.Path) -> None:
    run = stemma.init(project="p", mode="disabled")
    run.log({"x": 1})
    with pytest.raises(InvalidValueError):
        run.log({"x": object()})
    run.finish()
    assert store_untouched(store_dir)


@pytest.mark.postgresql_only
def test_a_value_postgresql_cannot_hold_is_refused_not_retried() -> None:
    """The SDK refuses NUL characters itself; a frame that bypasses it (another client)
    still gets a clear, immediate refusal from the database layer, never a retry loop."""
    from stemma.backend import get_backend
    from stemma.settings import Settings
    from stemma.wire.records import RunRef

    backend = get_backend(Settings.from_env())
    event = {
        "t": "run",
        "entity": "e",
        "project": "p",
        "run_id": "r",
        "name": "n",
        "config": {"a": "x\x00y"},
        "tags": [],
        "created_at": time.time(),
    }
    with pytest.raises(InvalidValueError, match="cannot store a value"):
        backend.apply(RunRef("e", "p", "r"), "s", 0, 10, [event])
    assert backend.get_run(RunRef("e", "p", "r")) is None  # nothing half-written


def test_timestamps_come_back_in_utc(api: stemma.Api) -> None:
    # The test PostgreSQL server runs in Pacific/Chatham (UTC+12:45/+13:45) on purpose.
    run = stemma.init(project="p")
    run.finish()
    (stored,) = list(api.runs("p"))
    for value in (stored.created_at, stored.heartbeat_at):
        assert value.tzinfo is not None and value.utcoffset() == dt.timedelta(0)
    age = dt.datetime.now(dt.UTC) - stored.created_at
    assert dt.timedelta(0) <= age < dt.timedelta(minutes=5)


def test_nul_characters_are_refused_on_every_database(api: stemma.Api) -> None:
    """SQLite would keep a NUL; PostgreSQL cannot. Refuse it up front, the same everywhere."""
    run = stemma.init(project="p")
    with pytest.raises(InvalidValueError, match="NUL"):
        run.log({"s": "a\x00b"})
    with pytest.raises(InvalidValueError, match="NUL"):
        run.log({"k\x00": 1})
    with pytest.raises(InvalidValueError, match="NUL"):
        run.config.update({"c": "x\x00"})
    with pytest.raises(InvalidValueError, match="NUL"):
        run.summary["s"] = "\x00"
    run.log({"s": "fine"})
    run.finish()
    assert _only_run(api).summary["s"] == "fine"
    with pytest.raises(UsageError, match="NUL"):
        stemma.init(project="p", notes="bad\x00")
    with pytest.raises(UsageError, match="at most 128"):
        stemma.init(project="p", job_type="j" * 129)


def test_runs_to_pandas(api: stemma.Api) -> None:
    for i, arch in enumerate(["mlp", "cnn", "mlp"]):
        with stemma.init(
            project="p",
            name=f"r{i}",
            group="g",
            config={"lr": 0.1 * (i + 1), "opt": {"name": "adam"}, "arch": arch},
        ) as run:
            run.log({"val/loss": 1.0 / (i + 1)})
    df = api.runs_df("p", order="+created_at")
    assert list(df["name"]) == ["r0", "r1", "r2"]
    assert list(df["config.arch"]) == ["mlp", "cnn", "mlp"]
    assert list(df["config.opt.name"]) == ["adam"] * 3
    assert df["summary.val/loss"].tolist() == [1.0, 0.5, 1.0 / 3]
    assert list(df.columns[:3]) == ["id", "name", "state"]
    only_mlp = api.runs("p", filters={"config.arch": "mlp"}).to_pandas()
    assert sorted(only_mlp["name"]) == ["r0", "r2"]
    empty = api.runs_df("p", filters={"state": "crashed"})
    assert len(empty) == 0 and "name" in empty.columns


def test_histories_of_many_runs(api: stemma.Api) -> None:
    from stemma.backend import get_backend
    from stemma.settings import Settings

    for i in range(3):
        with stemma.init(project="p", name=f"r{i}") as run:
            for step in range(100 * (i + 1)):
                run.log({"loss": 1.0 / (step + 1), "acc": step / 300})
    runs = api.runs("p", order="+created_at")
    table = runs.histories(keys=["loss"])
    assert list(table.columns) == ["run_id", "_step", "loss"]
    assert len(table) == 100 + 200 + 300
    ids = [r.id for r in runs]
    assert table.groupby("run_id").size().to_dict() == {ids[0]: 100, ids[1]: 200, ids[2]: 300}
    sampled = runs.histories(keys=["loss"], samples=20)
    assert (sampled.groupby("run_id").size() <= 20).all()
    assert sampled.groupby("run_id")["loss"].max().tolist() == [1.0, 1.0, 1.0]  # extremes kept
    only = api.runs("p", filters={"name": "r1"}).histories(keys=["acc"])
    assert set(only["run_id"]) == {ids[1]} and len(only) == 200
    with pytest.raises(UsageError, match="format"):
        runs.histories(format="csv")
    assert len(runs.histories(keys="loss")) == 600  # one key as a plain string
    with pytest.raises(UsageError, match="list of strings"):
        get_backend(Settings.from_env()).read_histories(run.entity, "p", ids, keys=[1])
    with pytest.raises(UsageError, match="at most 1000 runs"):
        get_backend(Settings.from_env()).read_histories(
            run.entity, "p", [f"r{i}" for i in range(1001)]
        )

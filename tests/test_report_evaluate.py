"""Report evaluation (stemma.report.evaluate): the live data of every block, read with
the reader's rights, checked against pandas on the same runs."""

from __future__ import annotations

import html.parser
import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from stemma.backend.embedded import EmbeddedBackend
from stemma.report import evaluate as ev
from stemma.report.evaluate import evaluate, render_markdown
from stemma.wire.history import encode_rows
from stemma.wire.records import RunRef
from tests.fixtures.accounts import as_user, make_user, open_store

pytestmark = pytest.mark.embedded_only

LRS = (0.1, 0.01, 0.001)


def log(
    store: EmbeddedBackend,
    path: str,
    rows: list[tuple[int, dict[str, Any]]],
    *,
    config: dict[str, Any] | None = None,
    summary: dict[str, Any] | None = None,
    state: str = "finished",
    group: str | None = None,
    at: float | None = None,
) -> RunRef:
    """A run with ``rows`` of (step, {key: value}); runtime = step / 10."""
    entity, project, run_id = path.split("/")
    ref = RunRef(entity, project, run_id)
    now = at or time.time()
    events: list[dict[str, Any]] = [
        {
            "t": "run",
            "name": run_id,
            "config": config or {},
            "tags": [],
            "group": group,
            "created_at": now,
        },
        encode_rows([(s, now + s, s / 10, vals) for s, vals in rows]) | {"t": "history"},
    ]
    if summary:
        events.append({"t": "summary", "summary": summary})
    if state != "running":
        events.append({"t": "finish", "state": state, "exit_code": 0, "at": now})
    store.apply(ref, f"spool-{run_id}", 0, 100, events)
    return ref


@pytest.fixture
def world(store_dir: Path) -> dict[str, Any]:
    """Team acme (ann admin, vic viewer) with 12 runs in acme/vision (3 learning rates,
    steps 0..39, some steps missing), and team vault (ann only) with 2 runs."""
    store = open_store(store_dir, os.environ.get("STEMMA_DATABASE_URL"))
    for n in ("ann", "vic"):
        make_user(store, f"{n}@example.com")
    ann = as_user(store, "ann")
    ann.create_team("acme")
    ann.create_team("vault")
    ann.add_member("acme", "vic@example.com", "viewer")
    rng = np.random.default_rng(5)
    frames = []
    t0 = time.time() - 1000
    for i in range(12):
        lr = LRS[i % 3]
        steps = [s for s in range(40) if not (i == 4 and s % 5 == 0)]  # run 4 skips some
        values = rng.normal(1.0 / (1 + 100 * lr), 0.05, len(steps))
        rows = [
            (s, {"loss": float(v), "acc": float(1 - v)}) for s, v in zip(steps, values, strict=True)
        ]
        ref = log(
            ann,
            f"acme/vision/r{i:02d}",
            rows,
            config={"lr": lr, "bs": 32 * (1 + i % 2)},
            summary={"acc": float(1 - values[-1]), "loss": float(values[-1])},
            group=f"g{i % 2}",
            at=t0 + i,
        )
        frames.extend(
            {"run": ref.run_id, "lr": lr, "step": s, "loss": float(v), "runtime": s / 10}
            for s, v in zip(steps, values, strict=True)
        )
    for i in range(2):
        log(ann, f"vault/secret/s{i}", [(s, {"loss": 5.0}) for s in range(5)])
    return {
        "store": store,
        "ann": ann,
        "vic": as_user(store, "vic"),
        "frame": pd.DataFrame(frames),
    }


def spec(*panels: dict[str, Any], runsets: list[dict[str, Any]] | None = None) -> dict:
    return {
        "version": 1,
        "entity": "acme",
        "project": "vision",
        "title": "T",
        "description": "",
        "blocks": [{"type": "panel_grid", "runsets": runsets or [], "panels": list(panels)}],
    }


def grid(out: dict[str, Any], block: int = 0) -> dict[str, Any]:
    data: dict[str, Any] = out["blocks"][block]["data"]
    return data


def close(got: list[Any], want: Any) -> bool:
    g = np.array([np.nan if v is None else v for v in got], dtype=float)
    return bool(np.allclose(g, np.asarray(want, dtype=float), rtol=1e-6, equal_nan=True))


def test_groupby_means_and_bands_match_pandas(world: dict[str, Any]) -> None:
    line = {"type": "line_plot", "y": ["loss"], "groupby": "config.lr"}
    data = grid(evaluate(world["ann"], spec(line)))
    panel = data["panels"][0]
    assert panel["kind"] == "line" and panel["grouped"] and panel["groups"] == 3
    df = world["frame"]
    want = df.groupby(["lr", "step"])["loss"].agg(["mean", "min", "max"])
    assert panel["x"] == sorted(df["step"].unique().tolist())
    assert [s["group"] for s in panel["series"]] == sorted(LRS)  # in value order
    for s in panel["series"]:
        rows = want.loc[s["group"]].reindex(panel["x"])
        assert close(s["y"], rows["mean"])
        assert close(s["min"], rows["min"])
        assert close(s["max"], rows["max"])
        assert s["count"] == 4 and s["run"] is None
    # The runs the panel grid read, with their colours, once each.
    assert len(data["runs"]) == 12 and [r["color"] for r in data["runs"]] == list(range(12))
    assert panel["points"] == sum(v is not None for s in panel["series"] for v in s["y"])


def test_ungrouped_lines_and_other_x_keys(world: dict[str, Any]) -> None:
    lines = [
        {"type": "line_plot", "y": ["loss"], "max_runs": 5},
        {"type": "line_plot", "x": "_runtime", "y": ["loss", "acc"], "log_y": True},
        {"type": "line_plot", "x": "_timestamp", "y": ["loss"], "max_runs": 1},
    ]
    data = grid(evaluate(world["ann"], spec(*lines)))
    by_step, by_time, by_clock = data["panels"]
    assert by_clock["x_kind"] == "time"  # timestamps keep their precision (1 s apart here)
    assert np.diff(by_clock["x"]) == pytest.approx(np.ones(len(by_clock["x"]) - 1))
    assert by_step["runs_drawn"] == 5 and by_step["capped"] and "5 of 12" in by_step["note"]
    df = world["frame"].set_index(["run", "step"])
    for s in by_step["series"]:
        run_id = data["runs"][s["run"]]["id"]
        want = df.loc[run_id]["loss"].reindex(by_step["x"])
        assert close(s["y"], want) and s["color"] == s["run"]
    assert by_time["x_kind"] == "runtime" and by_time["log_y"]
    assert len(by_time["series"]) == 24  # 12 runs x 2 keys
    assert by_time["x"] == pytest.approx([s / 10 for s in range(40)])


def test_downsampled_grid_stays_bounded(world: dict[str, Any], monkeypatch: Any) -> None:
    """Many points: each run read downsampled, lines on a bucketed grid, means inside
    their bands."""
    monkeypatch.setattr(ev, "POINT_BUDGET", 120)
    monkeypatch.setattr(ev, "MIN_SAMPLES", 10)
    line = {"type": "line_plot", "y": ["loss"], "groupby": "config.lr"}
    panel = grid(evaluate(world["ann"], spec(line)))["panels"][0]
    assert 1 < len(panel["x"]) <= 10 and panel["x"] == sorted(panel["x"])
    for s in panel["series"]:
        for y, lo, hi in zip(s["y"], s["min"], s["max"], strict=True):
            assert y is None or lo - 1e-9 <= y <= hi + 1e-9


def test_a_new_run_appears_without_editing(world: dict[str, Any]) -> None:
    panels = [
        {"type": "line_plot", "y": ["loss"], "groupby": "config.lr"},
        {"type": "runs_table", "columns": None},
    ]
    the_spec = spec(*panels, runsets=[{"filters": {"state": "finished"}}])
    before = grid(evaluate(world["ann"], the_spec))
    log(world["ann"], "acme/vision/late", [(0, {"loss": 9.0})], config={"lr": 0.5})
    log(world["ann"], "acme/vision/live", [(0, {"loss": 9.0})], state="running")
    after = grid(evaluate(world["ann"], the_spec))
    assert len(after["runs"]) == len(before["runs"]) + 1  # the running one is filtered out
    assert after["runs"][0]["name"] == "late"  # newest first
    line = after["panels"][0]
    assert line["groups"] == before["panels"][0]["groups"] + 1
    assert any(s["group"] == 0.5 for s in line["series"])
    assert after["runsets"][0]["count"] == 13
    table = after["panels"][1]
    assert table["columns"][:3] == ["name", "state", "created_at"]
    assert table["rows"][0]["values"][0] == "late"


def test_a_reader_without_access_to_a_runset_sees_the_block_without_its_runs(
    world: dict[str, Any],
) -> None:
    runsets = [
        {"name": "Ours"},
        {"name": "Theirs", "entity": "vault", "project": "secret"},
    ]
    line = {"type": "line_plot", "y": ["loss"]}
    the_spec = spec(line, {"type": "bar_plot", "metrics": ["loss"]}, runsets=runsets)
    mine = grid(evaluate(world["ann"], the_spec))
    assert len(mine["runs"]) == 14 and mine["runsets"][1]["count"] == 2
    theirs = grid(evaluate(world["vic"], the_spec))
    assert len(theirs["runs"]) == 12
    assert {r["project"] for r in theirs["runs"]} == {"vision"}
    blocked = theirs["runsets"][1]
    assert blocked["count"] == 0 and blocked["shown"] == 0
    assert "vault/secret" in blocked["note"] and "cannot read" in blocked["note"]
    assert len(theirs["panels"][0]["series"]) == 12
    assert all(b["run"] < 12 for b in theirs["panels"][1]["bars"])


def test_summary_panels_match_pandas(world: dict[str, Any]) -> None:
    panels = [
        {"type": "bar_plot", "metrics": ["acc"], "groupby": "config.lr"},
        {"type": "scalar_chart", "metric": "acc", "groupby": "group"},
        {"type": "scatter_plot", "x": "config.lr", "y": "summary.acc"},
        {"type": "parallel_coordinates_plot", "columns": ["config.lr", "config.bs", "acc"]},
        {"type": "run_comparer"},
    ]
    data = grid(evaluate(world["ann"], spec(*panels)))
    bar, scalar, scatter, parallel, comparer = data["panels"]
    runs = world["ann"].list_runs("acme", "vision", limit=None)
    df = pd.DataFrame(
        {
            "lr": [r.config["lr"] for r in runs],
            "group": [r.group for r in runs],
            "acc": [r.summary["acc"] for r in runs],
        }
    )
    by_lr = df.groupby("lr")["acc"].agg(["mean", "min", "max", "count"])
    assert [b["group"] for b in bar["bars"]] == sorted(LRS)
    for b in bar["bars"]:
        assert b["values"]["acc"] == pytest.approx(by_lr.loc[b["group"], "mean"])
        assert b["min"]["acc"] == pytest.approx(by_lr.loc[b["group"], "min"])
        assert b["count"] == by_lr.loc[b["group"], "count"]
    assert scalar["value"] == pytest.approx(df["acc"].mean()) and scalar["count"] == 12
    by_group = df.groupby("group")["acc"].mean()
    assert {g["group"]: g["value"] for g in scalar["groups"]} == pytest.approx(by_group.to_dict())
    assert len(scatter["points"]) == 12
    assert {(p["x"], p["y"]) for p in scatter["points"]} == set(
        zip(df["lr"], df["acc"], strict=True)
    )
    assert len(parallel["rows"]) == 12 and len(parallel["rows"][0]["values"]) == 3
    keys = [row["key"] for row in comparer["rows"]]
    assert "config.lr" in keys and "config.bs" in keys and "summary.acc" in keys
    assert all(len(row["values"]) == len(comparer["runs"]) for row in comparer["rows"])


def test_comparer_lists_only_keys_that_differ(world: dict[str, Any]) -> None:
    the_spec = spec(
        {"type": "run_comparer"},
        runsets=[{"filters": {"config.lr": 0.1, "config.bs": 32}}],
    )
    comparer = grid(evaluate(world["ann"], the_spec))["panels"][0]
    keys = [row["key"] for row in comparer["rows"]]
    assert len(comparer["runs"]) == 2
    assert "config.lr" not in keys and "config.bs" not in keys and "summary.acc" in keys


def test_media_browser_shows_each_runs_latest_media(world: dict[str, Any], tmp_path: Path) -> None:
    from tests.test_media import log_media

    digest = log_media(world["ann"], tmp_path, "acme/pics/m1")
    the_spec = spec({"type": "media_browser", "media_keys": ["sample"]})
    the_spec["project"] = "pics"
    media = grid(evaluate(world["ann"], the_spec))["panels"][0]
    (item,) = media["items"]
    assert item["kind"] == "image" and item["digest"] == digest and item["key"] == "sample"
    assert item["url"] == f"/api/v1/runs/acme/pics/m1/media/{digest}"

    def share_url(e: str, p: str, r: str, d: str) -> str:
        return f"/share/r/tok/media/{e}/{p}/{r}/{d}"

    shared = evaluate(world["ann"], the_spec, media_url=share_url, run_links=False)
    assert grid(shared)["panels"][0]["items"][0]["url"].startswith("/share/r/tok/media/acme/pics/")
    assert grid(shared)["runs"][0]["url"] is None
    assert grid(evaluate(world["ann"], the_spec))["runs"][0]["url"] == "/p/acme/pics/r/m1"


def test_headings_make_a_table_of_contents(world: dict[str, Any]) -> None:
    doc = {
        "version": 1,
        "entity": "acme",
        "project": "vision",
        "title": "T",
        "blocks": [
            {"type": "toc"},
            {"type": "h1", "text": "Results"},
            {"type": "p", "text": "<b>plain</b>"},
            {"type": "h2", "text": "Loss & accuracy"},
        ],
    }
    out = evaluate(world["ann"], doc)
    toc = out["blocks"][0]["data"]["entries"]
    assert [(e["level"], e["text"]) for e in toc] == [(1, "Results"), (2, "Loss & accuracy")]
    assert toc[0]["anchor"] == out["blocks"][1]["data"]["anchor"] == "s1-results"
    assert toc[1]["anchor"] == "s3-loss-accuracy"
    assert out["toc"] == toc


class _Tags(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def _elements(markup: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = _Tags()
    parser.feed(markup)
    return parser.tags


XSS = [
    "<script>window.__xss=1</script>",
    "<img src=x onerror=window.__xss=1>",
    "[x](javascript:alert(1))",
    "[y](JaVaScRiPt:alert(1))",
    "[z](  javascript:alert(1))",
    "<javascript:alert(1)>",
    "[w](vbscript:msgbox(1))",
    "[d](data:text/html,<script>alert(1)</script>)",
    "![i](javascript:alert(1))",
    '<a href="javascript:alert(1)">a</a>',
    "<iframe src=//evil.example></iframe>",
    '<div style="x" onclick="alert(1)">d</div>',
]


@pytest.mark.parametrize("payload", XSS)
def test_markdown_runs_nothing(payload: str) -> None:
    out = render_markdown(f"Some **text** {payload} after")
    for tag, attrs in _elements(out):
        assert tag in {"p", "strong", "em", "a", "img", "code", "br"}, out
        assert not any(name.startswith("on") for name in attrs), out
        for name in ("href", "src"):
            url = (attrs.get(name) or "").strip().lower()
            assert not url or url.startswith(("http://", "https://", "mailto:", "/", "#")), out


def test_markdown_keeps_safe_links_and_formatting() -> None:
    out = render_markdown(
        "# Title\n\n**bold** [site](https://example.com/a?b=1) [mail](mailto:a@example.com) "
        "[rel](/p/acme/vision) `code`\n\n- one\n- two"
    )
    tags = _elements(out)
    hrefs = [a["href"] for t, a in tags if t == "a"]
    assert hrefs == ["https://example.com/a?b=1", "mailto:a@example.com", "/p/acme/vision"]
    assert all(a.get("rel") == "nofollow noopener noreferrer" for t, a in tags if t == "a")
    assert {"h1", "strong", "code", "ul", "li"} <= {t for t, _ in tags}


def test_markdown_blocks_are_rendered_in_the_evaluation(world: dict[str, Any]) -> None:
    doc = {
        "version": 1,
        "entity": "acme",
        "project": "vision",
        "title": "T",
        "blocks": [{"type": "markdown", "text": "<script>x</script> [a](javascript:x) *ok*"}],
    }
    html_out = evaluate(world["ann"], doc)["blocks"][0]["data"]["html"]
    assert [t for t, _ in _elements(html_out)] == ["p", "em"]  # no script, no link
    assert "&lt;script&gt;" in html_out and "<em>ok</em>" in html_out


def test_the_output_is_strict_json(world: dict[str, Any]) -> None:
    """NaN and infinities never reach the page's JSON (JSON.parse refuses them)."""
    import json

    log(
        world["ann"],
        "acme/vision/odd",
        [(0, {"loss": math.nan}), (1, {"loss": math.inf}), (2, {"loss": 1.0})],
        summary={"acc": math.nan, "loss": math.inf},
    )
    panels = [
        {"type": "line_plot", "y": ["loss"]},
        {"type": "bar_plot", "metrics": ["acc", "loss"]},
        {"type": "scalar_chart", "metric": "loss"},
        {"type": "runs_table", "columns": ["name", "acc", "loss"]},
        {"type": "run_comparer"},
        {"type": "parallel_coordinates_plot", "columns": ["acc", "loss"]},
    ]
    json.dumps(evaluate(world["ann"], spec(*panels)), allow_nan=False)

"""The report snippets of the reference write-up run unchanged with ``import stemma as
wandb``, on every store (SQLite, PostgreSQL, a server over HTTP).

Each snippet is the reference's text, verbatim, executed with ``wandb`` in
``sys.modules`` bound to ``stemma``: its own ``import wandb`` line is then exactly
``import stemma as wandb``. Before it runs, the project it assumes is logged
("username/text-classifier": runs with train/loss and val/loss histories, a learning
rate and a batch size in their config, a val/f1 summary); after it, what it promised
is checked (the report is stored and loads back, its groupby draws one line per
learning rate with the right mean, the Plotly figure is a media item a report shows,
the weekly "top 10 runs" Markdown table lists the runs pandas ranks first).
"""

from __future__ import annotations

import random
import re
import sys
from typing import Any

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

import stemma
from stemma.cli.main import cli
from stemma.report.evaluate import evaluate

ENTITY, PROJECT = "username", "text-classifier"
LEARNING_RATES = (1e-3, 1e-4, 3e-5)
ARCHITECTURES = ("bert-base", "distilbert")

# ---------------------------------------------------------------- the reference's text

# "Building a Report Programmatically" (lines 110-137)
BUILD_REPORT = """\
import wandb

api = wandb.Api()
runs = api.runs("username/text-classifier", filters={"state": "finished"})

# Create a report
report = wandb.Report(
    project="text-classifier",
    title="BERT Finetuning Results: Week 6",
    description="Comparison of learning rates and batch sizes"
)

# Add a panel showing loss curves for all runs
report.blocks = [
    wandb.report.PanelGrid(
        panels=[
            wandb.report.LinePlot(
                x="_step",
                y=["train/loss", "val/loss"],
                title="Training Loss by Learning Rate",
                groupby="config.learning_rate"
            )
        ]
    )
]

report.save()
print(f"Report URL: {report.url}")
"""

# "Embedding Custom Visualizations" (lines 145-158): `run` is a run in progress.
PLOTLY_CONFUSION_MATRIX = """\
import plotly.graph_objects as go

# Generate a custom confusion matrix plot
fig = go.Figure(data=go.Heatmap(
    z=[[50, 10], [5, 35]],
    x=["Spam", "Not Spam"],
    y=["Spam", "Not Spam"],
    colorscale="Blues"
))

# Log it to a run, then embed in a report
run.log({"confusion_matrix": wandb.Plotly(fig)})

# In the report UI, add a "Run" panel and select the confusion_matrix metric
"""

# "Table API for Custom Dashboards" (lines 240-262), the source of the weekly top 10.
TABLE_API = """\
import wandb
import pandas as pd

api = wandb.Api()
runs = api.runs("username/text-classifier")

# Extract hyperparameters and metrics into a DataFrame
data = []
for run in runs:
    if run.state == "finished":
        data.append({
            "name": run.name,
            "learning_rate": run.config.get("learning_rate"),
            "batch_size": run.config.get("batch_size"),
            "val_f1": run.summary.get("val/f1"),
            "runtime_minutes": (run.summary.get("_runtime") or 0) / 60
        })

df = pd.DataFrame(data)
print(df.sort_values("val_f1", ascending=False).head(10))
"""


# ---------------------------------------------------------------- the data they assume


@pytest.fixture
def as_wandb(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """``import wandb`` gives stemma; runs go to the reference's entity "username"."""
    monkeypatch.setitem(sys.modules, "wandb", stemma)
    monkeypatch.setenv("STEMMA_ENTITY", ENTITY)
    return {"__name__": "reference_snippet"}


def losses(i: int, steps: int) -> tuple[np.ndarray, np.ndarray]:
    s = np.arange(steps)
    train = 2.0 * np.exp(-s / (5 + i)) + 0.01 * i
    return train, train * 1.1 + 0.05


def seed_project(runs: int = 14, failed: int = 3, steps: int = 12) -> list[dict[str, Any]]:
    """``runs`` finished runs of username/text-classifier (and ``failed`` crashed ones
    with better scores, which "finished" filters must leave out); what each logged."""
    rng = random.Random(8)
    f1s = rng.sample(range(500, 990), runs + failed)
    logged = []
    for i in range(runs + failed):
        config = {
            "learning_rate": LEARNING_RATES[i % 3],
            "batch_size": (16, 32)[i % 2],
            "architecture": ARCHITECTURES[i % 2],
        }
        run = stemma.init(project=PROJECT, name=f"bert-{i:02d}", config=config)
        train, val = losses(i, steps)
        for s in range(steps):
            run.log({"train/loss": float(train[s]), "val/loss": float(val[s])})
        f1 = (f1s[i] if i < runs else 990 + i) / 1000
        run.summary["val/f1"] = f1
        state = "finished" if i < runs else "crashed"
        run.finish(exit_code=0 if i < runs else 1)
        logged.append({"name": f"bert-{i:02d}", **config, "val/f1": f1, "state": state})
    return logged


def run_snippet(code: str, namespace: dict[str, Any]) -> dict[str, Any]:
    exec(compile(code, "<reference snippet>", "exec"), namespace)
    return namespace


def markdown_rows(text: str) -> list[list[str]]:
    """The body rows of the first Markdown table of ``text``, as cells."""
    lines = [line for line in text.splitlines() if line.startswith("|")]
    return [[c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]] for line in lines[2:]]


# ---------------------------------------------------------------- the tests


def test_build_a_report_programmatically(
    as_wandb: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    logged = seed_project(runs=9, failed=1)
    ns = run_snippet(BUILD_REPORT, as_wandb)

    report = ns["report"]
    printed = capsys.readouterr().out
    assert f"Report URL: {report.url}\n" in printed
    assert report.id and report.revision == 1
    assert re.fullmatch(rf"https?://[^/]+/p/{ENTITY}/{PROJECT}/reports/{report.id}", report.url)
    assert len(list(ns["runs"])) == 9  # the snippet's filtered runs: finished only

    # It loads back as the same objects.
    loaded = stemma.Api().report(report.id)
    assert loaded.to_spec() == report.to_spec()
    assert loaded.title == "BERT Finetuning Results: Week 6"
    (grid,) = loaded.blocks
    (plot,) = grid.panels
    assert isinstance(plot, stemma.report.LinePlot)
    assert (plot.x, plot.y, plot.groupby) == (
        "_step",
        ["train/loss", "val/loss"],
        "config.learning_rate",
    )
    assert [r.id for r in stemma.Api().reports(f"{ENTITY}/{PROJECT}")] == [report.id]

    # The groupby draws one line per learning rate and key: the mean of its runs.
    from stemma.backend import get_backend
    from stemma.settings import Settings

    data = evaluate(get_backend(Settings.from_env()), loaded.to_spec())
    panel = data["blocks"][0]["data"]["panels"][0]
    assert panel["kind"] == "line" and panel["grouped"]
    assert panel["groups"] == len(LEARNING_RATES)
    series = {(s["group"], s["key"]): s for s in panel["series"]}
    assert len(series) == len(LEARNING_RATES) * 2
    frame = pd.DataFrame(
        [
            {"lr": r["learning_rate"], "step": s, "val/loss": v}
            for i, r in enumerate(logged)  # every run: no runset filter in the snippet
            for s, v in enumerate(losses(i, 12)[1])
        ]
    )
    expected = frame.groupby(["lr", "step"])["val/loss"].mean()
    line = series[(1e-4, "val/loss")]
    assert line["count"] == sum(r["learning_rate"] == 1e-4 for r in logged)
    assert panel["x"] == list(range(12))
    np.testing.assert_allclose(line["y"], expected.loc[1e-4].to_numpy(), rtol=1e-5)


def test_plotly_confusion_matrix_in_a_report(as_wandb: dict[str, Any]) -> None:
    # The snippet continues the write-up's script: wandb imported, a run in progress.
    run_snippet("import wandb", as_wandb)
    run = stemma.init(project=PROJECT, name="confusion")
    as_wandb["run"] = run
    run_snippet(PLOTLY_CONFUSION_MATRIX, as_wandb)
    run.finish()

    # "add a Run panel and select the confusion_matrix metric": a media browser.
    report = stemma.Report(project=PROJECT, title="Spam filter")
    report.blocks = [
        stemma.report.PanelGrid(panels=[stemma.report.MediaBrowser(["confusion_matrix"])])
    ]
    report.save()
    from stemma.backend import get_backend
    from stemma.settings import Settings

    store = get_backend(Settings.from_env())
    data = evaluate(store, stemma.Api().report(report.id).to_spec())
    (item,) = data["blocks"][0]["data"]["panels"][0]["items"]
    assert (item["key"], item["kind"]) == ("confusion_matrix", "plotly")

    # The figure is the reference's heatmap, through every store.
    import json

    from stemma.wire.records import RunRef

    figure = json.loads(store.read_media(RunRef(ENTITY, PROJECT, run.id), item["digest"]))
    heatmap = figure["data"][0]
    assert heatmap["type"] == "heatmap" and heatmap["x"] == ["Spam", "Not Spam"]
    assert heatmap["z"] == [[50, 10], [5, 35]]

    # Exported, the report carries the figure and Plotly's library (and opens offline:
    # tests/test_report_export.py draws one in Chromium).
    out = CliRunner().invoke(cli, ["report", "export", report.id, "--format", "html", "-o", "-"])
    assert out.exit_code == 0, out.output
    assert "data:application/json;base64," in out.output
    assert "plotly.js" in out.output.lower()


def test_weekly_top_10_runs_as_markdown(
    as_wandb: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    logged = seed_project(runs=14, failed=3)
    ns = run_snippet(TABLE_API, as_wandb)
    capsys.readouterr()
    df = ns["df"]
    assert len(df) == 14  # the snippet keeps finished runs only
    top10 = df.sort_values("val_f1", ascending=False).head(10)

    # "pull the top 10 runs by validation accuracy, generate a Markdown table, and Slack
    # it": a report of the finished runs, exported as Markdown.
    report = stemma.Report(project=PROJECT, title="Weekly: text-classifier")
    report.blocks = [
        stemma.report.H1("Top runs"),
        stemma.report.PanelGrid(
            runsets=[stemma.report.Runset(filters={"state": "finished"})],
            panels=[
                stemma.report.BarPlot(["val/f1"], groupby="config.architecture"),
                stemma.report.RunsTable(
                    columns=["config.learning_rate", "config.batch_size", "val/f1"]
                ),
            ],
        ),
    ]
    report.save()
    out = CliRunner().invoke(cli, ["report", "export", report.id, "--format", "md"])
    assert out.exit_code == 0, out.output
    text = out.output
    assert text.startswith("# Weekly: text-classifier\n")
    assert "## Top runs" in text
    assert "**Top 10 runs by `val/f1`** (highest first" in text  # the first panel's metric
    assert "14 runs with a value" in text
    rows = markdown_rows(text)
    assert [r[1] for r in rows] == list(top10["name"])
    header = next(line for line in text.splitlines() if line.startswith("| #"))
    assert header == (
        "| # | run | val/f1 | config.architecture | config.learning_rate | config.batch_size |"
    )
    by_name = {r["name"]: r for r in logged}
    for rank, row in enumerate(rows, 1):
        run = by_name[row[1]]
        assert row[0] == str(rank)
        assert float(row[2]) == pytest.approx(run["val/f1"])
        assert row[3] == run["architecture"]
        assert float(row[4]) == pytest.approx(run["learning_rate"])
        assert int(row[5]) == run["batch_size"]

    # The write-up's workflow: "top 5 runs by val accuracy, grouped by architecture".
    out = CliRunner().invoke(
        cli, ["report", "export", report.id, "--format", "md", "--metric", "val/f1", "--top", "5"]
    )
    assert out.exit_code == 0, out.output
    assert [r[1] for r in markdown_rows(out.output)] == list(top10["name"].head(5))
    assert "(highest first; 14 runs with a value)" in out.output

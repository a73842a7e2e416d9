"""The command line, run in-process through click's runner."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import stemma
from stemma.cli.main import cli


def test_runs_ls_table_and_json() -> None:
    with stemma.init(project="p", name="alpha", config={"lr": 0.1}) as run:
        run.log({"loss": 0.5})
    with stemma.init(project="p", name="beta", config={"lr": 0.2}) as run:
        run.log({"loss": 0.25})
    out = CliRunner().invoke(cli, ["runs", "ls", "p"])
    assert out.exit_code == 0, out.output
    assert "alpha" in out.output and "beta" in out.output and "0.25" in out.output
    assert "config.lr" in out.output  # differing config is shown
    js = CliRunner().invoke(cli, ["runs", "ls", "p", "--json"])
    rows = [json.loads(line) for line in js.output.splitlines()]
    assert {r["name"] for r in rows} == {"alpha", "beta"}
    assert {r["summary"]["loss"] for r in rows} == {0.5, 0.25}


def test_runs_ls_errors() -> None:
    bad = CliRunner().invoke(cli, ["runs", "ls", "bad name"])
    assert bad.exit_code == 1 and "invalid project name" in bad.output
    stemma.init(project="exists").finish()
    missing = CliRunner().invoke(cli, ["runs", "ls", "nope"])
    assert missing.exit_code == 1 and "no project" in missing.output
    assert "exists" in missing.output


def test_sync_with_nothing() -> None:
    out = CliRunner().invoke(cli, ["sync"])
    assert out.exit_code == 0 and "nothing to sync" in out.output


def test_demo_fast(api: stemma.Api, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``stemma demo``: ingest -> preprocess -> a grouped sweep with checkpoints -> eval of
    ``staging`` -> promotion to the protected ``production`` -> a report."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    out = CliRunner().invoke(cli, ["demo", "--fast"])
    assert out.exit_code == 0, out.output
    assert list(cwd.iterdir()) == []  # downloads went to temporary directories, not ./artifacts
    everything = list(api.runs("stemma-demo"))
    by_type: dict[str, list[Any]] = {}
    for r in everything:
        by_type.setdefault(r.job_type or "", []).append(r)
    assert {k: len(v) for k, v in by_type.items()} == {
        "ingest": 1,
        "preprocess": 1,
        "train": 6,
        "eval": 1,
    }
    (ingest,), (prep,), (ev,) = by_type["ingest"], by_type["preprocess"], by_type["eval"]
    runs = by_type["train"]
    assert {r.config["architecture"] for r in runs} == {"mlp", "logreg"}
    assert {r.group for r in runs} == {"lr-sweep"}
    assert all(r.state == "finished" for r in everything)
    for r in runs:
        assert 0.5 < r.summary["val/acc"] <= 1.0
        assert r.summary["best_val_acc"] >= r.summary["val/acc"]
        losses = r.history(keys=["train/loss"])["train/loss"]
        assert losses.iloc[-20:].mean() < losses.iloc[:20].mean()  # it really learned
        kinds = {m["key"]: m["kind"] for m in r.list_media()}
        assert kinds == {
            "val/confusion": "image",
            "val/predictions": "table",
            "val/scores": "plotly",
            "report": "html",
        }
        assert r.media("val/predictions").get_dataframe().shape == (20, 5)
        assert [a.name for a in r.used_artifacts()] == ["tickets:v0"]
        checkpoints = r.logged_artifacts()  # every 2 epochs of 4 in fast mode
        assert [(a.source_name, a.type) for a in checkpoints] == [
            ("ticket-classifier", "model")
        ] * 2
        assert [a.metadata["epoch"] for a in checkpoints] == [2, 4]
        for a in checkpoints:
            assert a.metadata["learning_rate"] == r.config["learning_rate"]
            assert a.metadata["architecture"] == r.config["architecture"]
            assert 0.5 < a.metadata["val_acc"] <= 1.0 and a.metadata["val_loss"] > 0
        assert checkpoints[-1].metadata["val_acc"] == pytest.approx(r.summary["val/acc"], abs=1e-5)

    # Datasets: raw CSVs -> preprocess -> the clean splits.
    raw = api.artifact("stemma-demo/tickets-raw:latest")
    assert raw.name == "tickets-raw:v0" and raw.type == "dataset"
    assert sorted(e.path for e in raw.files()) == ["features.csv", "labels.csv"]
    assert raw.logged_by().id == ingest.id and [u.id for u in raw.used_by()] == [prep.id]
    clean = api.artifact("stemma-demo/tickets:latest")
    assert clean.logged_by().id == prep.id
    assert {u.id for u in clean.used_by()} == {r.id for r in runs} | {ev.id}
    meta = clean.metadata
    assert meta["train"] + meta["val"] + meta["test"] == raw.metadata["rows"] == 1200

    # Checkpoints: one model artifact; staging = the best final checkpoint; production.
    versions = api.artifact_versions(name="stemma-demo/ticket-classifier")
    assert [v.version for v in versions] == [f"v{i}" for i in range(12)]
    aliases = {v.version: v.aliases for v in versions}
    staging = api.artifact("stemma-demo/ticket-classifier:staging")
    production = api.artifact("stemma-demo/ticket-classifier:production")
    assert staging.version == production.version
    assert aliases == {
        v.version: (["production", "staging"] if v.version == staging.version else [])
        + (["latest"] if v.version == "v11" else [])
        for v in versions
    }
    finals = [v for v in versions if v.metadata["final"]]
    assert staging.metadata["val_acc"] == max(v.metadata["val_acc"] for v in finals)
    assert staging.metadata["final"] and staging.metadata["test_acc"] >= 0.8
    assert [u.id for u in staging.used_by()] == [ev.id]
    protected = CliRunner().invoke(cli, ["artifact", "protect", "stemma-demo"])
    assert protected.exit_code == 0 and "protected aliases: production" in protected.output
    (move,) = api.alias_history("stemma-demo/ticket-classifier", "production")
    assert move["from_version"] is None and f"v{move['to_version']}" == production.version

    # The eval run evaluated staging on the held-out test split and promoted it.
    assert ev.config["model"] == "ticket-classifier:staging"
    assert ev.summary["model_version"] == staging.name and ev.summary["promoted"] is True
    assert ev.summary["test/acc"] == pytest.approx(staging.metadata["test_acc"], abs=1e-5)
    assert 0.8 <= ev.summary["test/acc"] <= 1.0
    assert 0 < ev.summary["test/f1"] <= 1.0
    confusion = ev.media("test/confusion").get_dataframe()
    assert confusion["count"].sum() == meta["test"]

    # Lineage: raw -> preprocess -> clean -> train -> checkpoint -> eval.
    (trainer,) = [r for r in runs if r.id == staging.logged_by().id]
    entity = ingest.entity
    art = f"artifact:{entity}/stemma-demo/"
    run = f"run:{entity}/stemma-demo/"
    edges = {(e["source"], e["target"]) for e in production.lineage(depth=5)["edges"]}
    assert edges == {
        (run + ingest.id, art + "tickets-raw:v0"),
        (art + "tickets-raw:v0", run + prep.id),
        (run + prep.id, art + "tickets:v0"),
        (art + "tickets:v0", run + trainer.id),
        (run + trainer.id, art + staging.name),
        (art + staging.name, run + ev.id),
    }

    # The report: curves by architecture, the top runs, the evaluation.
    (report,) = api.reports("stemma-demo")
    assert report.title == "Ticket classifier: sweep, evaluation, promotion"
    assert [type(b).__name__ for b in report.blocks] == [
        "TableOfContents",
        "H1",
        "PanelGrid",
        "H1",
        "MarkdownBlock",
        "PanelGrid",
        "H1",
        "MarkdownBlock",
        "PanelGrid",
    ]
    assert [b.text for b in report.blocks if type(b).__name__ == "H1"] == [
        "Curves",
        "Top runs",
        "Evaluation",
    ]
    top, evals = report.blocks[5], report.blocks[8]
    assert top.runsets[0].order == "-summary.best_val_acc"
    assert [type(p).__name__ for p in top.panels] == ["RunsTable", "MediaBrowser"]
    assert evals.runsets[0].filters == {"job_type": "eval"}
    assert staging.name in report.blocks[7].text

    assert "logged 9 runs" in out.output and "1 ingest, 1 preprocess, 6 train, 1 eval" in out.output
    assert f"promoted {staging.name} (staging) to production (protected)" in out.output
    assert "tickets-raw:v0" in out.output and "saved the report" in out.output
    assert report.url in out.output
    again = CliRunner().invoke(cli, ["demo", "--fast"])  # once per store unless asked
    assert again.exit_code == 0 and "already has 9 runs" in again.output
    assert len(list(api.runs("stemma-demo"))) == 9


@pytest.mark.embedded_only  # it starts its own server
def test_login_stores_the_server_with_private_permissions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os
    import stat

    from stemma.backend import reset_backends
    from stemma.settings import config_path
    from tests.fixtures.accounts import make_user, open_store
    from tests.fixtures.server import ServerProcess

    db = os.environ.get("STEMMA_DATABASE_URL")
    store = open_store(tmp_path / "srv", db)
    key = make_user(store, "ada@example.com")["key"]
    store.close()
    with ServerProcess(tmp_path / "srv", database_url=db) as srv:
        wrong = CliRunner().invoke(cli, ["login", "--host", srv.url, key[:-1] + "x"])
        assert wrong.exit_code == 1 and "invalid, revoked or expired API key" in wrong.output
        out = CliRunner().invoke(cli, ["login", "--host", srv.url, key])
        assert out.exit_code == 0, out.output
        assert f"logged in to {srv.url} as ada" in out.output
        path = config_path()
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert key in path.read_text()
        monkeypatch.delenv("STEMMA_DATABASE_URL", raising=False)
        reset_backends()
        from stemma.settings import Settings

        settings = Settings.from_env()
        assert (settings.base_url, settings.api_key) == (srv.url, key)
        run = stemma.init(project="via-login")  # the SDK now talks to the server
        run.log({"x": 1})
        run.finish()
        assert [p["name"] for p in stemma.Api().projects()] == ["via-login"]
    bad = CliRunner().invoke(cli, ["login", "--host", "http://127.0.0.1:9"])
    assert bad.exit_code == 1 and "cannot reach" in bad.output

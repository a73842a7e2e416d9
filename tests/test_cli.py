"""The command line, run in-process through click's runner."""

from __future__ import annotations

import json
from pathlib import Path

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


def test_demo_fast(api: stemma.Api) -> None:
    out = CliRunner().invoke(cli, ["demo", "--fast"])
    assert out.exit_code == 0, out.output
    everything = list(api.runs("stemma-demo"))
    assert sorted(r.job_type for r in everything) == ["preprocess"] + ["train"] * 6
    runs = [r for r in everything if r.job_type == "train"]
    assert {r.config["architecture"] for r in runs} == {"mlp", "logreg"}
    assert {r.group for r in runs} == {"lr-sweep"}
    for r in runs:
        assert r.state == "finished"
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
        assert [a.type for a in r.logged_artifacts()] == ["model"]
    assert "logged 7 runs" in out.output
    (report,) = api.reports("stemma-demo")
    assert report.title == "Learning-rate sweep" and "saved the report" in out.output
    assert [type(b).__name__ for b in report.blocks][:3] == ["TableOfContents", "H1", "PanelGrid"]
    again = CliRunner().invoke(cli, ["demo", "--fast"])  # once per store unless asked
    assert again.exit_code == 0 and "already has 7 runs" in again.output
    assert len(list(api.runs("stemma-demo"))) == 7


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

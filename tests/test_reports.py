"""Reports: the reference's snippet unchanged, revisions, loading back the same objects,
validation (nothing stored when refused), permissions, share links, audit and the CLI."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import stemma
import stemma as wandb
from stemma.cli.main import cli
from stemma.errors import InvalidValueError, NotFound, PermissionDenied, UsageError
from stemma.report import blocks as block_module
from stemma.report.spec import MAX_SPEC_BYTES, PANEL_FIELDS, validate_spec


def _log_runs(project: str = "text-classifier", n: int = 3) -> None:
    for i in range(n):
        run = stemma.init(project=project, config={"learning_rate": [1e-3, 1e-4][i % 2]})
        for step in range(4):
            run.log({"train/loss": 1.0 / (step + 1 + i), "val/loss": 2.0 / (step + 1 + i)})
        run.finish()


def _every_block() -> list[Any]:
    r = stemma.report
    return [
        r.H1("Results"),
        r.TableOfContents(),
        r.H2("Loss"),
        r.P("Plain text <b>not bold</b>"),
        r.MarkdownBlock("**bold** and a [link](https://example.com)"),
        r.PanelGrid(
            runsets=[
                r.Runset(filters={"state": "finished"}, name="Finished"),
                r.Runset(project="other", entity="someone", order="-summary.val/acc"),
            ],
            panels=[
                r.LinePlot(
                    x="_step",
                    y="val/loss",
                    title="Loss",
                    groupby="config.learning_rate",
                    smoothing=0.5,
                    log_y=True,
                    max_runs=100,
                    range_y=[0, None],
                ),
                r.BarPlot(metrics=["val/acc"], groupby="tags"),
                r.ScalarChart("val/acc", groupby="job_type"),
                r.ScatterPlot("config.learning_rate", "val/acc"),
                r.ParallelCoordinatesPlot(["config.learning_rate", "config.batch_size", "val/acc"]),
                r.RunComparer(),
                r.MediaBrowser(["val/confusion"]),
                r.RunsTable(columns=["name", "config.learning_rate", "summary.val/acc"]),
                r.RunsTable(),
            ],
        ),
        r.PanelGrid(),  # no runsets: the report's project
    ]


def _every_block_specs() -> list[dict[str, Any]]:
    return [b.to_spec() for b in _every_block()]


def test_the_reference_snippet_runs_unchanged(capsys: pytest.CaptureFixture[str]) -> None:
    _log_runs()
    api = wandb.Api()
    runs = api.runs("username/text-classifier", filters={"state": "finished"})

    # Create a report
    report = wandb.Report(
        project="text-classifier",
        title="BERT Finetuning Results: Week 6",
        description="Comparison of learning rates and batch sizes",
    )

    # Add a panel showing loss curves for all runs
    report.blocks = [
        wandb.report.PanelGrid(
            panels=[
                wandb.report.LinePlot(
                    x="_step",
                    y=["train/loss", "val/loss"],
                    title="Training Loss by Learning Rate",
                    groupby="config.learning_rate",
                )
            ]
        )
    ]

    report.save()
    print(f"Report URL: {report.url}")

    del runs
    entity = api._backend.default_entity()
    assert report.id and report.revision == 1
    base = os.environ.get("STEMMA_BASE_URL") or "http://127.0.0.1:5280"
    assert report.url == f"{base}/p/{entity}/text-classifier/reports/{report.id}"
    assert capsys.readouterr().out == f"Report URL: {report.url}\n"
    loaded = api.report(report.id)
    assert loaded.to_spec() == report.to_spec()
    assert loaded.blocks == report.blocks
    grid = loaded.blocks[0]
    assert isinstance(grid, wandb.report.PanelGrid)
    assert grid.runsets == [
        wandb.report.Runset(project="text-classifier", entity=entity, filters={})
    ]
    assert grid.panels[0] == wandb.report.LinePlot(
        x="_step",
        y=["train/loss", "val/loss"],
        title="Training Loss by Learning Rate",
        groupby="config.learning_rate",
    )
    assert (loaded.title, loaded.description, loaded.url) == (
        report.title,
        report.description,
        report.url,
    )


def test_every_block_type_round_trips(api: stemma.Api) -> None:
    report = stemma.Report(project="me-proj/reports", title="All", blocks=_every_block())
    report.save()
    assert report.entity == "me-proj" and report.project == "reports"
    loaded = api.report(report.id)
    assert loaded.to_spec() == report.to_spec()
    assert loaded.blocks == report.blocks
    spec = loaded.to_spec()
    assert [b["type"] for b in spec["blocks"]] == [
        "h1",
        "toc",
        "h2",
        "p",
        "markdown",
        "panel_grid",
        "panel_grid",
    ]
    grid = spec["blocks"][5]
    assert grid["runsets"][0] == {
        "name": "Finished",
        "entity": "me-proj",
        "project": "reports",
        "filters": {"state": "finished"},
        "order": "-created_at",
    }
    assert grid["runsets"][1]["entity"] == "someone"
    assert grid["panels"][0]["y"] == ["val/loss"]  # one name becomes a list
    assert spec["blocks"][6]["runsets"] == [
        {
            "name": "Run set",
            "entity": "me-proj",
            "project": "reports",
            "filters": {},
            "order": "-created_at",
        }
    ]
    # A spec is a fixed point of validation, and from_spec gives the same objects.
    assert validate_spec(spec) == spec
    again = stemma.Report.from_spec(spec)
    assert again.blocks == loaded.blocks and again.to_spec() == spec
    assert json.loads(json.dumps(spec)) == spec


def test_saving_again_makes_revisions_and_earlier_ones_stay_readable(api: stemma.Api) -> None:
    report = stemma.Report(project="revs", title="First", blocks=[stemma.report.H1("one")])
    report.save()
    first_spec = report.to_spec()
    report.title = "Second"
    report.blocks.append(stemma.report.PanelGrid(panels=[stemma.report.BarPlot(metrics="val/acc")]))
    report.save()
    assert report.revision == 2 and report.revisions == 2
    other = stemma.Report(project="revs", title="Other").save()

    old = api.report(report.id, revision=1)
    assert old.revision == 1 and old.title == "First"
    assert old.to_spec() == first_spec
    assert old.blocks == [stemma.report.H1("one")]
    new = api.report(report.id)
    assert new.revision == 2 and new.title == "Second" and len(new.blocks) == 2
    assert new.to_spec() == report.to_spec()
    assert api.report(report.url).id == report.id  # a URL works as the id
    with pytest.raises(NotFound, match="has no revision 3"):
        api.report(report.id, revision=3)
    with pytest.raises(UsageError, match="revision"):
        api._backend.get_report(report.id, 0)

    history = report.list_revisions()
    assert [(h["revision"], h["title"]) for h in history] == [(1, "First"), (2, "Second")]
    assert history[0]["saved_at"] <= history[1]["saved_at"]

    listed = api.reports("revs")
    assert [r.id for r in listed] == [other.id, report.id]  # most recently saved first
    assert listed[1].title == "Second" and listed[1].revision == 2
    assert listed[1].blocks == report.blocks  # loaded on first use
    assert listed[1].to_spec() == report.to_spec()
    assert api.reports("nothing-here") == []
    stored = api._backend.get_report(report.id)
    assert stored["created_at"] <= stored["updated_at"]
    assert stored["created_by"] == stored["updated_by"]

    # Editing a loaded report and saving it continues the same report.
    new.blocks = new.blocks[:1]
    new.save()
    assert new.id == report.id and new.revision == 3
    assert api.report(report.id, revision=2).to_spec() == report.to_spec()

    other.delete()
    assert [r.id for r in api.reports("revs")] == [report.id]
    with pytest.raises(NotFound):
        api.report(other.id if other.id else "gone")


@pytest.mark.parametrize(
    ("blocks", "message"),
    [
        ([{"type": "chart"}], r"block 0: unknown block type 'chart' \(use one of h1, h2"),
        (
            [stemma.report.LinePlot(y="loss")],
            r"block 0: a line_plot panel is not a block: put panels in a panel_grid",
        ),
        (
            [stemma.report.H1("ok"), {"type": "h1", "txt": "typo"}],
            r"block 1 \(h1\): unknown field 'txt' \(h1 blocks have: text\)",
        ),
        (
            [stemma.report.PanelGrid(panels=[{"type": "line_plot", "y": ["a"], "colour": 1}])],
            r"block 0 \(panel_grid\), panel 0 \(line_plot\): unknown field 'colour'",
        ),
        (
            [stemma.report.PanelGrid(panels=[{"type": "pie"}])],
            r"block 0 \(panel_grid\), panel 0: unknown panel type 'pie'",
        ),
        (
            [stemma.report.P("x"), stemma.report.PanelGrid(panels=[stemma.report.LinePlot()])],
            r"block 1 \(panel_grid\), panel 0 \(line_plot\): y must be a non-empty list of "
            r"metric names, got None",
        ),
        (
            [stemma.report.PanelGrid(panels=[stemma.report.LinePlot(y=5)])],  # type: ignore[arg-type]
            r"panel 0 \(line_plot\): y must be a non-empty list of metric names, got 5",
        ),
        (
            [stemma.report.PanelGrid(panels=[stemma.report.LinePlot(y=[])])],
            r"y must be a non-empty list of metric names, got \[\]",
        ),
        (
            [stemma.report.PanelGrid(panels=[stemma.report.LinePlot(y=["ok", "config."])])],
            r"y\[1\] must be a metric name, got 'config.' \('config.' must be followed by a key",
        ),
        (
            [stemma.report.PanelGrid(panels=[stemma.report.ScalarChart(metric="")])],
            r"panel 0 \(scalar_chart\): metric must be a metric name, got '' \(empty\)",
        ),
        (
            [stemma.report.PanelGrid(panels=[stemma.report.LinePlot(y="a", log_x="yes")])],  # type: ignore[arg-type]
            r"log_x must be true or false, got 'yes'",
        ),
        (
            [stemma.report.PanelGrid(panels=[stemma.report.LinePlot(y="a", smoothing=2)])],
            r"smoothing must be a number from 0 to 1, got 2",
        ),
        (
            [stemma.report.PanelGrid(panels=[stemma.report.LinePlot(y="a", max_runs=0)])],
            r"max_runs must be a whole number from 1 to 1000, got 0",
        ),
        (
            [stemma.report.PanelGrid(panels=[stemma.report.LinePlot(y="a", range_x=[2, 1])])],
            r"range_x must be null or \[min, max\] with min < max",
        ),
        (
            [stemma.report.PanelGrid(panels=[stemma.report.BarPlot("a", groupby="colour")])],
            r"groupby cannot be 'colour': use config.<key> or one of group, job_type",
        ),
        (
            [stemma.report.PanelGrid(runsets=[stemma.report.Runset(filters={"$bad": 1})])],
            r"block 0 \(panel_grid\), runset 0: filters: unknown top-level filter operator",
        ),
        (
            [stemma.report.PanelGrid(runsets=[stemma.report.Runset(project="bad name")])],
            r"runset 0: invalid project name 'bad name'",
        ),
        (
            [stemma.report.PanelGrid(runsets=[stemma.report.Runset(order="-colour")])],
            r"runset 0: order: cannot order runs by 'colour'",
        ),
        ([stemma.report.H1(5)], r"block 0 \(h1\): text must be a string, got 5"),  # type: ignore[arg-type]
        ("not a list", r"blocks must be a list of blocks, got 'not a list'"),
        ([7], r"block 0: block must be an object with a 'type', got 7"),
        (
            [stemma.report.MarkdownBlock("x" * 150_000)] * 8,
            r"the report spec is 1,200,\d+ bytes of JSON; at most 1,048,576 \(1 MiB\)",
        ),
    ],
)
def test_bad_reports_are_refused_and_nothing_is_stored(
    api: stemma.Api, blocks: Any, message: str
) -> None:
    report = stemma.Report(project="bad", title="Bad")
    report.blocks = blocks
    with pytest.raises(InvalidValueError, match=message):
        report.save()
    assert report.id is None
    # The store checks on its own too (what the REST API and the web UI go through).
    spec = {**report.to_spec(), "entity": api._backend.default_entity()}
    with pytest.raises(InvalidValueError, match=message):
        api._backend.save_report(spec["entity"], "bad", spec)
    assert api.reports("bad") == []
    # ... and a refused revision leaves the report as it was.
    good = stemma.Report(project="bad", title="Good", blocks=[stemma.report.P("fine")]).save()
    good.blocks = blocks
    with pytest.raises(InvalidValueError, match=message):
        good.save()
    assert good.revision == 1
    with pytest.raises(InvalidValueError, match=message):
        api._backend.save_report(spec["entity"], "bad", spec, good.id)
    stored = api.report(good.id)
    assert stored.revision == 1 and stored.blocks == [stemma.report.P("fine")]


def test_bad_report_fields_and_specs(api: stemma.Api) -> None:
    entity = api._backend.default_entity()
    store = api._backend
    for spec, message in [
        ({"title": ""}, "title must be a non-empty string"),
        ({"title": "x" * 300}, "title must be a non-empty string of at most 256"),
        ({"description": 5}, "description must be a string"),
        ({"version": 2}, "unsupported spec version 2"),
        ({"colour": "red"}, "unknown report field 'colour'"),
        ({"entity": "someone-else"}, "the spec's entity is 'someone-else' but the report"),
        ({"blocks": [{"type": "h1", "text": "t"}] * 501}, "blocks has 501 blocks; at most 500"),
        ({"blocks": [{"type": "p", "text": "a\x00b"}]}, "text may not contain NUL characters"),
        ({"title": "bad \ud800 text"}, "text must be valid Unicode"),
    ]:
        with pytest.raises(InvalidValueError, match=message):
            store.save_report(entity, "specs", spec)
    assert store.list_reports(entity, "specs") == []
    with pytest.raises(UsageError, match="a report needs a project"):
        stemma.Report(project="")
    with pytest.raises(InvalidValueError, match="a report spec needs its project"):
        stemma.Report.from_spec({"entity": "e", "blocks": []})
    error = None
    try:
        validate_spec(
            {"entity": "e", "project": "p", "blocks": [{"type": "panel_grid", "panels": [{}]}]}
        )
    except InvalidValueError as exc:
        error = exc
    assert error is not None
    assert error.context == {"block": 0, "panel": 0, "field": "type"}
    # Stored specs come back with their keys in the documented order (PostgreSQL's
    # JSON has its own), so `stemma report show` prints them readably.
    saved = store.save_report(entity, "specs", {"blocks": _every_block_specs()})
    assert list(saved["spec"]) == ["version", "entity", "project", "title", "description", "blocks"]
    grid = saved["spec"]["blocks"][5]
    assert list(grid) == ["type", "runsets", "panels"]
    assert list(grid["runsets"][0]) == ["name", "entity", "project", "filters", "order"]
    assert list(grid["panels"][0]) == ["type", *PANEL_FIELDS["line_plot"]]
    store.delete_report(saved["id"])
    minimal = store.save_report(entity, "specs", {})
    assert minimal["title"] == "Untitled Report" and minimal["spec"]["blocks"] == []
    assert minimal["spec"]["entity"] == entity and minimal["spec"]["project"] == "specs"


def test_the_python_classes_have_the_spec_fields() -> None:
    for kind, fields in PANEL_FIELDS.items():
        cls = block_module.PANEL_CLASSES[kind]
        assert {f.name for f in dataclasses.fields(cls)} == set(fields), kind
    wide = stemma.report.MarkdownBlock("é" * 110_000).to_spec()  # 220,000 bytes of UTF-8
    with pytest.raises(InvalidValueError, match="1 MiB"):  # bytes, not characters
        validate_spec({"entity": "e", "project": "p", "blocks": [wide] * 5})
    assert MAX_SPEC_BYTES > 5 * 110_000


def test_concurrent_saves_number_revisions_densely(api: stemma.Api) -> None:
    report = stemma.Report(project="busy", title="Busy").save()
    errors: list[BaseException] = []

    def saver(n: int) -> None:
        try:
            mine = api.report(report.id)
            for i in range(5):
                mine.title = f"saver {n} save {i}"
                mine.save()
        except BaseException as exc:  # collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=saver, args=(n,)) for n in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert [r["revision"] for r in report.list_revisions()] == list(range(1, 17))
    assert api.report(report.id).revision == 16


# ------------------------------------------------------------------ access and sharing


@pytest.fixture
def team(store_dir: Path) -> dict[str, Any]:
    """Team acme (ann admin, max member, vic viewer), an outsider, and a run of acme/vision
    and one of acme/secret."""
    from tests.fixtures.accounts import as_user, make_user, open_store
    from tests.test_access import log_run

    store = open_store(store_dir, os.environ.get("STEMMA_DATABASE_URL"))
    for n in ("ann", "max", "vic", "out"):
        make_user(store, f"{n}@example.com")
    ann = as_user(store, "ann")
    ann.create_team("acme")
    ann.add_member("acme", "max@example.com", "member")
    ann.add_member("acme", "vic@example.com", "viewer")
    stores = {n: as_user(store, n) for n in ("ann", "max", "vic", "out")}
    log_run(stores["max"], "acme/vision/r1")
    log_run(stores["max"], "acme/secret/s1")
    yield {"store": store, "as": stores}
    store.close()


def _spec(title: str = "Vision") -> dict[str, Any]:
    return {
        "title": title,
        "blocks": [{"type": "panel_grid", "panels": [{"type": "line_plot", "y": "loss"}]}],
    }


@pytest.mark.embedded_only
def test_readers_read_members_write_outsiders_see_nothing(team: dict[str, Any]) -> None:
    s = team["as"]
    made = s["max"].save_report("acme", "vision", _spec())
    rid = made["id"]
    assert made["created_by"] == "max" and made["revision"] == 1
    assert s["vic"].get_report(rid)["spec"] == made["spec"]
    assert [r["id"] for r in s["vic"].list_reports("acme", "vision")] == [rid]
    assert s["vic"].report_revisions(rid)[0]["saved_by"] == "max"
    assert s["vic"].report_sharing_allowed("acme", "vision") is True
    with pytest.raises(PermissionDenied, match=r"vic \(viewer of acme\) may not save report"):
        s["vic"].save_report("acme", "vision", _spec("mine"), rid)
    with pytest.raises(PermissionDenied, match="may not save reports in acme/vision"):
        s["vic"].save_report("acme", "vision", _spec())
    with pytest.raises(PermissionDenied):
        s["vic"].delete_report(rid)
    with pytest.raises(PermissionDenied):
        s["vic"].set_report_share(rid, True)
    for call in (
        lambda: s["out"].get_report(rid),
        lambda: s["out"].report_revisions(rid),
        lambda: s["out"].save_report("acme", "vision", _spec(), rid),
        lambda: s["out"].delete_report(rid),
        lambda: s["out"].set_report_share(rid, True),
        lambda: s["out"].list_reports("acme", "vision"),
        lambda: s["out"].save_report("acme", "vision", _spec()),
    ):
        with pytest.raises(NotFound):
            call()
    with pytest.raises(NotFound, match=r"no report 'nope12' \(or no access to it\)"):
        s["max"].get_report("nope12")
    with pytest.raises(NotFound):
        s["max"].get_report("../../etc")
    # A report stays in its project.
    with pytest.raises(UsageError, match="belongs to acme/vision, not acme/secret"):
        s["max"].save_report("acme", "secret", _spec(), rid)
    # Members save revisions and delete; only admins switch share links off.
    assert s["max"].save_report("acme", "vision", _spec("v2"), rid)["revision"] == 2
    with pytest.raises(PermissionDenied, match="needs a team admin"):
        s["max"].set_report_sharing_allowed("acme", "vision", False)
    # A private project's reports are as private as its runs.
    s["ann"].set_project_visibility("acme", "secret", "private")
    hidden = s["ann"].save_report("acme", "secret", _spec())
    with pytest.raises(NotFound):
        s["vic"].get_report(hidden["id"])
    assert s["max"].list_reports("acme", "vision")[0]["title"] == "v2"
    s["max"].delete_report(rid)
    with pytest.raises(NotFound):
        s["vic"].get_report(rid)


@pytest.mark.embedded_only
def test_share_links(team: dict[str, Any]) -> None:
    from sqlalchemy import select

    from stemma.storage.database import read_tx
    from stemma.storage.models import reports

    store, s = team["store"], team["as"]
    rid = s["max"].save_report("acme", "vision", _spec())["id"]
    other = s["max"].save_report("acme", "vision", _spec("Other"))["id"]
    assert s["vic"].get_report(rid)["share"] == {
        "enabled": False,
        "token": None,
        "allowed": True,
        "enabled_by": None,
        "enabled_at": None,
    }
    on = s["max"].set_report_share(rid, True)
    token = on["share"]["token"]
    assert on["share"]["enabled"] and on["share"]["enabled_by"] == "max"
    assert len(token) >= 40
    # Stored hashed: the token is in no column, and no later answer shows it.
    with read_tx(store.engine) as conn:
        row = conn.execute(select(reports).where(reports.c.report_id == rid)).one()
    assert row.share_token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in repr(tuple(row))
    assert s["max"].get_report(rid)["share"]["token"] is None
    assert s["max"].get_report(rid)["share"]["enabled"] is True

    # The token gives the report and a principal that reads only its project.
    record, who = store.report_by_share_token(token)
    assert record["id"] == rid and record["spec"]["title"] == "Vision"
    assert record["share"]["token"] is None
    reader = store.as_principal(who)
    assert [r.run_id for r in reader.list_runs("acme", "vision")] == ["r1"]
    assert reader.get_report(rid)["id"] == rid
    assert [r["id"] for r in reader.list_reports("acme", "vision")] == [rid]
    for call in (
        lambda: reader.list_runs("acme", "secret"),
        lambda: reader.get_report(other),
        lambda: reader.list_reports("acme", "secret"),
    ):
        with pytest.raises(NotFound):
            call()
    assert reader.list_projects() == [("acme", "vision", 1)]
    with pytest.raises(PermissionDenied):
        reader.save_report("acme", "vision", _spec("hijack"), rid)
    with pytest.raises(PermissionDenied):
        reader.set_report_share(rid, False)

    # Enabling again makes a new token (the old one dies); disabling revokes.
    again = s["ann"].set_report_share(rid, True)["share"]["token"]
    assert again != token
    with pytest.raises(NotFound, match="no such share link"):
        store.report_by_share_token(token)
    assert store.report_by_share_token(again)[0]["id"] == rid
    s["max"].set_report_share(rid, False)
    with pytest.raises(NotFound):
        store.report_by_share_token(again)
    for bad in ("", "x", "y" * 500):
        with pytest.raises(NotFound):
            store.report_by_share_token(bad)

    # Admins switch links off for the project: every link dies, none can be made, and
    # allowing again revives none.
    live = s["max"].set_report_share(rid, True)["share"]["token"]
    s["ann"].set_report_sharing_allowed("acme", "vision", False)
    assert s["vic"].report_sharing_allowed("acme", "vision") is False
    assert s["vic"].get_report(rid)["share"]["allowed"] is False
    with pytest.raises(NotFound):
        store.report_by_share_token(live)
    with pytest.raises(PermissionDenied, match="have turned share links off"):
        s["max"].set_report_share(rid, True)
    s["max"].set_report_share(rid, False)  # revoking is always allowed
    s["ann"].set_report_sharing_allowed("acme", "vision", True)
    with pytest.raises(NotFound):
        store.report_by_share_token(live)
    assert s["max"].get_report(rid)["share"]["enabled"] is False
    assert s["ann"].get_protected_aliases("acme", "vision") == ["production"]


@pytest.mark.embedded_only
def test_report_changes_are_audited(team: dict[str, Any]) -> None:
    s = team["as"]
    rid = s["max"].save_report("acme", "vision", _spec())["id"]
    s["max"].save_report("acme", "vision", _spec("v2"), rid)
    s["max"].set_report_share(rid, True)
    s["ann"].set_report_sharing_allowed("acme", "vision", False)
    s["max"].delete_report(rid)
    entries = s["ann"].audit_log(entity="acme", limit=20)
    got = [
        (e["action"], e["actor"], e["target"], e["details"])
        for e in reversed(entries)
        if e["action"].startswith(("report.", "project.report"))
    ]
    target = f"acme/vision/reports/{rid}"
    assert got == [
        ("report.save", "max", target, {"revision": 1, "title": "Vision"}),
        ("report.save", "max", target, {"revision": 2, "title": "v2"}),
        ("report.share", "max", target, {"enabled": True}),
        ("project.report_sharing", "ann", "acme/vision", {"allowed": False, "revoked": 1}),
        ("report.delete", "max", target, {"title": "v2", "revisions": 2}),
    ]
    assert team["store"].audit_verify()["ok"]


@pytest.mark.sqlite_only
def test_rules_hold_over_http(team: dict[str, Any], store_dir: Path, tmp_path: Path) -> None:
    """The same answers from a server with accounts, through the SDK's HTTP backend."""
    from stemma.backend.http import HttpBackend
    from stemma.settings import Settings
    from tests.fixtures.server import ServerProcess

    s = team["as"]
    rid = s["max"].save_report("acme", "vision", _spec())["id"]
    keys = {n: team["store"].create_api_key(n, name="t")[1] for n in ("max", "vic", "out")}
    with ServerProcess(store_dir) as server:

        def client(name: str) -> HttpBackend:
            return HttpBackend(Settings(base_url=server.url, api_key=keys[name], dir=tmp_path))

        vic, out, max_ = client("vic"), client("out"), client("max")
        assert vic.get_report(rid)["spec"]["title"] == "Vision"
        with pytest.raises(PermissionDenied):
            vic.save_report("acme", "vision", _spec("no"), rid)
        with pytest.raises(NotFound):
            out.get_report(rid)
        with pytest.raises(InvalidValueError, match=r"block 0: unknown block type 'nope'"):
            max_.save_report("acme", "vision", {"blocks": [{"type": "nope"}]}, rid)
        with pytest.raises(UsageError, match="revision"):
            vic.get_report(rid, 0)
        token = max_.set_report_share(rid, True)["share"]["token"]
        assert team["store"].report_by_share_token(token)[0]["id"] == rid
        report = stemma.Api(overrides={"base_url": server.url, "api_key": keys["max"]}).report(rid)
        assert report.url == f"{server.url}/p/acme/vision/reports/{rid}"
        report.title = "over http"
        assert report.save().revision == 2
        for c in (vic, out, max_):
            c.close()


@pytest.mark.embedded_only
def test_migration_keeps_project_settings(new_database: Any) -> None:
    """A store at 0006 with project settings upgrades: share links allowed by default."""
    from sqlalchemy import insert, select

    from stemma.service.runs import utcnow
    from stemma.storage.database import create_store_engine, upgrade, write_tx
    from stemma.storage.models import entities, project_settings, projects

    engine = create_store_engine(new_database("old"))
    upgrade(engine, "0006")
    with write_tx(engine) as conn:
        conn.execute(insert(entities).values(id=1, name="e", kind="user", created_at=utcnow()))
        conn.execute(insert(projects).values(id=1, entity_id=1, name="p", created_at=utcnow()))
        conn.execute(insert(project_settings).values(project_id=1, protected_aliases=["gold"]))
    upgrade(engine)
    with engine.connect() as conn:
        row = conn.execute(select(project_settings)).one()
    assert row.report_sharing is True and row.protected_aliases == ["gold"]
    engine.dispose()


# ------------------------------------------------------------------ command line


def test_report_commands(api: stemma.Api) -> None:
    runner = CliRunner()
    report = stemma.Report(project="cli", title="CLI report", blocks=_every_block()[:3]).save()
    first = report.to_spec()
    report.title = "CLI report v2"
    report.save()

    out = runner.invoke(cli, ["report", "ls", "cli"])
    assert out.exit_code == 0, out.output
    assert report.id in out.output and "CLI report v2" in out.output
    lines = runner.invoke(cli, ["report", "ls", "cli", "--json"]).output.splitlines()
    assert json.loads(lines[0])["id"] == report.id
    empty = runner.invoke(cli, ["report", "ls", "nothing"])
    assert "has no reports" in empty.output

    shown = runner.invoke(cli, ["report", "show", report.id, "--revision", "1"])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output) == first
    assert json.loads(runner.invoke(cli, ["report", "show", report.id]).output)["title"] == (
        "CLI report v2"
    )
    history = runner.invoke(cli, ["report", "history", report.id])
    assert "CLI report v2" in history.output and "CLI report" in history.output
    missing = runner.invoke(cli, ["report", "show", "nope42"])
    assert missing.exit_code == 1 and "no report 'nope42'" in missing.output

    shared = runner.invoke(cli, ["report", "share", report.id, "--enable"])
    assert shared.exit_code == 0, shared.output
    assert "/share/r/" in shared.output
    assert api._backend.get_report(report.id)["share"]["enabled"] is True
    off = runner.invoke(cli, ["report", "share", report.id, "--disable"])
    assert "revoked" in off.output
    assert api._backend.get_report(report.id)["share"]["enabled"] is False
    assert "allowed" in runner.invoke(cli, ["report", "sharing", "cli"]).output
    forbid = runner.invoke(cli, ["report", "sharing", "cli", "--forbid"])
    assert "forbidden" in forbid.output
    refused = runner.invoke(cli, ["report", "share", report.id, "--enable"])
    assert refused.exit_code == 1 and "turned share links off" in refused.output
    gone = runner.invoke(cli, ["report", "rm", report.id])
    assert gone.exit_code == 0 and api.reports("cli") == []


@pytest.mark.server_only
def test_the_server_checks_specs_itself(api: stemma.Api) -> None:
    """The REST routes validate too (the SDK checks first, but any client may call)."""
    import httpx

    base = f"{os.environ['STEMMA_BASE_URL']}/api/v1"
    entity = api._backend.default_entity()
    bad = {"spec": {"blocks": [{"type": "panel_grid", "panels": [{"type": "line_plot"}]}]}}
    resp = httpx.post(f"{base}/projects/{entity}/rest/reports", json=bad)
    assert resp.status_code == 400
    assert resp.json() == {
        "code": "invalid_value",
        "message": "block 0 (panel_grid), panel 0 (line_plot): y is required",
        "context": {"block": 0, "panel": 0, "field": "y"},
    }
    made = httpx.post(f"{base}/projects/{entity}/rest/reports", json={"spec": {}})
    assert made.status_code == 201
    rid = made.json()["id"]
    elsewhere = {"spec": {"entity": entity, "project": "other"}}
    moved = httpx.put(f"{base}/reports/{rid}", json=elsewhere)
    assert moved.status_code == 400 and "saved to project 'rest'" in moved.json()["message"]
    assert (
        httpx.put(f"{base}/reports/{rid}", json={"spec": {"title": "t2"}}).json()["revision"] == 2
    )
    assert httpx.get(f"{base}/reports/{rid}", params={"revision": 1}).json()["revision"] == 1
    assert httpx.get(f"{base}/reports/nope123").status_code == 404
    assert httpx.get(f"{base}/projects/{entity}/rest/reports").json()["reports"][0]["id"] == rid
    assert api.reports("rest")[0].title == "t2"

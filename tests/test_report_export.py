"""``stemma report export``: one self-contained HTML file that opens offline and draws its
charts, and Markdown with the top runs, on every store (SQLite, PostgreSQL, a server).

The HTML is opened from disk in headless Chromium with every request that is not
``file:`` or ``data:`` refused (and counted): the charts must draw from the data inside
the file (``data-points`` and coloured canvas pixels), the images must decode from their
``data:`` URIs, Plotly must draw from its inline copy, logged HTML must stay a sandboxed
frame that runs no script, and user text must stay text.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
from click.testing import CliRunner, Result

import stemma
from stemma.cli.main import cli
from tests.fixtures.server import REPO

PROJECT = "exp"
OPTIMIZERS = ("adam", "adamw", "sgd")
XSS = "<img src=x onerror=window.__xss=1><script>window.__xss=1</script>"
SCREENSHOTS = REPO / "test-output" / "screenshots"
# What a sandboxed frame says when the logged page tries to run its script: expected.
SANDBOX_MESSAGE = "because the document's frame is sandboxed"


def export(*args: str) -> Result:
    return CliRunner().invoke(cli, ["report", "export", *args])


def seed(runs: int = 6, steps: int = 30) -> list[dict[str, Any]]:
    """``runs`` runs of PROJECT: a loss history, an optimizer (3 values), an image each;
    the first also logs HTML with a script and a Plotly figure."""
    logged = []
    rng = np.random.default_rng(5)
    for i in range(runs):
        config = {"optimizer": OPTIMIZERS[i % 3], "lr": 10 ** -(i + 1), "note": f"n{i}|x\ny"}
        run = stemma.init(project=PROJECT, name=f"r{i}", config=config)
        for s in range(steps):
            loss = 2.0 / (s + 1 + i)
            run.log({"loss": loss, "val_loss": loss * 1.2}, step=s)
        pixels = rng.integers(0, 256, size=(24, 32, 3), dtype=np.uint8)
        media: dict[str, Any] = {"samples": stemma.Image(pixels, caption=f"sample {i}")}
        if i == 0:
            media["page"] = stemma.Html(f"<p id=hello>hello</p>{XSS}")
            fig = go.Figure(data=go.Heatmap(z=[[50, 10], [5, 35]], colorscale="Blues"))
            media["confusion"] = stemma.Plotly(fig)
        run.log(media, step=steps)
        acc = 0.5 + 0.07 * ((i * 5) % runs)  # distinct, not in run order
        run.summary["acc"] = acc
        run.finish()
        logged.append({"name": f"r{i}", "acc": acc, **config})
    return logged


def make_report(title: str = f"Export {XSS}") -> stemma.Report:
    report = stemma.Report(project=PROJECT, title=title, description="Weekly | numbers")
    report.blocks = [
        stemma.report.H1("Loss curves"),
        stemma.report.MarkdownBlock(f"**Bold** text and raw HTML {XSS} stays text."),
        stemma.report.TableOfContents(),
        stemma.report.PanelGrid(
            panels=[
                stemma.report.LinePlot(y="loss", groupby="config.optimizer", title="By optimizer"),
                stemma.report.LinePlot(y=["loss", "val_loss"], title="Every run"),
                stemma.report.MediaBrowser(["samples", "page", "confusion"], title="Media"),
                stemma.report.RunsTable(columns=["name", "config.note", "acc"]),
            ]
        ),
    ]
    return report.save()


# ------------------------------------------------------------------ the browser


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    from tests.fixtures.browser import launch

    with sync_playwright() as pw:
        browser = launch(pw)
        yield browser
        browser.close()


def open_offline(chromium: Any, path: Path) -> tuple[Any, Any, list[str], list[str]]:
    """(context, page, refused requests, page errors) of ``path`` opened from disk with
    every request that is not file: or data: refused."""
    context = chromium.new_context(viewport={"width": 1400, "height": 900})
    context.set_default_timeout(20_000)
    refused: list[str] = []
    errors: list[str] = []

    def route(r: Any) -> None:
        if r.request.url.startswith(("file:", "data:")):
            r.continue_()
        else:
            refused.append(r.request.url)
            r.abort()

    context.route("**/*", route)
    page = context.new_page()
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on(
        "console",
        lambda m: (
            errors.append(m.text) if m.type == "error" and SANDBOX_MESSAGE not in m.text else None
        ),
    )
    page.goto(path.as_uri())
    return context, page, refused, errors


COLOURED_PIXELS = """(fig) => {
  const canvas = fig.querySelector("canvas");
  const d = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  let n = 0;
  for (let i = 0; i < d.length; i += 4) {
    const spread = Math.max(d[i], d[i + 1], d[i + 2]) - Math.min(d[i], d[i + 1], d[i + 2]);
    if (d[i + 3] > 0 && spread > 60) n++;  // a series' colour, not the grey grid or text
  }
  return n;
}"""


def test_export_html_opens_offline_and_draws(chromium: Any, tmp_path: Path) -> None:
    seed()
    report = make_report()
    target = tmp_path / "report.html"
    out = export(report.id or "", "--format", "html", "--output", str(target))
    assert out.exit_code == 0, out.output
    assert f"wrote {target}" in out.output
    html = target.read_text()
    # Self-contained: no script, style or media is loaded from anywhere.
    assert not re.search(r"<(script|img|iframe|link)[^>]+(src|href)=\"(?!data:)", html)
    assert len(html) > 4_000_000  # a Plotly figure: Plotly's library is inline

    context, page, refused, errors = open_offline(chromium, target)
    try:
        page.wait_for_selector("html[data-report-drawn='1']")
        assert page.title().startswith("Export <img src=x")
        assert page.inner_text("h1#report-title") == f"Export {XSS}"
        assert "raw HTML <img src=x" in page.inner_text(".report-md")
        assert page.inner_text(".report-md strong") == "Bold"
        assert page.inner_text(".report-toc").strip().endswith("Loss curves")

        # The grouped line plot: one mean line and band per optimizer, with data.
        grouped = page.locator("figure.report-panel[data-kind='line']").nth(0)
        assert grouped.get_attribute("data-drawn") == "1"
        assert grouped.get_attribute("data-groups") == "3"
        assert grouped.get_attribute("data-series") == "3"
        assert grouped.get_attribute("data-bands") == "3"
        assert int(grouped.get_attribute("data-points") or 0) == 3 * 30
        every = page.locator("figure.report-panel[data-kind='line']").nth(1)
        assert every.get_attribute("data-series") == str(6 * 2)
        assert int(every.get_attribute("data-points") or 0) == 6 * 2 * 30
        for fig in (grouped, every):
            assert fig.evaluate(COLOURED_PIXELS) > 500

        # Images decode from data: URIs; logged HTML is framed without scripts.
        media = page.locator("figure.report-panel[data-kind='media']")
        media.scroll_into_view_if_needed()
        page.wait_for_function(
            """() => [...document.querySelectorAll('.report-media img')]
                .every(i => i.complete && i.naturalWidth > 0)"""
        )
        sizes = page.eval_on_selector_all(
            ".report-media img", "els => els.map(i => [i.naturalWidth, i.naturalHeight])"
        )
        assert sizes == [[32, 24]] * 6
        frame = page.locator("iframe.html-media")
        assert frame.get_attribute("sandbox") == ""
        assert (frame.get_attribute("src") or "").startswith("data:text/html")
        assert page.frame_locator("iframe.html-media").locator("#hello").inner_text() == "hello"
        page.wait_for_selector(".plotly-media .main-svg")  # Plotly, from the file itself

        table = page.locator("figure.report-panel[data-kind='table'] tbody tr")
        assert table.count() == 6
        assert "n0|x" in page.inner_text("figure.report-panel[data-kind='table']")
        page.wait_for_timeout(200)  # anything late (a frame's script) would show now
        assert page.evaluate("window.__xss") is None
        assert refused == [] and errors == []
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "report-export.png"), full_page=True)
    finally:
        context.close()


def test_export_html_dark_and_no_media(chromium: Any, tmp_path: Path) -> None:
    """A report without Plotly media leaves Plotly out; it follows the dark setting."""
    run = stemma.init(project=PROJECT, name="only")
    for s in range(5):
        run.log({"loss": 1 / (s + 1)})
    run.finish()
    report = stemma.Report(project=PROJECT, title="Small")
    report.blocks = [stemma.report.PanelGrid(panels=[stemma.report.LinePlot(y="loss")])]
    report.save()
    target = tmp_path / "small.html"
    assert export(report.id or "", "--format", "html", "-o", str(target)).exit_code == 0
    html = target.read_text()
    assert len(html) < 1_000_000  # Plotly's library (4.8 MB) is left out
    context = chromium.new_context(color_scheme="dark")
    try:
        page = context.new_page()
        page.goto(target.as_uri())
        page.wait_for_selector("html[data-report-drawn='1']")
        fig = page.locator("figure.report-panel")
        assert int(fig.get_attribute("data-points") or 0) == 5
        background = page.evaluate("getComputedStyle(document.documentElement).backgroundColor")
        assert background == "rgb(20, 23, 28)"
    finally:
        context.close()


def test_export_markdown_top_runs(tmp_path: Path) -> None:
    logged = seed(runs=6, steps=3)
    report = make_report(title="Weekly | report\nsix runs")
    out = export(report.id or "", "--format", "md")
    assert out.exit_code == 0, out.output
    text = out.output
    assert text.startswith("# Weekly \\| report six runs\n\nWeekly | numbers\n\n## Loss curves\n")
    assert "**Bold** text" in text and "- Loss curves" in text
    # By default the first panel's metric, loss: lower is better, so lowest first.
    assert "**Top 6 runs by `loss`** (lowest first, the first metric of the report's panels;" in (
        text
    )
    header = "| # | run | loss | config.optimizer | config.note | acc |"
    assert header in text
    assert "| n0\\|x y |" in text  # a | and a newline inside a cell

    out = export(report.id or "", "--format", "md", "--metric", "acc", "--top", "3")
    assert out.exit_code == 0, out.output
    runs = stemma.Api().runs(f"{PROJECT}")
    df = pd.DataFrame([{"name": r.name, "acc": r.summary.get("acc")} for r in runs])
    expected = list(df.sort_values("acc", ascending=False).head(3)["name"])
    rows = [line.split(" | ") for line in out.output.splitlines() if re.match(r"\| \d", line)]
    assert [r[1] for r in rows] == expected
    best = sorted((r["acc"] for r in logged), reverse=True)[:3]
    assert [float(r[2]) for r in rows] == pytest.approx(best)
    assert "**Top 3 runs by `acc`** (highest first; 6 runs with a value)" in out.output

    # Ascending on request; the same store gives the same text; a file on request.
    up = export(report.id or "", "--format", "md", "--metric", "acc", "--ascending")
    names = [line.split(" | ")[1] for line in up.output.splitlines() if re.match(r"\| \d", line)]
    assert names == list(df.sort_values("acc")["name"])
    again = export(report.id or "", "--format", "md", "--metric", "acc", "--top", "3")
    assert again.output == out.output
    target = tmp_path / "weekly.md"
    written = export(report.id or "", "--format", "md", "-o", str(target), "--revision", "1")
    assert written.exit_code == 0 and target.read_text() == text


def test_export_errors() -> None:
    seed(runs=1, steps=2)
    report = make_report()
    rid = report.id or ""

    missing = export("nosuchreport", "--format", "md")
    assert missing.exit_code == 1 and "nosuchreport" in missing.output
    assert "Traceback" not in missing.output
    bad = export(rid, "--format", "pdf")
    assert bad.exit_code == 2 and "'pdf' is not one of 'html', 'md'" in bad.output
    assert export(rid).exit_code == 2  # --format is required
    top = export(rid, "--format", "md", "--top", "0")
    assert top.exit_code == 2 and "--top" in top.output
    not_a_metric = export(rid, "--format", "md", "--metric", "name")
    assert not_a_metric.exit_code == 1 and "cannot rank runs by 'name'" in not_a_metric.output
    old = export(rid, "--format", "md", "--revision", "9")
    assert old.exit_code == 1 and "Traceback" not in old.output

    media_only = stemma.Report(project=PROJECT, title="Pictures")
    media_only.blocks = [stemma.report.PanelGrid(panels=[stemma.report.MediaBrowser("samples")])]
    media_only.save()
    no_metric = export(media_only.id or "", "--format", "md")
    assert no_metric.exit_code == 1 and "pass --metric" in no_metric.output
    assert export(media_only.id or "", "--format", "md", "--metric", "acc").exit_code == 0


# ------------------------------------------------------------------ access


@pytest.mark.embedded_only
def test_export_reads_with_the_callers_access() -> None:
    """Export reads as its caller: an outsider cannot export; a team viewer can, and a
    runset of a project they cannot read shows no runs (named) rather than failing."""
    from stemma.backend import get_backend
    from stemma.errors import NotFound
    from stemma.report.export import export_report
    from stemma.settings import Settings
    from tests.fixtures.accounts import as_user, make_user
    from tests.test_access import log_run

    store: Any = get_backend(Settings.from_env())
    for name in ("ann", "vic", "out"):
        make_user(store, f"{name}@example.com")
    ann = as_user(store, "ann")
    ann.create_team("acme")
    ann.add_member("acme", "vic@example.com", "viewer")
    out = as_user(store, "out")
    out.create_team("rival")
    log_run(ann, "acme/vision/mine")
    log_run(out, "rival/secret/theirsecretrun")
    spec = {
        "title": "Vision",
        "blocks": [
            {
                "type": "panel_grid",
                "runsets": [
                    {"name": "Ours"},
                    {"name": "Theirs", "entity": "rival", "project": "secret"},
                ],
                "panels": [{"type": "runs_table", "columns": ["name", "loss"]}],
            }
        ],
    }
    rid = ann.save_report("acme", "vision", spec)["id"]

    with pytest.raises(NotFound):
        export_report(as_user(store, "out"), rid, "md")
    with pytest.raises(NotFound):
        export_report(as_user(store, "out"), rid, "html")
    vic = as_user(store, "vic")
    text = export_report(vic, rid, "md", metric="loss")
    assert "| 1 | mine |" in text and "theirsecretrun" not in text
    assert "Theirs: no runs (rival/secret does not exist or you cannot read it)." in text
    html = export_report(vic, rid, "html")
    assert ">mine<" in html and "theirsecretrun" not in html
    assert "the runs vic could read" in html


@pytest.mark.server_only
def test_export_over_http_needs_access(monkeypatch: pytest.MonkeyPatch) -> None:
    """Through a server with accounts: the export reads with the caller's key."""
    from stemma.backend import get_backend
    from stemma.settings import Settings
    from tests.test_cli_access import bootstrap_admin, use_key

    admin_key = bootstrap_admin(monkeypatch)
    admin: Any = get_backend(Settings.from_env())
    admin.create_team("vision")
    _user, _pw, outsider_key = admin.create_user_with_key("eve@example.com", username="eve")
    with stemma.init(entity="vision", project=PROJECT, name="seen") as run:
        run.log({"loss": 0.5})
    report = stemma.Report(project="vision/" + PROJECT, title="Team only")
    report.blocks = [stemma.report.PanelGrid(panels=[stemma.report.LinePlot(y="loss")])]
    report.save()

    ok = export(report.id or "", "--format", "md")
    assert ok.exit_code == 0 and "| 1 | seen |" in ok.output, ok.output
    assert ok.output.rstrip().endswith(f"{Settings.from_env().base_url}/p/vision/exp/reports/"
                                       f"{report.id}>")  # fmt: skip
    use_key(monkeypatch, outsider_key)
    for fmt in ("md", "html"):
        denied = export(report.id or "", "--format", fmt)
        assert denied.exit_code == 1, denied.output
        assert "not found" in denied.output.lower() or "no report" in denied.output.lower()
    use_key(monkeypatch, admin_key)


def test_export_html_leaves_out_media_over_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    from stemma.backend import get_backend
    from stemma.report import export as export_module
    from stemma.settings import Settings

    seed(runs=2, steps=2)
    report = make_report()
    monkeypatch.setattr(export_module, "MEDIA_ITEM_LIMIT", 1000)  # PNGs and Plotly JSON go
    html = export_module.export_report(get_backend(Settings.from_env()), report.id or "", "html")
    assert "3 media items left out (too large or unreadable)." in html
    assert "<img" not in html and 'src="None"' not in html
    assert "data:text/html;charset=utf-8;base64," in html  # the small HTML page stays

"""``stemma report ...``: list reports, show a revision's spec, share links.

``report_group`` is the click group; other modules add their commands to it (``stemma
report export``).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import click

from stemma.cli.common import handle_errors
from stemma.cli.user import backend, table, when


def _iso(value: object) -> str:
    return value.isoformat() if isinstance(value, dt.datetime) else str(value)


def _console() -> Any:
    from stemma.cli.artifact import _console as console

    return console()


@click.group("report")
def report_group() -> None:
    """Reports: list them, show a revision's spec, share links."""


@report_group.command("ls")
@click.argument("path", metavar="[ENTITY/]PROJECT")
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines instead of a table.")
@handle_errors
def report_ls(path: str, as_json: bool) -> None:
    """List a project's reports, most recently saved first."""
    from stemma.api.public import Api

    entity, project = Api()._split(path, 2)
    rows = backend().list_reports(entity, project)
    if as_json:
        for r in rows:
            click.echo(json.dumps(r, default=_iso))
        return
    if not rows:
        click.echo(f"{entity}/{project} has no reports (create one with stemma.Report(...).save())")
        return
    t = table(f"reports of {entity}/{project}", ())
    for col in ("id", "title", "revision", "saved by", "saved", "shared"):
        t.add_column(col, overflow="fold")
    for r in rows:
        t.add_row(
            r["id"],
            r["title"],
            str(r["revision"]),
            r["updated_by"],
            when(r["updated_at"]),
            "yes" if r["share"]["enabled"] else "",
        )
    _console().print(t)


@report_group.command("show")
@click.argument("report_id", metavar="ID")
@click.option("--revision", type=click.IntRange(1), help="This revision (default: the newest).")
@handle_errors
def report_show(report_id: str, revision: int | None) -> None:
    """Print a report's spec (of one revision) as JSON."""
    record = backend().get_report(report_id, revision)
    click.echo(json.dumps(record["spec"], indent=2, ensure_ascii=False))


@report_group.command("history")
@click.argument("report_id", metavar="ID")
@handle_errors
def report_history(report_id: str) -> None:
    """List a report's revisions, oldest first (each readable with show --revision)."""
    t = table(f"revisions of report {report_id}", ())
    for col in ("revision", "title", "saved by", "saved"):
        t.add_column(col, overflow="fold")
    for r in backend().report_revisions(report_id):
        t.add_row(str(r["revision"]), r["title"], r["saved_by"], when(r["saved_at"]))
    _console().print(t)


@report_group.command("share")
@click.argument("report_id", metavar="ID")
@click.option(
    "--enable/--disable",
    required=True,
    help="Make a new read-only share link (any earlier one stops working), or revoke it.",
)
@handle_errors
def report_share(report_id: str, enable: bool) -> None:
    """Enable or revoke a report's read-only share link (members).

    Enabling prints the link's token once: only its hash is stored. Anyone with the
    token can read this report and the runs of its project, nothing else.
    """
    record = backend().set_report_share(report_id, enable)
    if not enable:
        click.echo(f"share link of report {report_id} revoked")
        return
    from stemma.report.report import share_url
    from stemma.settings import Settings

    token = record["share"]["token"]
    click.echo(f"share link of report {report_id} enabled (shown once; only a hash is kept):")
    click.echo(share_url(Settings.from_env().base_url, token))


@report_group.command("sharing")
@click.argument("path", metavar="[ENTITY/]PROJECT")
@click.option(
    "--allow/--forbid",
    default=None,
    help="Allow share links for the project's reports, or forbid them (team admins; "
    "forbidding revokes every existing link). Without either: show the setting.",
)
@handle_errors
def report_sharing(path: str, allow: bool | None) -> None:
    """Whether a project's reports may have share links."""
    from stemma.api.public import Api

    entity, project = Api()._split(path, 2)
    store = backend()
    if allow is not None:
        store.set_report_sharing_allowed(entity, project, allow)
    allowed = store.report_sharing_allowed(entity, project)
    state = "allowed" if allowed else "forbidden"
    if allow is False:
        state += " (every existing link was revoked)"
    click.echo(f"share links for reports of {entity}/{project}: {state}")


@report_group.command("rm")
@click.argument("report_id", metavar="ID")
@handle_errors
def report_rm(report_id: str) -> None:
    """Delete a report and all its revisions (members)."""
    backend().delete_report(report_id)
    click.echo(f"deleted report {report_id}")


@report_group.command("export")
@click.argument("report_id", metavar="ID")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["html", "md"]),
    required=True,
    help="html: one self-contained file (data, scripts, media inline) that opens offline; "
    "md: Markdown with a table of the top runs, for chat and email.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, writable=True, allow_dash=True),
    help="File to write ('-': standard output). Default: md to standard output, html to "
    "report-ID.html.",
)
@click.option(
    "--metric",
    help="md: rank runs by this metric (a summary key such as val/acc, or config.KEY). "
    "Default: the first metric of the report's first panel.",
)
@click.option(
    "--top",
    type=click.IntRange(1, 1000),
    default=10,
    show_default=True,
    help="md: how many runs each table lists.",
)
@click.option(
    "--ascending/--descending",
    default=None,
    help="md: lowest or highest values first. Default: lowest first for losses and errors "
    "(a name with loss, err, mse...), else highest first.",
)
@click.option("--revision", type=click.IntRange(1), help="This revision (default: the newest).")
@handle_errors
def report_export(
    report_id: str,
    fmt: str,
    output: str | None,
    metric: str | None,
    top: int,
    ascending: bool | None,
    revision: int | None,
) -> None:
    """Export a report as one HTML file or as Markdown.

    The data is read now, with your access (runs of projects you cannot read are left
    out), through the store of the current settings: embedded or a server. The HTML file
    needs no network: open it from disk, mail it, attach it to a ticket.
    """
    from stemma.report.export import export_report, write_text
    from stemma.settings import Settings

    text = export_report(
        backend(),
        report_id,
        fmt,
        revision=revision,
        metric=metric,
        top=top,
        ascending=ascending,
        base_url=Settings.from_env().base_url,
    )
    if output is None:
        output = "-" if fmt == "md" else f"report-{report_id}.html"
    if output == "-":
        click.echo(text, nl=False)
        return
    size = write_text(output, text)
    click.echo(f"wrote {output} ({size:,} bytes)", err=True)

"""``stemma audit``: read the hash-chained audit log, and verify the chain."""

from __future__ import annotations

import datetime as dt
import json

import click

from stemma.cli.artifact import _console
from stemma.cli.common import handle_errors
from stemma.cli.user import backend, table, when


def parse_since(text: str) -> dt.datetime:
    """A duration back from now (``7d``, ``12h``) or an ISO date/time (naive: UTC)."""
    from stemma.errors import UsageError
    from stemma.util import parse_time

    try:
        return dt.datetime.now(dt.UTC) - parse_time(text)
    except UsageError:
        pass
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is neither a duration (7d, 12h) nor an ISO date/time (2026-10-01)",
            param_hint="--since",
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def _iso(value: object) -> str:
    return value.isoformat() if isinstance(value, dt.datetime) else str(value)


def _details(details: dict[str, object]) -> str:
    text = json.dumps(details, default=str, separators=(", ", ": "), sort_keys=True)
    return "" if text == "{}" else text[:120]


@click.group("audit", invoke_without_command=True)
@click.option("--team", help="Only this team's entries (its admins may read them).")
@click.option("--actor", help="Only entries by this user or service account.")
@click.option("--action", help="An action (team.add) or a prefix ending in a dot (team.).")
@click.option("--since", help="Only entries newer than a duration (7d) or ISO date/time.")
@click.option(
    "--limit",
    default=50,
    show_default=True,
    type=click.IntRange(1, 10_000),
    help="At most this many entries.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines instead of a table.")
@click.pass_context
@handle_errors
def audit_group(
    ctx: click.Context,
    team: str | None,
    actor: str | None,
    action: str | None,
    since: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """The audit log, newest first: who changed what, when, from where.

    Every change of people, keys, teams, runs, artifacts, aliases and policies is
    appended in the transaction that makes it. Instance administrators read the whole
    log; team administrators their team's (--team). `stemma audit verify` checks the
    hash chain.
    """
    if ctx.invoked_subcommand is not None:
        return
    from stemma.errors import PermissionDenied

    try:
        rows = backend().audit_log(
            entity=team,
            actor=actor,
            action=action,
            since=parse_since(since) if since else None,
            limit=limit,
        )
    except PermissionDenied as exc:
        if team is None:
            raise click.ClickException(
                f"{exc.message}; team admins: stemma audit --team TEAM"
            ) from exc
        raise
    if as_json:
        for r in rows:
            click.echo(json.dumps(r, default=_iso))
        return
    t = table("audit log" + (f" of {team}" if team else ""), ())
    for col in ("seq", "time", "actor", "action", "entity", "target", "details"):
        t.add_column(col, overflow="fold")
    for r in rows:
        actor_text = r["actor"] + (f" ({r['source']})" if r.get("source") else "")
        t.add_row(
            str(r["seq"]),
            when(r["at"]),
            actor_text,
            r["action"],
            r["entity"] or "",
            r["target"],
            _details(r["details"]),
        )
    _console().print(t)


@audit_group.command("verify", short_help="Check the hash chain; exit 1 if it is broken.")
@handle_errors
def audit_verify() -> None:
    """Walk the whole hash chain (instance administrators); exit 1 and name the first
    entry that was edited, deleted or inserted."""
    result = backend().audit_verify()
    if not result["ok"]:
        raise click.ClickException(
            f"audit log broken at entry {result['first_bad']}: {result['problem']} "
            f"({result['checked']} entries before it check out)"
        )
    head = (result.get("head") or "")[:16]
    click.echo(f"audit log intact: {result['checked']} entries checked, head {head}")

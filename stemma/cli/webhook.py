"""``stemma webhook ...``: a team's webhooks, their deliveries, and sending them."""

from __future__ import annotations

import json
from typing import Any

import click

from stemma.cli.artifact import _console
from stemma.cli.common import handle_errors
from stemma.cli.user import backend, show_secret, table, when
from stemma.wire.events import EVENTS


@click.group("webhook")
def webhook_group() -> None:
    """Webhooks: a team's admins have its events POSTed, signed, to a URL.

    Events: artifact.version_created, artifact.alias_moved (optionally for one alias),
    run.finished and report.saved. A server sends deliveries from a background worker,
    with retries; over an embedded store, `stemma webhook deliver` sends them.
    """


@webhook_group.command("add")
@click.argument("team")
@click.argument("url")
@click.option(
    "--event",
    "-e",
    "events",
    multiple=True,
    required=True,
    type=click.Choice(EVENTS),
    help="An event to send (repeat for several).",
)
@click.option("--alias", help="artifact.alias_moved only for this alias, e.g. production.")
@click.option("--secret", help="The signing secret (16+ characters); generated when omitted.")
@handle_errors
def webhook_add(
    team: str, url: str, events: tuple[str, ...], alias: str | None, secret: str | None
) -> None:
    """Register a webhook of TEAM posting to URL (team admins); prints its secret once."""
    hook, key = backend().add_webhook(team, url, list(events), alias, secret)
    only = f" (alias {hook['alias']} only)" if hook["alias"] else ""
    click.echo(
        f"webhook {hook['id']} of {team}: {hook['url']} <- {', '.join(hook['events'])}{only}"
    )
    if secret is None:
        show_secret("signing secret", key)
        click.echo(
            "  shown once: deliveries carry X-Stemma-Signature, an HMAC-SHA256 made with it "
            "(see the README, Webhooks)",
            err=True,
        )


@webhook_group.command("ls")
@click.argument("team")
@handle_errors
def webhook_ls(team: str) -> None:
    """TEAM's webhooks (never their secrets)."""
    hooks = backend().list_webhooks(team)
    if not hooks:
        click.echo(f"no webhooks in {team}")
        return
    t = table(f"webhooks of {team}", ("id", "url", "events", "alias", "created by", "created"))
    for h in hooks:
        t.add_row(
            str(h["id"]),
            h["url"],
            "\n".join(h["events"]),
            h["alias"] or "",
            h["created_by"],
            when(h["created_at"]),
        )
    _console().print(t)


@webhook_group.command("rm")
@click.argument("team")
@click.argument("webhook_id", type=int)
@handle_errors
def webhook_rm(team: str, webhook_id: int) -> None:
    """Delete webhook WEBHOOK_ID of TEAM and its deliveries."""
    backend().delete_webhook(team, webhook_id)
    click.echo(f"deleted webhook {webhook_id} of {team}")


@webhook_group.command("test")
@click.argument("team")
@click.argument("webhook_id", type=int)
@handle_errors
def webhook_test(team: str, webhook_id: int) -> None:
    """Queue a `ping` delivery to webhook WEBHOOK_ID of TEAM."""
    d = backend().test_webhook(team, webhook_id)
    click.echo(
        f"queued ping {d['id']}; see `stemma webhook deliveries {team} {webhook_id}` for its status"
    )


def _iso(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


@webhook_group.command("deliveries")
@click.argument("team")
@click.argument("webhook_id", type=int)
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 1000))
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines (with the payloads).")
@handle_errors
def webhook_deliveries(team: str, webhook_id: int, limit: int, as_json: bool) -> None:
    """Recent deliveries of webhook WEBHOOK_ID of TEAM, newest first: status, attempts,
    the last answer's status code or error."""
    found = backend().webhook_deliveries(team, webhook_id, limit)
    if as_json:
        for d in found:
            click.echo(json.dumps(d, default=_iso))
        return
    if not found:
        click.echo(f"no deliveries to webhook {webhook_id} yet")
        return
    t = table(
        f"deliveries of webhook {webhook_id}",
        ("delivery", "event", "status", "attempts", "code", "error", "created", "next/finished"),
    )
    for d in found:
        t.add_row(
            d["id"][:12],
            d["event"],
            d["status"],
            str(d["attempts"]),
            str(d["last_status_code"] or ""),
            (d["last_error"] or "")[:80],
            when(d["created_at"]),
            when(d["next_attempt_at"] or d["finished_at"]),
        )
    _console().print(t)


@webhook_group.command("deliver")
@click.option("--watch", is_flag=True, help="Keep sending as deliveries fall due (Ctrl-C stops).")
@handle_errors
def webhook_deliver(watch: bool) -> None:
    """Send the deliveries an embedded store has queued (a server sends its own)."""
    store = backend()
    engine = getattr(store, "engine", None)
    if engine is None:
        raise click.ClickException(
            "this store is a server: its webhook worker sends deliveries itself"
        )
    from stemma.service.webhook_delivery import Deliverer, Policy

    deliverer = Deliverer(engine, Policy.from_env())
    if not watch:
        sent = deliverer.drain()
        click.echo(
            f"{sent['succeeded']} delivered, {sent['retrying']} to retry later, "
            f"{sent['failed']} failed for good"
        )
        return
    import threading

    stop = threading.Event()
    click.echo("sending webhook deliveries as they fall due (Ctrl-C stops)", err=True)
    try:
        deliverer.run(stop)
    except KeyboardInterrupt:
        stop.set()
        deliverer.wait(15)

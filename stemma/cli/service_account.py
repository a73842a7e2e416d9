"""``stemma service-account ...``: a team's API-only accounts, for CI and automation."""

from __future__ import annotations

import click

from stemma.cli.artifact import _console
from stemma.cli.common import handle_errors
from stemma.cli.user import backend, show_secret, table, warn_once, when


def _print_key(prefix: str, key: str) -> None:
    show_secret(f"API key {prefix}", key)
    click.echo(f"  export STEMMA_API_KEY={key}")
    warn_once()


def _username(team: str, name: str) -> str:
    return name if "@" in name else f"{name}@{team}"


@click.group("service-account")
def service_account_group() -> None:
    """Service accounts: a team's API-only identities (NAME@TEAM) whose runs go to the
    team. They have no password and cannot sign in to the web UI."""


@service_account_group.command("create")
@click.argument("team")
@click.argument("name")
@click.option(
    "--role", type=click.Choice(["member", "viewer"]), default="member", show_default=True
)
@handle_errors
def sa_create(team: str, name: str, role: str) -> None:
    """Create service account NAME in TEAM (team admins) and print its key (once)."""
    info, key = backend().create_service_account(team, name, role)
    click.echo(
        f"created service account {info['username']} ({role} of {team}); its runs go to {team}"
    )
    _print_key(info.get("key_prefix") or "", key)


@service_account_group.command("ls")
@click.argument("team")
@handle_errors
def sa_ls(team: str) -> None:
    """List the service accounts of TEAM."""
    t = table(f"service accounts of {team}", ("account", "role", "created", "status"))
    for b in backend().team_members(team)["service_accounts"]:
        t.add_row(
            b["username"],
            b.get("role") or "",
            when(b["created_at"]),
            "disabled" if b["disabled"] else "active",
        )
    _console().print(t)


@service_account_group.command("rm")
@click.argument("team")
@click.argument("name")
@handle_errors
def sa_rm(team: str, name: str) -> None:
    """Disable service account NAME of TEAM and revoke its keys (its runs stay)."""
    backend().delete_service_account(team, name)
    click.echo(f"disabled {_username(team, name)} and revoked its keys; its runs stay")


@service_account_group.command("key")
@click.argument("team")
@click.argument("name")
@click.option("--name", "key_name", help="A label for the key.")
@click.option("--expires", help="Lifetime, e.g. 90d (default: until revoked).")
@handle_errors
def sa_key(team: str, name: str, key_name: str | None, expires: str | None) -> None:
    """Create a new API key for service account NAME of TEAM and print it (once).
    Revoke the old one with `stemma key revoke PREFIX` (see `stemma key ls --user
    NAME@TEAM`)."""
    from stemma.util import parse_time

    seconds = parse_time(expires).total_seconds() if expires else None
    info, key = backend().create_api_key(_username(team, name), key_name, seconds)
    click.echo(f"new API key for {info['user']}")
    _print_key(info["prefix"], key)

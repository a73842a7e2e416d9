"""``stemma user ...`` and ``stemma key ...``: accounts, passwords and API keys.

Every command acts on the configured store as its caller: the embedded store (the
local user, with every right: this is how the first administrator of a server is
created, over the same ``STEMMA_DIR`` / ``STEMMA_DATABASE_URL`` the server uses) or a
server (``STEMMA_BASE_URL`` + ``STEMMA_API_KEY``, or ``stemma login``), where the
server decides what the key may do.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import click

from stemma.cli.artifact import _console, _time
from stemma.cli.common import handle_errors

SECRET_WARNING = "Shown once and never stored: save it now; it cannot be shown again."


def backend() -> Any:
    """The configured store, acting as the caller."""
    from stemma.backend import get_backend
    from stemma.settings import Settings

    return get_backend(Settings.from_env())


def show_secret(label: str, secret: str) -> None:
    """Print a secret on its own line (never in a table, where it could wrap)."""
    click.echo(f"{label}: {secret}")


def warn_once(plural: bool = False) -> None:
    text = SECRET_WARNING
    if plural:
        text = "Shown once and never stored: save them now; they cannot be shown again."
    click.secho(text, fg="yellow", err=True)


def table(title: str, columns: tuple[str, ...]) -> Any:
    from rich.table import Table

    t = Table(title=title)
    for col in columns:
        t.add_column(col)
    return t


def yes_no(flag: bool) -> str:
    return "yes" if flag else ""


def when(value: dt.datetime | None) -> str:
    return _time(value)


# ------------------------------------------------------------------ users


@click.group("user")
def user_group() -> None:
    """People: create accounts, list, disable and enable them, set passwords."""


@user_group.command("create")
@click.argument("email")
@click.option("--admin", is_flag=True, help="An instance administrator (every right).")
@click.option("--name", "display_name", help="Display name (default: the username).")
@click.option("--username", help="Username and personal entity (default: from the email).")
@click.option("--no-key", is_flag=True, help="Do not create an API key.")
@handle_errors
def user_create(
    email: str, admin: bool, display_name: str | None, username: str | None, no_key: bool
) -> None:
    """Create an account for EMAIL; print its password and an API key (once).

    Against the embedded store (no STEMMA_BASE_URL) this writes the database
    directly: run it with the server's STEMMA_DIR / STEMMA_DATABASE_URL to create a
    server's first administrator. Against a server it needs an instance administrator.
    Pending team invites for EMAIL are redeemed at once.
    """
    store = backend()
    first = not store.has_users()
    opts = {"display_name": display_name, "username": username, "is_admin": admin}
    key = None
    if no_key:
        user, password = store.create_user(email, **opts)
    else:
        user, password, key = store.create_user_with_key(email, **opts)
    role = ", instance administrator" if user["is_admin"] else ""
    click.echo(f"created user {user['username']} ({user['email']}){role}")
    show_secret("password", password)
    if key is not None:
        show_secret("API key", key)
    warn_once(plural=key is not None)
    if first:
        click.echo(
            "This is the store's first account: a server over it now requires an API key "
            "or a sign-in (local mode has ended).",
            err=True,
        )


@user_group.command("ls")
@handle_errors
def user_ls() -> None:
    """List every account, service accounts included (instance administrators)."""
    t = table("users", ("user", "email", "name", "kind", "admin", "role", "created", "status"))
    for u in backend().list_users():
        t.add_row(
            u["username"],
            u["email"] or "",
            u["display_name"],
            u["kind"].replace("_", " "),
            yes_no(u["is_admin"]),
            u.get("role") or "",
            when(u["created_at"]),
            "disabled" if u["disabled"] else "active",
        )
    _console().print(t)


@user_group.command("disable")
@click.argument("user")
@handle_errors
def user_disable(user: str) -> None:
    """Disable USER (username or email): keys and sessions stop working; runs stay."""
    backend().set_user_disabled(user, True)
    click.echo(f"disabled {user}: its API keys and sessions no longer work; its runs stay")


@user_group.command("enable")
@click.argument("user")
@handle_errors
def user_enable(user: str) -> None:
    """Enable a disabled USER again (its unrevoked keys work again)."""
    backend().set_user_disabled(user, False)
    click.echo(f"enabled {user}")


@user_group.command("passwd")
@click.argument("user", required=False)
@click.option("--generate", is_flag=True, help="Generate a random password and print it.")
@handle_errors
def user_passwd(user: str | None, generate: bool) -> None:
    """Set the password of USER (default: yourself); anyone's needs an instance admin.

    Asks for the new password twice (hidden) unless --generate. The user's web
    sessions are signed out.
    """
    from stemma.errors import UsageError

    store = backend()
    if user is None:
        me = store.whoami()
        if me["kind"] == "local":
            raise UsageError(
                "the local user has no account and no password: name the user "
                "(stemma user passwd alice@example.com)"
            )
        if me["kind"] != "user":
            raise UsageError("service accounts have no password: they use API keys only")
        user = str(me["user"])
    if generate:
        password = store.set_password(user, None)
        click.echo(f"new password of {user}")
        show_secret("password", password)
        warn_once()
        return
    chosen = click.prompt(
        f"New password for {user}", hide_input=True, confirmation_prompt=True, err=True
    )
    store.set_password(user, chosen)
    click.echo(f"password of {user} changed; its web sessions were signed out")


# ------------------------------------------------------------------ API keys


@click.group("key")
def key_group() -> None:
    """API keys: create (shown once), list and revoke them."""


@key_group.command("create")
@click.option("--user", help="Whose key (username or email; default: yours).")
@click.option("--name", help="A label, e.g. 'laptop' or 'ci'.")
@click.option("--expires", help="Lifetime, e.g. 90d or 12h (default: until revoked).")
@handle_errors
def key_create(user: str | None, name: str | None, expires: str | None) -> None:
    """Create an API key and print it (once). Use it as STEMMA_API_KEY or with
    `stemma login`. Another user's key needs an instance administrator; a service
    account's, an admin of its team."""
    from stemma.util import parse_time

    seconds = parse_time(expires).total_seconds() if expires else None
    info, key = backend().create_api_key(user, name, seconds)
    until = f", expires {when(info['expires_at'])}" if info["expires_at"] else ""
    click.echo(f"API key {info['prefix']} for {info['user']}{until}")
    show_secret("API key", key)
    warn_once()


@key_group.command("ls")
@click.option("--user", help="Whose keys (username or email; default: yours).")
@handle_errors
def key_ls(user: str | None) -> None:
    """List API keys by prefix (the keys themselves are never stored)."""
    keys = backend().list_api_keys(user)
    owner = keys[0]["user"] if keys else (user or "you")
    t = table(
        f"API keys of {owner}", ("prefix", "name", "created", "last used", "expires", "revoked")
    )
    for k in keys:
        t.add_row(
            k["prefix"],
            k["name"] or "",
            when(k["created_at"]),
            when(k["last_used_at"]) or "never",
            when(k["expires_at"]) or "never",
            yes_no(k["revoked"]),
        )
    _console().print(t)


@key_group.command("revoke")
@click.argument("prefix")
@handle_errors
def key_revoke(prefix: str) -> None:
    """Revoke the key with PREFIX (as `key ls` shows it, or the whole key): it stops
    working on the next request."""
    info = backend().revoke_api_key(prefix)
    click.echo(f"revoked API key {info['prefix']} of {info['user']}")

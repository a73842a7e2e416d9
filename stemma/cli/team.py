"""``stemma team ...``: teams, their members and pending invites."""

from __future__ import annotations

import click

from stemma.cli.artifact import _console
from stemma.cli.common import handle_errors
from stemma.cli.user import backend, table, when

ROLES = ("viewer", "member", "admin")


@click.group("team")
def team_group() -> None:
    """Teams: entities such as team-a in team-a/pretraining, with members by role.

    Viewers read the team's projects; members also log runs and artifacts and move
    ordinary aliases; admins also move protected aliases, decide promotion requests,
    and manage members and service accounts.
    """


@team_group.command("create")
@click.argument("name")
@handle_errors
def team_create(name: str) -> None:
    """Create team NAME (you become its admin)."""
    store = backend()
    store.create_team(name)
    me = store.whoami()
    if me["kind"] == "local":
        click.echo(f"created team {name}; add people with `stemma team add {name} EMAIL`")
    else:
        click.echo(f"created team {name}; you are its admin")


@team_group.command("add")
@click.argument("team")
@click.argument("email")
@click.option(
    "--role", type=click.Choice(ROLES), default="member", show_default=True, help="Their role."
)
@handle_errors
def team_add(team: str, email: str, role: str) -> None:
    """Add EMAIL (or a username) to TEAM, or change their role. An email with no account
    yet gets a pending invite, redeemed when the account is created or first signs in."""
    out = backend().add_member(team, email, role)
    status = out["status"]
    who = out.get("user") or out.get("email")
    if status == "invited":
        click.echo(
            f"invited {out['email']} to {team} as {out['role']}: they join when their "
            "account is created or first signs in"
        )
    elif status == "added":
        click.echo(f"added {who} to {team} as {out['role']}")
    elif status == "changed":
        click.echo(f"{who} is now {out['role']} of {team}")
    else:
        click.echo(f"{who} is already {out['role']} of {team}")


@team_group.command("ls")
@click.argument("team", required=False)
@handle_errors
def team_ls(team: str | None) -> None:
    """Your teams with your role and member counts; with TEAM, its members, pending
    invites and service accounts."""
    store = backend()
    console = _console()
    if team is None:
        t = table("teams", ("team", "your role", "members", "created"))
        for row in store.list_teams():
            t.add_row(row["name"], row["role"] or "", str(row["members"]), when(row["created_at"]))
        console.print(t)
        return
    detail = store.team_members(team)
    members = table(f"members of {team}", ("user", "email", "name", "role"))
    for m in detail["members"]:
        members.add_row(m["username"], m["email"] or "", m["display_name"], m["role"])
    console.print(members)
    if detail["invites"]:
        invites = table(f"pending invites to {team}", ("email", "role", "invited by", "since"))
        for i in detail["invites"]:
            invites.add_row(i["email"], i["role"], i["invited_by"] or "", when(i["created_at"]))
        console.print(invites)
    else:
        click.echo(f"no pending invites to {team}")
    if detail["service_accounts"]:
        bots = table(f"service accounts of {team}", ("account", "role", "created", "status"))
        for b in detail["service_accounts"]:
            bots.add_row(
                b["username"],
                b.get("role") or "",
                when(b["created_at"]),
                "disabled" if b["disabled"] else "active",
            )
        console.print(bots)
    else:
        click.echo(f"no service accounts in {team}")


@team_group.command("rm-member")
@click.argument("team")
@click.argument("user")
@handle_errors
def team_rm_member(team: str, user: str) -> None:
    """Remove USER (username or email) from TEAM, or cancel their pending invite. Their
    runs stay. The last admin of a team cannot be removed."""
    out = backend().remove_member(team, user)
    if out["status"] == "removed":
        click.echo(f"removed {out['user']} from {team}; their runs stay")
    else:
        click.echo(f"cancelled the invite of {out['email']} to {team}")

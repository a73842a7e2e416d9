"""``stemma project ...``: per-project settings (visibility)."""

from __future__ import annotations

import click

from stemma.cli.common import handle_errors
from stemma.cli.user import backend

_MEANING = {
    "team": "every member of {entity} sees it, per role",
    "private": "only its owner and the admins of {entity} see it",
}


@click.group("project")
def project_group() -> None:
    """Projects: who may see them."""


@project_group.command("visibility")
@click.argument("path", metavar="[ENTITY/]PROJECT")
@click.argument("visibility", type=click.Choice(["team", "private"]))
@handle_errors
def project_visibility(path: str, visibility: str) -> None:
    """Make a project visible to its whole team, or private (team admins)."""
    from stemma.api.public import Api

    entity, project = Api()._split(path, 2)
    backend().set_project_visibility(entity, project, visibility)
    click.echo(
        f"{entity}/{project} is now {visibility}: " + _MEANING[visibility].format(entity=entity)
    )

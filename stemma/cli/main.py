"""``stemma``: the command-line entry point."""

from __future__ import annotations

import click

from stemma import __version__
from stemma.cli.artifact import artifact_group
from stemma.cli.audit import audit_group
from stemma.cli.db import db_group
from stemma.cli.demo import demo_cmd
from stemma.cli.export import export_cmd
from stemma.cli.project import project_group
from stemma.cli.report import report_group
from stemma.cli.runs import runs_group
from stemma.cli.server import login_cmd, server_cmd
from stemma.cli.service_account import service_account_group
from stemma.cli.storage import cache_group, gc_cmd, storage_cmd
from stemma.cli.sync import sync_cmd
from stemma.cli.team import team_group
from stemma.cli.user import key_group, user_group
from stemma.cli.webhook import webhook_group


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="stemma")
def cli() -> None:
    """Stemma: experiment tracking, versioned artifacts with lineage, live reports.

    Settings come from STEMMA_* environment variables (see the README).
    """


cli.add_command(runs_group)
cli.add_command(sync_cmd)
cli.add_command(db_group)
cli.add_command(demo_cmd)
cli.add_command(export_cmd)
cli.add_command(artifact_group)
cli.add_command(gc_cmd)
cli.add_command(storage_cmd)
cli.add_command(cache_group)
cli.add_command(server_cmd)
cli.add_command(login_cmd)
cli.add_command(user_group)
cli.add_command(key_group)
cli.add_command(team_group)
cli.add_command(service_account_group)
cli.add_command(project_group)
cli.add_command(audit_group)
cli.add_command(report_group)
cli.add_command(webhook_group)


def main() -> None:
    cli()


if __name__ == "__main__":
    main()

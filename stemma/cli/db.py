"""``stemma db ...``: schema migrations."""

from __future__ import annotations

import click

from stemma.cli.common import handle_errors


@click.group("db")
def db_group() -> None:
    """Manage the metadata database."""


@db_group.command("upgrade")
@click.option(
    "--database-url",
    envvar="STEMMA_DATABASE_URL",
    help="SQLAlchemy URL (default: SQLite in STEMMA_DIR).",
)
@click.option("--revision", default="head", show_default=True)
@handle_errors
def db_upgrade(database_url: str | None, revision: str) -> None:
    """Apply migrations up to REVISION (idempotent)."""
    from stemma.settings import Settings
    from stemma.storage.database import create_store_engine, current_revision, sqlite_url, upgrade

    url = database_url or sqlite_url(Settings.from_env().dir)
    engine = create_store_engine(url)
    before = current_revision(engine)
    upgrade(engine, revision)
    after = current_revision(engine)
    shown = engine.url.render_as_string(hide_password=True)
    if before == after:
        click.echo(f"{shown}: already at revision {after}")
    else:
        click.echo(f"{shown}: upgraded {before or 'empty'} -> {after}")

"""Alembic environment: runs on the connection Stemma hands it (see database.upgrade)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from stemma.storage.models import metadata

config = context.config


def run() -> None:
    connection = config.attributes.get("connection")
    if connection is None:  # `alembic` invoked by hand with a URL
        engine = create_engine(config.get_main_option("sqlalchemy.url") or "")
        with engine.begin() as conn:
            context.configure(connection=conn, target_metadata=metadata, render_as_batch=True)
            context.run_migrations()
        return
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    context.run_migrations()


run()

"""``stemma server`` and ``stemma login``."""

from __future__ import annotations

import click

from stemma.cli.common import handle_errors
from stemma.server.config import DEFAULT_PORT


@click.command("server")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=DEFAULT_PORT, show_default=True, type=int)
@click.option(
    "--database-url",
    envvar="STEMMA_DATABASE_URL",
    help="SQLAlchemy URL (default: SQLite in STEMMA_DIR).",
)
@click.option(
    "--storage-url",
    envvar="STEMMA_STORAGE_URL",
    help="Blob store: a directory or s3://bucket/prefix (default: STEMMA_DIR/blobs).",
)
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=int,
    help="Worker processes (several need PostgreSQL; SQLite allows one writer).",
)
@click.option("--log-level", default="info", show_default=True)
@handle_errors
def server_cmd(
    host: str,
    port: int,
    database_url: str | None,
    storage_url: str | None,
    workers: int,
    log_level: str,
) -> None:
    """Serve the REST API (and, later, the web UI) over the configured store."""
    import os

    import uvicorn

    from stemma.server.config import ServerSettings
    from stemma.storage.database import create_store_engine, ensure_schema, sqlite_url

    settings = ServerSettings.from_env(database_url=database_url, storage_url=storage_url)
    url = settings.database_url or sqlite_url(settings.dir)
    if workers > 1 and url.startswith("sqlite"):
        raise click.UsageError(
            "--workers > 1 needs PostgreSQL (STEMMA_DATABASE_URL): SQLite has one writer"
        )
    engine = create_store_engine(url)
    ensure_schema(engine)  # migrate once, before workers start
    _check_bind(host, engine)
    os.environ["STEMMA_SERVER_HOST"] = host
    os.environ["STEMMA_SERVER_PORT"] = str(port)  # webhooks may not point here
    if database_url:
        os.environ["STEMMA_DATABASE_URL"] = database_url
    if storage_url:
        os.environ["STEMMA_STORAGE_URL"] = storage_url
    click.echo(f"stemma server on http://{host}:{port} (store: {url.split('@')[-1]})", err=True)
    uvicorn.run(
        "stemma.server.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
        proxy_headers=True,
    )


def _check_bind(host: str, engine: object) -> None:
    """Loopback with no accounts is local mode; anything else needs an account first."""
    from stemma.server.auth import is_loopback
    from stemma.service.identity import has_users
    from stemma.storage.database import read_tx

    with read_tx(engine) as conn:  # type: ignore[arg-type]
        users = has_users(conn)
    if users:
        click.echo("accounts exist: API keys or sign-in required", err=True)
    elif is_loopback(host):
        click.echo("local mode: no accounts, no login (loopback only)", err=True)
    else:
        raise click.UsageError(
            f"refusing to serve on {host} with no accounts: anyone who can reach it would "
            "have every right. Create the first administrator against the same store:\n"
            "  stemma user create you@example.com --admin\n"
            "(or bind 127.0.0.1 for single-user local mode)"
        )


@click.command("login")
@click.argument("key", required=False)
@click.option("--host", help="Server URL, e.g. http://127.0.0.1:5280.")
@click.option("--relogin", is_flag=True, help="Replace a stored key.")
@handle_errors
def login_cmd(key: str | None, host: str | None, relogin: bool) -> None:
    """Store the server URL and API KEY for the SDK and CLI (file mode 0600)."""
    from stemma.settings import load_login, save_login

    current = load_login()
    host = host or current.get("base_url")
    if not host:
        raise click.UsageError("give --host URL the first time")
    if (key is None and not current.get("api_key")) or (relogin and key is None):
        key = click.prompt(
            "API key (leave empty for a local-mode server)",
            default="",
            hide_input=True,
            show_default=False,
        )
    from stemma.backend.http import HttpBackend
    from stemma.settings import Settings

    backend = HttpBackend(Settings.from_env(base_url=host, api_key=key or None))
    try:
        with backend.retry_budget(5.0):  # interactive: say so quickly, do not retry for minutes
            who = backend.default_entity()
    finally:
        backend.close()
    path = save_login(host, key if key is not None else current.get("api_key"))
    click.echo(f"logged in to {host} as {who}; saved in {path}")

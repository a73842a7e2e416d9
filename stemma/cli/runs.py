"""``stemma runs ...``: list a project's runs."""

from __future__ import annotations

import json
import math
from typing import Any

import click

from stemma.cli.common import handle_errors, is_tty

_SKIP = {"_step", "_runtime", "_timestamp"}


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        return f"{value:.4g}"
    return "" if value is None else str(value)


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


@click.group("runs")
def runs_group() -> None:
    """Inspect runs."""


@runs_group.command("ls")
@click.argument("project")
@click.option("--limit", default=50, show_default=True, help="At most this many runs.")
@click.option(
    "--order",
    default="-created_at",
    show_default=True,
    help="Sort key, '-' for descending: created_at, name, state, runtime.",
)
@click.option(
    "--metrics",
    "-m",
    multiple=True,
    help="Summary keys to show (default: up to 4 found in the runs).",
)
@click.option(
    "--config",
    "-c",
    "config_keys",
    multiple=True,
    help="Config keys to show (default: up to 3 that differ between the runs).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines instead of a table.")
@handle_errors
def runs_ls(
    project: str,
    limit: int,
    order: str,
    metrics: tuple[str, ...],
    config_keys: tuple[str, ...],
    as_json: bool,
) -> None:
    """List the runs of PROJECT ('project' or 'entity/project') with their summaries."""
    from stemma.api.public import Api

    api = Api()
    listing = api.runs(project, order=order, per_page=min(max(limit, 1), 500))
    runs = list(listing)[:limit]
    if not runs:
        known = [f"{p['entity']}/{p['name']}" for p in api.projects()]
        if f"{listing.entity}/{listing.project}" not in known:
            hint = f"; projects here: {', '.join(known)}" if known else " (the store is empty)"
            raise click.ClickException(f"no project {listing.entity}/{listing.project}{hint}")
    if as_json:
        for r in runs:
            click.echo(
                json.dumps(
                    {
                        "id": r.id,
                        "name": r.name,
                        "state": r.state,
                        "job_type": r.job_type,
                        "group": r.group,
                        "tags": r.tags,
                        "created_at": r.created_at.isoformat(),
                        "config": r.config.as_dict(),
                        "summary": r.summary.as_dict(),
                    },
                    default=str,
                )
            )
        return
    from rich.console import Console
    from rich.table import Table

    keys = list(metrics)
    if not keys:
        seen: dict[str, None] = {}
        for r in runs:
            for k, v in r.summary.items():
                if k not in _SKIP and not k.startswith("system/") and isinstance(v, int | float):
                    seen.setdefault(k)
        keys = list(seen)[:4]
    cfg = list(config_keys)
    if not cfg:
        values: dict[str, set[str]] = {}
        for r in runs:
            for k, v in r.config.items():
                if isinstance(v, str | int | float | bool):
                    values.setdefault(k, set()).add(repr(v))
        cfg = [k for k, vs in values.items() if len(vs) > 1][:3]
    path = f"{runs[0].entity}/{runs[0].project}" if runs else project
    table = Table(title=f"{path}: {len(runs)} run(s)")
    for col in ("id", "name", "state", "job type", "group", "tags", "steps", "runtime"):
        table.add_column(col, no_wrap=col in ("id", "state"))
    for k in cfg:
        table.add_column(f"config.{k}", justify="right")
    for k in keys:
        table.add_column(k, justify="right")
    for r in runs:
        table.add_row(
            r.id,
            r.name,
            r.state,
            r.job_type or "",
            r.group or "",
            ",".join(r.tags),
            str(r.last_step + 1),
            _duration(float(r.summary.get("_runtime") or 0)),
            *[_fmt(r.config.get(k)) for k in cfg],
            *[_fmt(r.summary.get(k)) for k in keys],
        )
    # Off a terminal (make, CI logs) rich would squeeze the table into 80 columns.
    Console(width=None if is_tty() else 200).print(table)

"""``stemma export``: a project's runs and histories as Parquet files."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import click

from stemma.cli.common import handle_errors


def _filters(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint="--filters") from None
    if not isinstance(value, dict):
        raise click.BadParameter("must be a JSON object", param_hint="--filters")
    return value


def _keys(values: tuple[str, ...]) -> list[str] | None:
    keys = [k.strip() for v in values for k in v.split(",") if k.strip()]
    return keys or None


def _size(n: int) -> str:
    size = float(n)
    for unit in ("B", "kB", "MB"):
        if size < 1000:
            return f"{size:,.0f} {unit}" if unit == "B" else f"{size:,.1f} {unit}"
        size /= 1000
    return f"{size:,.1f} GB"


@click.command("export")
@click.argument("project")
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory to write (created; must be empty or absent unless --overwrite).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["parquet"]),
    default="parquet",
    show_default=True,
    help="File format.",
)
@click.option(
    "--filters",
    help='Only runs matching this MongoDB-style JSON filter, e.g. \'{"state": "finished"}\'.',
)
@click.option(
    "--keys",
    multiple=True,
    help="History keys to export, comma-separated (repeatable; default: every key).",
)
@click.option(
    "--samples",
    type=click.IntRange(min=1),
    help="Downsample each key of each run to at most N points (minima and maxima kept).",
)
@click.option(
    "--stream",
    type=click.Choice(["default", "system"]),
    default="default",
    show_default=True,
    help="Which history: logged metrics, or the system/* metrics.",
)
@click.option("--overwrite", is_flag=True, help="Replace OUTPUT if it holds an earlier export.")
@handle_errors
def export_cmd(
    project: str,
    output: Path,
    fmt: str,
    filters: str | None,
    keys: tuple[str, ...],
    samples: int | None,
    stream: str,
    overwrite: bool,
) -> None:
    """Export a project's runs and histories as Parquet files.

    PROJECT is 'project' or 'entity/project'. Writes OUTPUT/runs.parquet (one row
    per run: fields, config.*, summary.*, metadata.*), OUTPUT/history/*.parquet
    (run_id, _step, one column per key) and OUTPUT/manifest.json, a page of runs at a
    time. Nothing is left behind on failure.
    """
    from stemma.api.public import Api

    del fmt  # parquet is the only format so far
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = Api().export(
            project,
            output,
            filters=_filters(filters),
            keys=_keys(keys),
            samples=samples,
            stream=stream,
            overwrite=overwrite,
            progress=True,
        )
    for w in caught:
        click.echo(f"warning: {w.message}", err=True)
    click.echo(
        f"exported {result['runs']:,} run(s) and {result['rows']:,} history row(s) to "
        f"{result['path']} ({result['files']} files, {_size(result['bytes'])}) "
        f"in {result['seconds']:.2f} s"
    )

"""``stemma gc``, ``stemma storage`` and ``stemma cache``: what storage costs, and freeing it."""

from __future__ import annotations

import click

from stemma.cli.artifact import _console, _size
from stemma.cli.common import handle_errors


@click.command("gc")
@click.option("--dry-run", is_flag=True, help="Report what would be deleted; delete nothing.")
@click.option(
    "--grace",
    default="1h",
    show_default=True,
    help="Spare blobs and chunks stored this recently (uploads awaiting their commit).",
)
@click.option(
    "--repack-below",
    default=0.5,
    show_default=True,
    type=click.FloatRange(0, 1),
    help="Repack packfiles whose live fraction falls below this (0 never repacks).",
)
@handle_errors
def gc_cmd(dry_run: bool, grace: str, repack_below: float) -> None:
    """Delete versions past their TTL or retention policy, then unreferenced chunks and
    blobs, and repack packfiles that are mostly dead.

    Versions holding a protected alias are never deleted. Safe to interrupt and safe
    against concurrent uploads: nothing still referenced is ever removed, and a chunk
    uploaded while gc runs is kept.
    """
    from stemma.backend import get_backend
    from stemma.settings import Settings
    from stemma.util import parse_time

    backend = get_backend(Settings.from_env())
    report = backend.gc(
        dry_run=dry_run,
        grace_seconds=parse_time(grace).total_seconds(),
        repack_below=repack_below,
    )
    verb = "would delete" if dry_run else "deleted"
    for v in report["versions"]:
        click.echo(f"{verb} {v['artifact']} ({v['reason']})")
    click.echo(
        f"{verb} {len(report['versions'])} version(s) and {report['blobs']} blob(s), "
        f"freeing {_size(report['bytes'])}"
    )
    chunks = (
        f"{verb} {report.get('chunks', 0)} unreferenced chunk(s) "
        f"({_size(report.get('chunk_bytes', 0))})"
    )
    if not dry_run:
        chunks += f"; repacked {report.get('repacked', 0)} packfile(s)"
    click.echo(chunks)


@click.command("storage")
@click.argument("project", required=False)
@handle_errors
def storage_cmd(project: str | None) -> None:
    """What artifact versions cost, at three levels: logical bytes (every version in
    full), after file-level deduplication (each distinct file once) and after chunk-level
    deduplication and compression (what is stored)."""
    from rich.table import Table

    from stemma.api.public import Api

    api = Api()
    entity = proj = None
    if project:
        entity, proj = api._split(project, 2)
    rows = api._backend.storage_stats(entity, proj)
    table = Table(title="artifact storage")
    columns = ("project", "type", "versions", "files", "logical", "file dedup", "stored", "saved")
    for col in columns:
        table.add_column(col, justify="right" if col not in ("project", "type") else "left")
    totals = [0, 0, 0]
    for r in rows:
        file_level = r.get("file_dedup_bytes", r["physical_bytes"])
        saved = 1 - r["physical_bytes"] / r["logical_bytes"] if r["logical_bytes"] else 0
        totals[0] += r["logical_bytes"]
        totals[1] += file_level
        totals[2] += r["physical_bytes"]
        table.add_row(
            f"{r['entity']}/{r['project']}",
            r["type"],
            str(r["versions"]),
            str(r["blobs"]),
            _size(r["logical_bytes"]),
            _size(file_level),
            _size(r["physical_bytes"]),
            f"{saved:.0%}",
        )
    if len(rows) > 1:
        saved = 1 - totals[2] / totals[0] if totals[0] else 0
        table.add_row(
            "total", "", "", "", *(_size(t) for t in totals), f"{saved:.0%}", style="bold"
        )
    _console().print(table)


@click.group("cache")
def cache_group() -> None:
    """The local download cache (STEMMA_CACHE_DIR, bounded by STEMMA_CACHE_MAX)."""


@cache_group.command("clean")
@click.option("--max-size", help="Shrink the cache to this size (e.g. 1GB); default: empty it.")
@handle_errors
def cache_clean(max_size: str | None) -> None:
    """Evict least recently used files until the cache fits."""
    from stemma.sdk.cache import open_cache, parse_size
    from stemma.settings import Settings

    cache = open_cache(Settings.from_env().cache_dir)
    before = cache.usage()
    files, freed = cache.evict(parse_size(max_size) if max_size else 0)
    click.echo(
        f"{cache.root}: removed {files} file(s), {_size(freed)}; {_size(before - freed)} left"
    )

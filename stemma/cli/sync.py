"""``stemma sync``: upload spooled runs (offline runs, or what a killed process left)."""

from __future__ import annotations

from pathlib import Path

import click

from stemma.cli.common import handle_errors, progress


@click.command("sync")
@click.argument("path", required=False, type=click.Path(exists=True, path_type=Path))
@click.option("--keep", is_flag=True, help="Keep spool files after uploading them.")
@handle_errors
def sync_cmd(path: Path | None, keep: bool) -> None:
    """Upload every spool under PATH (default: STEMMA_DIR/runs) to the store.

    Safe to interrupt and run again: frames already stored are skipped.
    """
    from stemma.backend import get_backend
    from stemma.sdk.sync import find_spools, sync_spool
    from stemma.settings import Settings

    settings = Settings.from_env()
    root = path or settings.spool_root
    spools = find_spools(root) if root.exists() else []
    if not spools:
        click.echo(f"nothing to sync under {root}")
        return
    backend = get_backend(settings)
    total = sum(p.stat().st_size for p in spools)
    prog, task = progress(total, "syncing")
    done_frames = 0
    with prog:
        for spool in spools:
            result = sync_spool(
                backend, spool, remove=not keep, progress=lambda n: prog.advance(task, n)
            )
            done_frames += result.frames
            state = "uploaded" if result.frames else "already stored"
            tail = ", spool removed" if result.removed else ""
            click.echo(
                f"{result.run_path}: {state} ({result.frames} frame(s), {result.bytes} bytes){tail}"
            )
    click.echo(f"synced {len(spools)} spool(s), {done_frames} new frame(s)")
    pending = settings.dir / "pending-blobs"
    if pending.exists() and not find_spools(settings.spool_root):
        import shutil

        shutil.rmtree(pending, ignore_errors=True)  # every offline artifact is uploaded

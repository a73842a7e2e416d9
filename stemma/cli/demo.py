"""``stemma demo``: load the demo workflow into the current store."""

from __future__ import annotations

import os

import click

from stemma.cli.common import handle_errors


@click.command("demo")
@click.option("--project", default="stemma-demo", show_default=True)
@click.option("--fast", is_flag=True, help="Fewer epochs and samples (for tests).")
@handle_errors
def demo_cmd(project: str, fast: bool) -> None:
    """Train a small learning-rate sweep for real and log it, then list what was logged."""
    from stemma.cli.runs import runs_ls
    from stemma.demo.workflow import train_sweep

    os.environ.setdefault("STEMMA_SYSTEM_METRICS", "false")
    result = train_sweep(project=project, fast=fast)
    click.echo(f"logged {len(result.run_ids)} runs to {result.entity}/{project}")
    ctx = click.get_current_context()
    ctx.invoke(
        runs_ls,
        project=f"{result.entity}/{project}",
        limit=len(result.run_ids),
        order="-created_at",
        metrics=("val/acc", "val/loss", "best_val_acc"),
        config_keys=(),
        as_json=False,
    )

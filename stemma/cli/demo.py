"""``stemma demo``: load the demo workflow into the current store."""

from __future__ import annotations

import os

import click

from stemma.cli.common import handle_errors


@click.command("demo")
@click.option("--project", default="stemma-demo", show_default=True)
@click.option("--fast", is_flag=True, help="Fewer epochs and samples (for tests).")
@click.option("--again", is_flag=True, help="Log another sweep even if the project has one.")
@handle_errors
def demo_cmd(project: str, fast: bool, again: bool) -> None:
    """Train a small learning-rate sweep for real and log it, then list what was logged.

    Runs once per store: when the project already has runs, it says so and leaves them.
    """
    from stemma.api.public import Api
    from stemma.cli.runs import runs_ls
    from stemma.demo.workflow import train_sweep

    os.environ.setdefault("STEMMA_SYSTEM_METRICS", "false")
    existing = Api().runs(project)
    if not again and len(existing) > 0:
        click.echo(
            f"{existing.entity}/{project} already has {len(existing)} runs from an "
            "earlier demo (pass --again to log another sweep)"
        )
        return
    result = train_sweep(project=project, fast=fast)
    click.echo(f"logged {len(result.run_ids)} runs to {result.entity}/{project}")
    if result.report is not None:
        click.echo(f"saved the report {result.report.title!r}: {result.report.url}")
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

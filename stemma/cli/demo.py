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
    """Run the reference workflow for real: ingest, preprocess, a learning-rate sweep
    with checkpoints, evaluation of `staging`, promotion to `production`, and a report.

    Runs once per store: when the project already has runs, it says so and leaves them.
    """
    from stemma.api.public import Api
    from stemma.cli.runs import runs_ls
    from stemma.demo.workflow import MODEL, run_workflow

    os.environ.setdefault("STEMMA_SYSTEM_METRICS", "false")
    api = Api()
    existing = api.runs(project)
    if not again and len(existing) > 0:
        click.echo(
            f"{existing.entity}/{project} already has {len(existing)} runs from an "
            "earlier demo (pass --again to log another sweep)"
        )
        return
    result = run_workflow(project=project, fast=fast)
    path = f"{result.entity}/{project}"
    runs = list(api.runs(path, per_page=1000))
    kinds: dict[str, int] = {}
    for r in sorted(runs, key=lambda r: r.created_at):
        if r.id in result.run_ids:
            kinds[r.job_type or "run"] = kinds.get(r.job_type or "run", 0) + 1
    click.echo(
        f"logged {len(result.run_ids)} runs to {path}: "
        + ", ".join(f"{n} {kind}" for kind, n in kinds.items())
    )
    click.echo("artifact versions:")
    for name in ("tickets-raw", "tickets", MODEL):
        for art in api.artifact_versions(name=f"{path}/{name}"):
            meta = art.metadata
            detail = (
                f"epoch {meta['epoch']}, val acc {meta['val_acc']:.3f}, {meta['architecture']} "
                f"lr={meta['learning_rate']}"
                if "epoch" in meta
                else art.description
            )
            click.echo(f"  {art.name:<22} {art.type:<8} [{', '.join(art.aliases)}]  {detail}")
    test_acc = result.test_metrics.get("test/acc", float("nan"))
    if result.promoted:
        click.echo(
            f"promoted {result.staging} (staging) to production (protected): test accuracy "
            f"{test_acc:.3f} >= {result.threshold:.2f}"
        )
    else:
        click.echo(
            f"did not promote {result.staging}: test accuracy {test_acc:.3f} < "
            f"{result.threshold:.2f}"
        )
    if result.report is not None:
        click.echo(f"saved the report {result.report.title!r}: {result.report.url}")
    ctx = click.get_current_context()
    ctx.invoke(
        runs_ls,
        project=path,
        limit=len(result.run_ids),
        order="-created_at",
        metrics=("val/acc", "val/loss", "best_val_acc", "test/acc"),
        config_keys=(),
        as_json=False,
    )

"""``stemma demo``: a learning-rate sweep of real (small) models into the current store.

A ``preprocess`` run logs the dataset as an artifact; each ``train`` run uses it, logs
curves, media (a confusion-matrix image per epoch, a table of validation predictions,
a Plotly figure, an HTML note) and its model as an artifact, so the web UI has runs,
charts, media and a lineage graph to show. Every call logs through the public SDK
exactly as a user script would.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import stemma
from stemma.demo.model import Classifier, Dataset, make_dataset

PROJECT = "stemma-demo"


@dataclass
class DemoResult:
    project: str
    entity: str
    run_ids: list[str]
    report: stemma.Report | None = None


def train_sweep(
    project: str = PROJECT,
    learning_rates: tuple[float, ...] = (0.03, 0.1, 0.3),
    architectures: tuple[str, ...] = ("mlp", "logreg"),
    epochs: int = 12,
    batch_size: int = 64,
    fast: bool = False,
) -> DemoResult:
    """Train one model per (architecture, learning rate); each run logs per-batch
    ``train/loss`` and per-epoch ``val/loss`` / ``val/acc``."""
    if fast:
        epochs = 3
    data = make_dataset(samples=1200 if fast else 4000)
    run_ids: list[str] = [_log_dataset(project, data)]
    entity = ""
    for arch in architectures:
        for lr in learning_rates:
            config = {
                "learning_rate": lr,
                "batch_size": batch_size,
                "epochs": epochs,
                "architecture": arch,
                "hidden": 32,
                "dataset": "synthetic-tickets",
            }
            with stemma.init(
                project=project,
                job_type="train",
                group="lr-sweep",
                tags=[arch, "lr-sweep"],
                config=config,
                notes=f"{arch} at learning rate {lr}",
            ) as run:
                run.use_artifact("tickets:latest")
                model = Classifier(data.x_train.shape[1], arch, seed=7)
                rng = np.random.default_rng(1)
                n = len(data.x_train)
                best = 0.0
                for epoch in range(epochs):
                    order = rng.permutation(n)
                    for lo in range(0, n, batch_size):
                        idx = order[lo : lo + batch_size]
                        loss = model.sgd_step(data.x_train[idx], data.y_train[idx], lr)
                        run.log({"train/loss": loss, "epoch": epoch})
                    val_loss, val_acc = model.loss_and_accuracy(data.x_val, data.y_val)
                    best = max(best, val_acc)
                    run.log(
                        {
                            "val/loss": val_loss,
                            "val/acc": val_acc,
                            "epoch": epoch,
                            "val/confusion": stemma.Image(
                                _confusion_image(model, data), caption=f"epoch {epoch}"
                            ),
                        },
                        commit=False,
                    )
                run.log(_report_media(model, data, arch, lr))
                run.summary["best_val_acc"] = best
                _log_model(run, model, arch, lr)
                run_ids.append(run.id)
                entity = run.entity
    report = _save_report(project, entity)
    return DemoResult(project, entity, run_ids, report)


def _save_report(project: str, entity: str) -> stemma.Report:
    """The sweep's report: curves grouped by architecture, the best runs, the media."""
    report = stemma.Report(
        project=project,
        entity=entity,
        title="Learning-rate sweep",
        description="Live: every train run of the project, grouped by architecture.",
    )
    runs = stemma.report.Runset(filters={"job_type": "train"}, name="Train runs")
    report.blocks = [
        stemma.report.TableOfContents(),
        stemma.report.H1("Curves"),
        stemma.report.PanelGrid(
            runsets=[runs],
            panels=[
                stemma.report.LinePlot(
                    y=["val/acc"], title="Validation accuracy", groupby="config.architecture"
                ),
                stemma.report.LinePlot(y=["train/loss"], title="Training loss", smoothing=0.6),
                stemma.report.BarPlot(metrics=["best_val_acc"], groupby="config.architecture"),
                stemma.report.ScatterPlot(x="config.learning_rate", y="best_val_acc"),
            ],
        ),
        stemma.report.H1("Runs"),
        stemma.report.MarkdownBlock(
            "Each run trains a small numpy classifier on the `tickets` dataset; "
            "its model is logged as an artifact (see the lineage graph)."
        ),
        stemma.report.PanelGrid(
            runsets=[runs],
            panels=[
                stemma.report.RunsTable(
                    columns=["config.architecture", "config.learning_rate", "best_val_acc"]
                ),
                stemma.report.MediaBrowser(media_keys=["val/confusion"]),
            ],
        ),
    ]
    return report.save()


def _log_dataset(project: str, data: Dataset) -> str:
    """The ``preprocess`` run: the dataset's arrays and a CSV of feature statistics."""
    with stemma.init(project=project, job_type="preprocess", tags=["data"]) as run:
        art = stemma.Artifact(
            "tickets",
            type="dataset",
            description="Synthetic support tickets: 32 features, 2 classes",
            metadata={"train": len(data.x_train), "val": len(data.x_val), "features": 32},
        )
        with tempfile.TemporaryDirectory() as tmp:
            arrays = Path(tmp) / "tickets.npz"
            np.savez(
                arrays,
                x_train=data.x_train,
                y_train=data.y_train,
                x_val=data.x_val,
                y_val=data.y_val,
            )
            stats = Path(tmp) / "feature_stats.csv"
            rows = ["feature,mean,std"] + [
                f"f{i},{m:.4f},{s:.4f}"
                for i, (m, s) in enumerate(
                    zip(data.x_train.mean(axis=0), data.x_train.std(axis=0), strict=True)
                )
            ]
            stats.write_text("\n".join(rows) + "\n")
            art.add_file(str(arrays), name="tickets.npz")
            art.add_file(str(stats), name="stats/feature_stats.csv")
            run.log_artifact(art, aliases=["latest"])
        return run.id


def _log_model(run: stemma.sdk.run.Run, model: Classifier, arch: str, lr: float) -> None:
    art = stemma.Artifact(
        f"classifier-{arch}",
        type="model",
        metadata={"architecture": arch, "learning_rate": lr},
    )
    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(tmp) / "weights.npz"
        state: dict[str, Any] = model.state()
        np.savez(weights, **state)
        art.add_file(str(weights), name="weights.npz")
        run.log_artifact(art)


def _confusion_image(model: Classifier, data: Dataset) -> np.ndarray:
    """A 2x2 confusion matrix drawn as a 64x64 heat map (white = many)."""
    pred = model.predict_proba(data.x_val) > 0.5
    truth = data.y_val > 0.5
    counts = np.array(
        [
            [np.sum(~truth & ~pred), np.sum(~truth & pred)],
            [np.sum(truth & ~pred), np.sum(truth & pred)],
        ],
        dtype=np.float64,
    )
    cells = (255 * counts / max(counts.max(), 1)).astype(np.uint8)
    return np.kron(cells, np.ones((32, 32), dtype=np.uint8))


def _report_media(model: Classifier, data: Dataset, arch: str, lr: float) -> dict[str, Any]:
    """A table of validation predictions, a Plotly histogram of scores, an HTML note."""
    scores = model.predict_proba(data.x_val)
    table = stemma.Table(columns=["index", "score", "predicted", "truth", "correct"])
    for i in range(20):
        pred, truth = bool(scores[i] > 0.5), bool(data.y_val[i] > 0.5)
        table.add_data(i, round(float(scores[i]), 4), pred, truth, pred == truth)
    figure = {
        "data": [{"type": "histogram", "x": [round(float(v), 4) for v in scores], "nbinsx": 20}],
        "layout": {"title": {"text": f"validation scores, {arch} lr={lr}"}},
    }
    note = (
        f"<h3>{arch} at learning rate {lr}</h3>"
        f"<p>{int(np.sum((scores > 0.5) == (data.y_val > 0.5)))} of {len(scores)} "
        "validation tickets classified correctly.</p>"
    )
    return {
        "val/predictions": table,
        "val/scores": stemma.Plotly(figure),
        "report": stemma.Html(note),
    }

"""``stemma demo``: the reference's "workflow that stuck", for real, into the current store.

1. ``ingest``: the raw tickets, as CSV files under ``data/raw/``, logged as the dataset
   artifact ``tickets-raw``.
2. ``preprocess``: uses ``tickets-raw:latest``, standardises and splits it (train,
   validation, held-out test) and logs the clean dataset ``tickets``: lineage raw ->
   preprocess -> clean.
3. ``train``: a learning-rate sweep of small numpy classifiers (MLP and logistic
   regression), grouped as ``lr-sweep``. Each run uses ``tickets:latest``, logs curves and
   media (a confusion-matrix image per epoch, a table of validation predictions, a Plotly
   figure, an HTML note) and a checkpoint of its model every few epochs and at the end,
   as versions of one model artifact ``ticket-classifier`` with metadata (epoch,
   validation loss and accuracy, learning rate, architecture, Git SHA). The best final
   checkpoint so far holds ``staging``.
4. ``eval``: downloads ``ticket-classifier:staging``, evaluates it on the test split and
   logs the test metrics; when the test accuracy passes a threshold it moves the
   protected alias ``production`` to that version (the alias history records the move).
5. A live report: curves grouped by architecture, the top runs, the evaluation.

Every call logs through the public SDK exactly as a user script would, except protecting
``production``, which is what ``stemma artifact protect PROJECT production`` does.
"""

from __future__ import annotations

import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import stemma
from stemma.demo.model import Classifier, Dataset, make_raw, preprocess

PROJECT = "stemma-demo"
MODEL = "ticket-classifier"
THRESHOLD = 0.8  # test accuracy the staging model needs to be promoted to production


@dataclass
class DemoResult:
    project: str
    entity: str
    run_ids: list[str]
    report: stemma.Report | None = None
    checkpoints: list[str] = field(default_factory=list)  # "ticket-classifier:vN", in order
    staging: str = ""  # the version the eval run evaluated
    test_metrics: dict[str, float] = field(default_factory=dict)
    threshold: float = THRESHOLD
    promoted: bool = False  # whether production now points at ``staging``


def run_workflow(
    project: str = PROJECT,
    learning_rates: tuple[float, ...] = (0.03, 0.1, 0.3),
    architectures: tuple[str, ...] = ("mlp", "logreg"),
    epochs: int = 12,
    batch_size: int = 64,
    checkpoint_every: int = 4,
    threshold: float = THRESHOLD,
    fast: bool = False,
) -> DemoResult:
    """Ingest, preprocess, the sweep (each run logs per-batch ``train/loss``, per-epoch
    ``val/loss`` / ``val/acc`` and checkpoints), eval and promotion, then the report."""
    if fast:
        epochs, checkpoint_every = 4, 2
    x, y = make_raw(samples=1200 if fast else 4000)
    result = DemoResult(project, "", [], threshold=threshold)
    result.run_ids.append(_ingest(project, x, y))
    result.run_ids.append(_preprocess(project))
    sha = _git_sha()
    best: tuple[float, float] | None = None
    for arch in architectures:
        for lr in learning_rates:
            config = {
                "learning_rate": lr,
                "batch_size": batch_size,
                "epochs": epochs,
                "checkpoint_every": checkpoint_every,
                "architecture": arch,
                "hidden": 32,
                "dataset": "tickets:latest",
            }
            with stemma.init(
                project=project,
                job_type="train",
                group="lr-sweep",
                tags=[arch, "lr-sweep"],
                config=config,
                notes=f"{arch} at learning rate {lr}",
            ) as run:
                data = _load_clean(run.use_artifact("tickets:latest"))
                model = Classifier(data.x_train.shape[1], arch, seed=7)
                rng = np.random.default_rng(1)
                n = len(data.x_train)
                best_acc = 0.0
                for epoch in range(epochs):
                    order = rng.permutation(n)
                    for lo in range(0, n, batch_size):
                        idx = order[lo : lo + batch_size]
                        loss = model.sgd_step(data.x_train[idx], data.y_train[idx], lr)
                        run.log({"train/loss": loss, "epoch": epoch})
                    val_loss, val_acc = model.loss_and_accuracy(data.x_val, data.y_val)
                    best_acc = max(best_acc, val_acc)
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
                    done = epoch + 1
                    if done % checkpoint_every and done != epochs:
                        continue
                    aliases = []
                    if done == epochs and (best is None or (val_acc, -val_loss) > best):
                        best = (val_acc, -val_loss)  # the best final checkpoint so far
                        aliases = ["staging"]
                    meta = {
                        "epoch": done,
                        "val_loss": round(val_loss, 6),
                        "val_acc": round(val_acc, 6),
                        "learning_rate": lr,
                        "architecture": arch,
                        "final": done == epochs,
                    } | ({"git_sha": sha} if sha else {})
                    result.checkpoints.append(_log_checkpoint(run, model, meta, aliases))
                run.log(_report_media(model, data, arch, lr))
                run.summary["best_val_acc"] = best_acc
                result.run_ids.append(run.id)
                result.entity = run.entity
    _protect(project, result.entity, "production")
    _evaluate(project, result)
    result.report = _save_report(project, result)
    return result


def _git_sha() -> str | None:
    """The commit of the code that trains, when it runs in a Git checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def _ingest(project: str, x: np.ndarray, y: np.ndarray) -> str:
    """The ``ingest`` run: the raw tickets as CSV files, the dataset ``tickets-raw``."""
    with stemma.init(project=project, job_type="ingest", tags=["data"]) as run:
        art = stemma.Artifact(
            "tickets-raw",
            type="dataset",
            description="Customer support tickets (raw): 32 numeric features and a label",
            metadata={"rows": len(x), "features": x.shape[1], "format": "csv"},
        )
        with tempfile.TemporaryDirectory() as tmp:
            raw = Path(tmp) / "data" / "raw"
            raw.mkdir(parents=True)
            header = ",".join(f"f{i}" for i in range(x.shape[1]))
            np.savetxt(
                raw / "features.csv", x, fmt="%.6f", delimiter=",", header=header, comments=""
            )
            np.savetxt(raw / "labels.csv", y, fmt="%d", header="label", comments="")
            art.add_dir(str(raw))
            run.log_artifact(art)
        return run.id


def _preprocess(project: str) -> str:
    """The ``preprocess`` run: uses ``tickets-raw``, logs the clean dataset ``tickets``
    (standardised splits and a CSV of the raw features' statistics)."""
    with stemma.init(project=project, job_type="preprocess", tags=["data"]) as run:
        raw_art = run.use_artifact("tickets-raw:latest")
        with tempfile.TemporaryDirectory() as tmp:
            raw = Path(raw_art.download(root=tmp))
            x = np.loadtxt(raw / "features.csv", delimiter=",", skiprows=1, ndmin=2)
            y = np.loadtxt(raw / "labels.csv", skiprows=1)
        data, mean, std = preprocess(x, y)
        art = stemma.Artifact(
            "tickets",
            type="dataset",
            description="Support tickets, standardised and split into train/val/test",
            metadata={
                "train": len(data.x_train),
                "val": len(data.x_val),
                "test": len(data.x_test),
                "features": x.shape[1],
            },
        )
        with tempfile.TemporaryDirectory() as tmp:
            arrays = Path(tmp) / "tickets.npz"
            np.savez(arrays, **vars(data))
            stats = Path(tmp) / "feature_stats.csv"
            rows = ["feature,mean,std"] + [
                f"f{i},{m:.4f},{s:.4f}" for i, (m, s) in enumerate(zip(mean, std, strict=True))
            ]
            stats.write_text("\n".join(rows) + "\n")
            art.add_file(str(arrays), name="tickets.npz")
            art.add_file(str(stats), name="stats/feature_stats.csv")
            run.log_artifact(art)
        return run.id


def _load_clean(art: stemma.Artifact) -> Dataset:
    return Dataset(**_load_npz(art, "tickets.npz"))


def _load_npz(art: stemma.Artifact, name: str) -> dict[str, np.ndarray]:
    """The arrays of the artifact's file ``name`` (downloaded to a temporary directory, so
    the demo leaves no ``./artifacts`` behind)."""
    with tempfile.TemporaryDirectory() as tmp, np.load(Path(art.download(root=tmp)) / name) as f:
        return {k: f[k] for k in f.files}


def _log_checkpoint(
    run: stemma.sdk.run.Run, model: Classifier, meta: dict[str, Any], aliases: list[str]
) -> str:
    art = stemma.Artifact(
        MODEL,
        type="model",
        description=f"{meta['architecture']} at learning rate {meta['learning_rate']}, "
        f"epoch {meta['epoch']}",
        metadata=meta,
    )
    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(tmp) / "weights.npz"
        state: dict[str, Any] = model.state()
        np.savez(weights, **state)
        art.add_file(str(weights), name="weights.npz")
        logged = run.log_artifact(art, aliases=aliases)
    return str(logged.name)


def _protect(project: str, entity: str, alias: str) -> None:
    """Make ``alias`` a protected alias of the project (only team admins move it), as
    ``stemma artifact protect PROJECT ALIAS`` does."""
    backend = stemma.Api()._backend
    current = backend.get_protected_aliases(entity, project)
    if alias not in current:
        backend.set_protected_aliases(entity, project, sorted({*current, alias}))


def _evaluate(project: str, result: DemoResult) -> None:
    """The ``eval`` run: ``ticket-classifier:staging`` on the held-out test split; moves
    ``production`` to it when the test accuracy reaches the threshold."""
    config = {
        "model": f"{MODEL}:staging",
        "dataset": "tickets:latest",
        "threshold": result.threshold,
    }
    with stemma.init(project=project, job_type="eval", tags=["eval"], config=config) as run:
        model_art = run.use_artifact(f"{MODEL}:staging")
        model = Classifier.from_state(_load_npz(model_art, "weights.npz"))
        data = _load_clean(run.use_artifact("tickets:latest"))
        loss, acc = model.loss_and_accuracy(data.x_test, data.y_test)
        pred = model.predict_proba(data.x_test) > 0.5
        truth = data.y_test > 0.5
        tp = float(np.sum(pred & truth))
        precision = tp / max(float(np.sum(pred)), 1.0)
        recall = tp / max(float(np.sum(truth)), 1.0)
        f1 = 2 * precision * recall / max(precision + recall, 1e-12)
        metrics = {
            "test/loss": loss,
            "test/acc": acc,
            "test/precision": precision,
            "test/recall": recall,
            "test/f1": f1,
        }
        confusion = stemma.Table(columns=["truth", "predicted", "count"])
        for t in (False, True):
            for p in (False, True):
                confusion.add_data(t, p, int(np.sum((truth == t) & (pred == p))))
        run.log({**metrics, "test/confusion": confusion})
        result.staging = str(model_art.name)
        result.test_metrics = metrics
        result.promoted = acc >= result.threshold
        run.summary["model_version"] = result.staging
        run.summary["promoted"] = result.promoted
        model_art.metadata = {
            **model_art.metadata,
            "test_acc": round(acc, 6),
            "test_loss": round(loss, 6),
        }
        if result.promoted and "production" not in model_art.aliases:
            model_art.aliases.append("production")
        model_art.save()
        result.run_ids.append(run.id)


def _save_report(project: str, result: DemoResult) -> stemma.Report:
    """Curves grouped by architecture, the top runs, the media, the evaluation."""
    report = stemma.Report(
        project=project,
        entity=result.entity,
        title="Ticket classifier: sweep, evaluation, promotion",
        description="Live: every train run of the project grouped by architecture, the "
        "top runs by validation accuracy, and the evaluation of the staging model.",
    )
    runs = stemma.report.Runset(filters={"job_type": "train"}, name="Train runs")
    top = stemma.report.Runset(
        filters={"job_type": "train"}, name="Top runs", order="-summary.best_val_acc"
    )
    evals = stemma.report.Runset(filters={"job_type": "eval"}, name="Eval runs")
    acc = result.test_metrics.get("test/acc", float("nan"))
    verdict = (
        f"passes the threshold {result.threshold:.2f}, so `production` (a protected alias) "
        "now points at it"
        if result.promoted
        else f"misses the threshold {result.threshold:.2f}, so `production` did not move"
    )
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
        stemma.report.H1("Top runs"),
        stemma.report.MarkdownBlock(
            "Each run trains a small numpy classifier on the `tickets` dataset (preprocessed "
            f"from `tickets-raw`) and checkpoints it as a version of `{MODEL}`; see the "
            "lineage graph."
        ),
        stemma.report.PanelGrid(
            runsets=[top],
            panels=[
                stemma.report.RunsTable(
                    columns=[
                        "config.architecture",
                        "config.learning_rate",
                        "best_val_acc",
                        "val/acc",
                        "val/loss",
                    ],
                    title="Train runs by best validation accuracy",
                ),
                stemma.report.MediaBrowser(media_keys=["val/confusion"]),
            ],
        ),
        stemma.report.H1("Evaluation"),
        stemma.report.MarkdownBlock(
            f"`{MODEL}:staging` ({result.staging}) scored a test accuracy of {acc:.3f} on "
            f"the held-out split: it {verdict}."
        ),
        stemma.report.PanelGrid(
            runsets=[evals],
            panels=[
                stemma.report.RunsTable(
                    columns=["model_version", "test/acc", "test/loss", "test/f1", "promoted"],
                    title="Evaluation",
                )
            ],
        ),
    ]
    return report.save()


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

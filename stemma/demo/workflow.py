"""``stemma demo``: a learning-rate sweep of real (small) models into the current store.

Every call logs through the public SDK exactly as a user script would.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import stemma
from stemma.demo.model import Classifier, make_dataset

PROJECT = "stemma-demo"


@dataclass
class DemoResult:
    project: str
    entity: str
    run_ids: list[str]


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
    run_ids: list[str] = []
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
                        {"val/loss": val_loss, "val/acc": val_acc, "epoch": epoch}, commit=False
                    )
                run.summary["best_val_acc"] = best
                run_ids.append(run.id)
                entity = run.entity
    return DemoResult(project, entity, run_ids)

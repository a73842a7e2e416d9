"""The framework integrations train for real (tiny models, random data, CPU) through the real
SDK, and what they logged is read back with ``stemma.Api``: history rows at the trainer's
steps with the values the trainer reported, config, summary, model artifact versions
with their aliases and metadata, and the run's final state.

PyTorch Lightning (``StemmaLogger``), transformers (``StemmaCallback``) and Keras 3 on the
torch backend (``StemmaMetricsLogger``). Nothing is downloaded: models are built from
configs, and the Hugging Face hub is switched off.
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path
from typing import Any

import pytest

import stemma
from tests.conftest import run_python

# Before any framework is imported: no hub access, and Keras 3 on the torch backend.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("KERAS_BACKEND", "torch")

pytestmark = [
    pytest.mark.sqlite_and_server,
    pytest.mark.filterwarnings("ignore:.*LeafSpec.*is deprecated"),  # inside Lightning
]


def _rows(run: Any) -> list[dict[str, Any]]:
    """The run's history as dicts without the NaN holes of the DataFrame."""
    frame = run.history()
    return [
        {k: v for k, v in row.items() if not (isinstance(v, float) and math.isnan(v))}
        for row in frame.to_dict("records")
    ]


# ---------------------------------------------------------------------- Lightning


def _lightning_setup(tmp_path: Path) -> tuple[Any, Any, Any]:
    """A 2-layer MLP on 32 random samples (4 batches an epoch) that records the loss it
    reported at each global step, and its train and validation loaders."""
    torch = pytest.importorskip("torch")
    pl = pytest.importorskip("lightning.pytorch")
    from torch.utils.data import DataLoader, TensorDataset

    class TinyModel(pl.LightningModule):
        def __init__(self, lr: float = 0.1, hidden: int = 8) -> None:
            super().__init__()
            self.save_hyperparameters()
            self.net = torch.nn.Sequential(
                torch.nn.Linear(4, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 1)
            )
            self.reported: dict[int, float] = {}

        def training_step(self, batch: Any, _idx: int) -> Any:
            x, y = batch
            loss = torch.nn.functional.mse_loss(self.net(x), y)
            self.log("train_loss", loss)
            self.reported[self.global_step] = loss.item()
            return loss

        def validation_step(self, batch: Any, _idx: int) -> None:
            x, y = batch
            self.log("val_loss", torch.nn.functional.mse_loss(self.net(x), y))

        def configure_optimizers(self) -> Any:
            return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)

    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    data = TensorDataset(torch.randn(32, 4, generator=gen), torch.randn(32, 1, generator=gen))
    return TinyModel(), DataLoader(data, batch_size=8), DataLoader(data, batch_size=16)


def _trainer(tmp_path: Path, logger: Any, callbacks: list[Any]) -> Any:
    import lightning.pytorch as pl

    return pl.Trainer(
        max_epochs=2,
        logger=logger,
        callbacks=callbacks,
        log_every_n_steps=1,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(tmp_path),
        accelerator="cpu",
        num_sanity_val_steps=0,
    )


def test_lightning_logger_logs_metrics_config_and_every_checkpoint(
    tmp_path: Path, api: stemma.Api
) -> None:
    model, train, val = _lightning_setup(tmp_path)
    import lightning.pytorch as pl

    from stemma.integrations.lightning import StemmaLogger, WandbLogger

    assert WandbLogger is StemmaLogger
    assert isinstance(StemmaLogger(), pl.loggers.Logger)
    logger = WandbLogger(
        project="pl",
        name="tiny-mlp",
        tags=["lightning"],
        group="g",
        job_type="train",
        config={"batch_size": 8},
        log_model="all",
        save_dir=str(tmp_path),
    )
    checkpoint = pl.callbacks.ModelCheckpoint(monitor="val_loss", save_top_k=2)
    trainer = _trainer(tmp_path, logger, [checkpoint])
    trainer.fit(model, train, val)

    run = logger.experiment
    assert (logger.name, logger.version, logger.save_dir) == ("pl", run.id, str(tmp_path))
    r = api.run(run.path)
    assert r.state == "finished"
    assert (r.name, r.group, r.job_type, list(r.tags)) == ("tiny-mlp", "g", "train", ["lightning"])
    assert r.config["lr"] == 0.1
    assert r.config["hidden"] == 8
    assert r.config["batch_size"] == 8

    rows = _rows(r)
    train_rows = {row["_step"]: row for row in rows if "train_loss" in row}
    assert sorted(train_rows) == sorted(model.reported) == list(range(8))
    for step, loss in model.reported.items():
        assert train_rows[step]["train_loss"] == pytest.approx(loss, rel=1e-6)
        assert train_rows[step]["trainer/global_step"] == step
    val_rows = [row for row in rows if "val_loss" in row]
    assert [row["epoch"] for row in val_rows] == [0, 1]
    final_val = float(trainer.callback_metrics["val_loss"])
    assert val_rows[-1]["val_loss"] == pytest.approx(final_val, rel=1e-6)
    assert r.summary["val_loss"] == pytest.approx(final_val, rel=1e-6)

    versions = api.artifact_versions("model", f"pl/model-{run.id}")
    assert [v.version for v in versions] == ["v0", "v1"]  # one per epoch, as saved
    by_file = {v.metadata["original_filename"]: v for v in versions}
    assert set(by_file) == {Path(p).name for p in checkpoint.best_k_models}
    for path, score in checkpoint.best_k_models.items():
        meta = by_file[Path(path).name].metadata
        assert meta["score"] == pytest.approx(float(score), rel=1e-6)
        assert meta["ModelCheckpoint"]["monitor"] == "val_loss"
    assert [v.metadata["step"] for v in versions] == [4, 8]
    assert "latest" in versions[-1].aliases
    best = by_file[Path(checkpoint.best_model_path).name]
    assert "best" in best.aliases
    assert [f.path for f in versions[0].files()] == ["model.ckpt"]
    assert len(r.logged_artifacts()) == 2

    # The trainer used again after fit: the finished run is resumed, not replaced.
    trainer.validate(model, val, verbose=False)
    assert logger.experiment.id == run.id
    r = api.run(run.path)
    assert r.state == "finished"
    assert _rows(r)[-1]["val_loss"] == pytest.approx(
        float(trainer.callback_metrics["val_loss"]), rel=1e-6
    )


def test_lightning_log_model_true_logs_kept_checkpoints_into_the_users_run(
    tmp_path: Path, api: stemma.Api
) -> None:
    model, train, val = _lightning_setup(tmp_path)
    import lightning.pytorch as pl

    from stemma.integrations.lightning import StemmaLogger

    with stemma.init(project="pl", config={"owner": "me"}) as run:
        logger = StemmaLogger(log_model=True, checkpoint_name="mlp", save_dir=str(tmp_path))
        checkpoint = pl.callbacks.ModelCheckpoint(monitor="val_loss", save_top_k=1)
        _trainer(tmp_path, logger, [checkpoint]).fit(model, train, val)
        assert logger.experiment is run
        assert not run.finished  # the user's run: the logger leaves it open
        run.log({"after": 1.0})
    r = api.run(run.path)
    assert r.state == "finished"
    assert r.config["owner"] == "me"
    assert r.config["lr"] == 0.1
    versions = api.artifact_versions("model", "pl/mlp")
    assert len(versions) == 1  # logged once, at the end
    assert sorted(versions[0].aliases) == ["best", "latest"]
    assert versions[0].metadata["score"] == pytest.approx(float(checkpoint.best_model_score))
    assert "after" in _rows(r)[-1]


# ---------------------------------------------------------------------- transformers


def _hf_trainer(tmp_path: Path, callback: Any, **args: Any) -> Any:
    """A one-layer BERT with a 100-token vocabulary built from its config (no download),
    trained 6 steps on 16 random sequences, logging every 2 and evaluating every 3."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("accelerate")

    class RandomTokens(torch.utils.data.Dataset):
        def __init__(self, n: int) -> None:
            gen = torch.Generator().manual_seed(n)
            self.x = torch.randint(0, 100, (n, 8), generator=gen)
            self.y = torch.randint(0, 2, (n,), generator=gen)

        def __len__(self) -> int:
            return len(self.x)

        def __getitem__(self, i: int) -> dict[str, Any]:
            return {"input_ids": self.x[i], "labels": self.y[i]}

    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=100,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=16,
        num_labels=2,
    )
    model = transformers.BertForSequenceClassification(config)
    defaults: dict[str, Any] = {
        "output_dir": str(tmp_path / "out"),
        "max_steps": 6,
        "per_device_train_batch_size": 4,
        "logging_steps": 2,
        "eval_strategy": "steps",
        "eval_steps": 3,
        "save_strategy": "steps",
        "save_steps": 3,
        "report_to": "none",
        "use_cpu": True,
        "learning_rate": 1e-3,
        "disable_tqdm": True,
        "run_name": "tiny-bert",
    }
    defaults.update(args)
    return transformers.Trainer(
        model=model,
        args=transformers.TrainingArguments(**defaults),
        train_dataset=RandomTokens(16),
        eval_dataset=RandomTokens(8),
        callbacks=[callback],
    )


def test_huggingface_callback_logs_metrics_config_and_checkpoints(
    tmp_path: Path, api: stemma.Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WANDB_LOG_MODEL", "checkpoint")  # W&B's variable is honoured
    monkeypatch.setenv("WANDB_PROJECT", "hf")
    from stemma.integrations.huggingface import StemmaCallback, WandbCallback

    assert WandbCallback is StemmaCallback
    callback = WandbCallback()
    trainer = _hf_trainer(tmp_path, callback)
    trainer.train()

    run = callback.run
    assert run is not None
    r = api.run(run.path)
    assert (r.state, r.project, r.name) == ("finished", "hf", "tiny-bert")
    assert r.config["learning_rate"] == 1e-3  # TrainingArguments
    assert r.config["max_steps"] == 6
    assert r.config["hidden_size"] == 16  # the model's config
    assert r.config["model/num_parameters"] == trainer.model.num_parameters()

    rows = {row["_step"]: row for row in _rows(r)}
    log_history = trainer.state.log_history
    train_logs = [e for e in log_history if "loss" in e]
    eval_logs = [e for e in log_history if "eval_loss" in e]
    assert [e["step"] for e in train_logs] == [2, 4, 6]
    assert [e["step"] for e in eval_logs] == [3, 6]
    assert sorted(rows) == [2, 3, 4, 6]
    for entry in train_logs:
        row = rows[entry["step"]]
        assert row["train/loss"] == pytest.approx(entry["loss"])
        assert row["train/learning_rate"] == pytest.approx(entry["learning_rate"])
        assert row["train/global_step"] == entry["step"]
    for entry in eval_logs:
        assert rows[entry["step"]]["eval/loss"] == pytest.approx(entry["eval_loss"])
    totals = log_history[-1]
    assert r.summary["train_loss"] == pytest.approx(totals["train_loss"])
    assert r.summary["train_runtime"] == pytest.approx(totals["train_runtime"])
    assert "train/train_loss" not in r.summary  # totals are summary values, not history

    versions = api.artifact_versions("model", f"hf/model-{run.id}")
    assert [sorted(v.aliases) for v in versions] == [
        ["checkpoint_global_step_3", "epoch_0.75"],
        ["checkpoint_global_step_6", "epoch_1.5"],
        ["final", "latest"],
    ]
    assert [v.metadata["global_step"] for v in versions] == [3, 6, 6]
    assert versions[0].metadata["eval/loss"] == pytest.approx(eval_logs[0]["eval_loss"])
    checkpoint_files = {f.path for f in versions[0].files()}
    assert {"config.json", "model.safetensors"} <= checkpoint_files
    assert "optimizer.pt" in checkpoint_files  # a whole checkpoint directory
    assert {f.path for f in versions[-1].files()} >= {"config.json", "model.safetensors"}

    # evaluate() after train(): the callback's finished run is resumed, not replaced.
    metrics = trainer.evaluate()
    assert callback.run is not None and callback.run.id == run.id
    stemma.finish()
    r = api.run(run.path)
    assert r.state == "finished"
    assert _rows(r)[-1]["eval/loss"] == pytest.approx(metrics["eval_loss"])


def test_huggingface_log_model_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("transformers")
    from stemma.errors import UsageError
    from stemma.integrations.huggingface import StemmaCallback, rewrite_logs

    assert StemmaCallback()._log_model == "false"
    monkeypatch.setenv("WANDB_LOG_MODEL", "true")  # W&B's old spelling of "end"
    assert StemmaCallback()._log_model == "end"
    monkeypatch.setenv("STEMMA_LOG_MODEL", "checkpoint")  # ours wins
    assert StemmaCallback()._log_model == "checkpoint"
    with pytest.raises(UsageError, match="end, checkpoint"):
        StemmaCallback(log_model="sometimes")
    assert rewrite_logs({"loss": 1, "eval_acc": 2, "test_f1": 3}) == {
        "train/loss": 1,
        "eval/acc": 2,
        "test/f1": 3,
    }


# ---------------------------------------------------------------------- Keras


@pytest.mark.filterwarnings(  # Keras's own torch backend, with numpy 2
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
)
def test_keras_metrics_logger_logs_batches_and_epochs(api: stemma.Api) -> None:
    if os.environ.get("KERAS_BACKEND") != "torch":
        pytest.skip("Keras is tested on the torch backend (KERAS_BACKEND=torch)")
    np = pytest.importorskip("numpy")
    keras = pytest.importorskip("keras")
    from stemma.integrations.keras import StemmaMetricsLogger, WandbMetricsLogger

    assert WandbMetricsLogger is StemmaMetricsLogger
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1)]
    )
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse", metrics=["mae"])
    x = np.random.default_rng(0).normal(size=(32, 4)).astype("float32")
    y = x.sum(axis=1, keepdims=True)
    callback = WandbMetricsLogger(log_freq="batch", project="keras", config={"units": 8})
    history = model.fit(
        x, y, batch_size=8, epochs=2, validation_data=(x, y), callbacks=[callback], verbose=0
    )

    assert callback.run is not None
    r = api.run(callback.run.path)
    assert r.state == "finished"
    assert r.config["units"] == 8
    rows = _rows(r)
    batch_rows = [row for row in rows if "batch/loss" in row]
    epoch_rows = [row for row in rows if "epoch/loss" in row]
    assert [row["batch/batch_step"] for row in batch_rows] == list(range(1, 9))
    assert [row["epoch/epoch"] for row in epoch_rows] == [0, 1]
    for key in ("loss", "mae", "val_loss", "val_mae"):
        logged = [row[f"epoch/{key}"] for row in epoch_rows]
        assert logged == pytest.approx(history.history[key], rel=1e-6)
    assert epoch_rows[0]["epoch/learning_rate"] == pytest.approx(0.05)


# ---------------------------------------------------------------------- imports


@pytest.mark.sqlite_only
def test_import_stemma_imports_no_framework() -> None:
    proc = run_python(
        """
        import sys
        import stemma, stemma.integrations
        heavy = {"torch", "lightning", "pytorch_lightning", "transformers", "keras"}
        print(sorted(heavy & set(sys.modules)))
        """
    )
    assert proc.stdout.strip() == "[]"


@pytest.mark.sqlite_only
@pytest.mark.parametrize(
    ("module", "blocked", "package"),
    [
        ("lightning", ["lightning.pytorch.loggers", "pytorch_lightning.loggers"], "lightning"),
        ("pytorch_lightning", ["pytorch_lightning.loggers"], "pytorch-lightning"),
        ("huggingface", ["transformers"], "transformers"),
        ("keras", ["keras"], "keras"),
    ],
)
def test_missing_framework_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, module: str, blocked: list[str], package: str
) -> None:
    import importlib

    for name in blocked:
        monkeypatch.setitem(sys.modules, name, None)  # makes `import name` fail
    monkeypatch.delitem(sys.modules, f"stemma.integrations.{module}", raising=False)
    with pytest.raises(ImportError, match=f"pip install {package}"):
        importlib.import_module(f"stemma.integrations.{module}")

"""Hugging Face ``transformers``: ``StemmaCallback`` (``WandbCallback``) logs a ``Trainer``'s
arguments, model config, metrics and (optionally) checkpoints to Stemma.

    from stemma.integrations.huggingface import StemmaCallback
    trainer = Trainer(model, args, train_dataset=ds, callbacks=[StemmaCallback()])

``report_to="wandb"`` is not needed (nor W&B installed): pass the callback yourself,
and set ``report_to="none"`` so the trainer does not look for other loggers.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

import stemma
from stemma.errors import UsageError
from stemma.integrations._common import OwnedRun, clean_config, log_at_step, missing, to_number

try:
    from transformers import TrainerCallback
except ImportError:  # pragma: no cover - depends on what is installed
    raise missing("transformers", "huggingface") from None

# What the trainer reports once, at the end of training: summary values, not history
# (as W&B's callback treats them).
SINGLE_VALUE_SCALARS = frozenset(
    (
        "train_runtime",
        "train_samples_per_second",
        "train_steps_per_second",
        "train_loss",
        "total_flos",
    )
)
LOG_MODEL_CHOICES = ("false", "end", "checkpoint")


def rewrite_logs(logs: dict[str, Any]) -> dict[str, Any]:
    """W&B's key layout: ``eval_loss`` -> ``eval/loss``, ``test_x`` -> ``test/x``,
    anything else -> ``train/<key>``, so dashboards and queries written for W&B work."""
    out: dict[str, Any] = {}
    for key, value in logs.items():
        if key.startswith("eval_"):
            out["eval/" + key[len("eval_") :]] = value
        elif key.startswith("test_"):
            out["test/" + key[len("test_") :]] = value
        else:
            out["train/" + key] = value
    return out


def _log_model_setting(value: str | bool | None) -> str:
    """``log_model`` from the argument, else ``STEMMA_LOG_MODEL``, else ``WANDB_LOG_MODEL``:
    ``end``, ``checkpoint`` or ``false`` (W&B's old ``true`` means ``end``)."""
    if value is None:
        value = os.environ.get("STEMMA_LOG_MODEL") or os.environ.get("WANDB_LOG_MODEL") or "false"
    text = str(value).strip().lower()
    if text in ("true", "1", "yes"):
        text = "end"
    elif text in ("", "0", "no", "none"):
        text = "false"
    if text not in LOG_MODEL_CHOICES:
        raise UsageError(
            f"log_model (or STEMMA_LOG_MODEL / WANDB_LOG_MODEL) must be one of "
            f"{', '.join(LOG_MODEL_CHOICES)}, got {value!r}"
        )
    return text


class StemmaCallback(TrainerCallback):
    """A ``transformers.TrainerCallback`` that logs to Stemma as ``WandbCallback`` logs to W&B.

    - **train begin**: uses the open run, or starts one (project ``STEMMA_PROJECT``,
      ``WANDB_PROJECT`` or ``huggingface``; name ``args.run_name``) and puts the model's
      config and the ``TrainingArguments`` in the run's config (arguments win on a
      clash), plus ``model/num_parameters``.
    - **log**: every ``logs`` dict at ``state.global_step`` (also under
      ``train/global_step``), keys as W&B writes them (``train/loss``, ``eval/loss``);
      the end-of-training totals (``train_runtime``, ``train_loss``...) go to the summary.
    - **save**: with ``log_model="checkpoint"`` (or ``STEMMA_LOG_MODEL`` /
      ``WANDB_LOG_MODEL``), each checkpoint directory becomes a version of the ``model``
      artifact ``model-<run id>``, with aliases ``epoch_<epoch>`` and
      ``checkpoint_global_step_<step>`` and the run's numeric summary as metadata.
    - **train end**: with ``log_model="end"`` or ``"checkpoint"``, the final model
      (``save_pretrained``, and the tokenizer's) is logged the same way; then a run the
      callback started is finished. A later ``trainer.evaluate()`` resumes it.

    Keyword arguments (``project``, ``entity``, ``name``, ``tags``, ``group``...) go to
    ``stemma.init``.
    """

    def __init__(self, log_model: str | bool | None = None, **init_kwargs: Any) -> None:
        self._log_model_arg = log_model
        self._log_model = _log_model_setting(log_model)
        self._init_kwargs = init_kwargs
        self._owned: OwnedRun | None = None
        self._latest: dict[str, Any] = {}  # last values logged, committed to history or not

    @property
    def run(self) -> stemma.Run | None:
        """The run being logged to (None before training starts)."""
        return self._owned.run if self._owned is not None else None

    # ------------------------------------------------------------------ setup
    def setup(self, args: Any, state: Any, model: Any, **kwargs: Any) -> None:
        """Open (or pick up) the run and record the configuration; rank 0 only."""
        if not state.is_world_process_zero:
            return
        self._log_model = _log_model_setting(self._log_model_arg)
        config: dict[str, Any] = {}
        model_config = getattr(model, "config", None)
        if model_config is not None and hasattr(model_config, "to_dict"):
            config.update(model_config.to_dict())
        config.update(args.to_dict())
        num_parameters = getattr(model, "num_parameters", None)
        if callable(num_parameters):
            config["model/num_parameters"] = num_parameters()
        init = {
            "project": os.environ.get("STEMMA_PROJECT")
            or os.environ.get("WANDB_PROJECT")
            or "huggingface",
        }
        run_name = getattr(args, "run_name", None)
        if run_name and run_name != getattr(args, "output_dir", None):
            init["name"] = run_name
        init.update(self._init_kwargs)
        if self._owned is None:
            self._owned = OwnedRun(init)
        run = self._owned.get()
        run.config.update(clean_config(config))

    def _run(self) -> stemma.Run | None:
        return self._owned.get() if self._owned is not None else None

    # ------------------------------------------------------------------ events
    def on_train_begin(
        self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any
    ) -> None:
        self.setup(args, state, model, **kwargs)

    def on_log(
        self,
        args: Any,
        state: Any,
        control: Any,
        model: Any = None,
        logs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if not state.is_world_process_zero or not logs:
            return
        if self._owned is None:  # trainer.evaluate() without training first
            self.setup(args, state, model)
        run = self._run()
        if run is None:
            return
        history: dict[str, Any] = {}
        for key, value in logs.items():
            number = to_number(value)
            if number is None:
                continue
            if key in SINGLE_VALUE_SCALARS:
                run.summary[key] = number
            else:
                history[key] = number
        if history:
            row = rewrite_logs(history)
            row["train/global_step"] = state.global_step
            self._latest.update(row)
            log_at_step(run, row, state.global_step)

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self._log_model != "checkpoint" or not state.is_world_process_zero:
            return
        run = self._run()
        if run is None:
            return
        path = os.path.join(args.output_dir, f"checkpoint-{state.global_step}")
        if not os.path.isdir(path):
            return
        metadata = self._metadata(run, state)
        artifact = stemma.Artifact(f"model-{run.id}", type="model", metadata=metadata)
        artifact.add_dir(path)
        epoch = round(float(state.epoch or 0), 2)
        run.log_artifact(
            artifact,
            aliases=[f"epoch_{epoch}", f"checkpoint_global_step_{state.global_step}"],
        )

    def on_train_end(
        self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any
    ) -> None:
        if not state.is_world_process_zero or self._owned is None:
            return
        run = self._run()
        if run is None:
            return
        if self._log_model in ("end", "checkpoint") and model is not None:
            self._log_final_model(run, state, model, kwargs)
        self._owned.finish()

    # ------------------------------------------------------------------ helpers
    def _metadata(self, run: stemma.Run, state: Any) -> dict[str, Any]:
        """The run's numeric summary as W&B records it (with the values logged at the
        current step, which reach the summary only when the step's row is written), the
        model's size, and where training was."""
        values = dict(run.summary)
        values.update(self._latest)
        metadata = {
            k: v
            for k, v in values.items()
            if not k.startswith("_") and to_number(v) is not None and not isinstance(v, str)
        }
        if "model/num_parameters" in run.config:
            metadata["model/num_parameters"] = run.config["model/num_parameters"]
        metadata["global_step"] = state.global_step
        metadata["epoch"] = float(state.epoch) if state.epoch is not None else None
        return clean_config(metadata)

    def _log_final_model(
        self, run: stemma.Run, state: Any, model: Any, kwargs: dict[str, Any]
    ) -> None:
        """``save_pretrained`` the model (and its tokenizer or processor) into a temporary
        directory and log it as the next version of ``model-<run id>``."""
        if not hasattr(model, "save_pretrained"):
            return
        with tempfile.TemporaryDirectory(prefix="stemma-model-") as tmp:
            model.save_pretrained(tmp)
            processor = kwargs.get("processing_class")
            if processor is None:
                processor = kwargs.get("tokenizer")
            if processor is not None and hasattr(processor, "save_pretrained"):
                processor.save_pretrained(tmp)
            metadata = self._metadata(run, state)
            artifact = stemma.Artifact(f"model-{run.id}", type="model", metadata=metadata)
            artifact.add_dir(tmp)
            run.log_artifact(artifact, aliases=["final"])


WandbCallback = StemmaCallback
"""W&B's name, for scripts that write ``from ... import WandbCallback``."""

__all__ = ["StemmaCallback", "WandbCallback", "rewrite_logs"]

"""The body of the PyTorch Lightning logger, shared by ``lightning`` and ``pytorch_lightning``.

The two packages ship separate ``Logger`` base classes, and a trainer only accepts a
logger derived from its own package's, so :mod:`stemma.integrations.lightning` and
:mod:`stemma.integrations.pytorch_lightning` each derive their ``StemmaLogger`` from
this class and their package's ``Logger``. Nothing here imports either package.
"""

from __future__ import annotations

import os
import re
from argparse import Namespace
from pathlib import Path
from typing import Any

import stemma
from stemma.errors import UsageError
from stemma.integrations._common import OwnedRun, clean_config, log_at_step, to_number

# ModelCheckpoint settings recorded in each checkpoint version's metadata (as W&B does).
_CHECKPOINT_SETTINGS = (
    "monitor",
    "mode",
    "save_last",
    "save_top_k",
    "save_weights_only",
    "_every_n_train_steps",
    "_every_n_epochs",
)
_STEP_IN_NAME = re.compile(r"step=(\d+)")


def _rank() -> int:
    """This process's rank as Lightning sets it (0 when not distributed)."""
    try:
        from lightning_utilities.core.rank_zero import rank_zero_only
    except ImportError:  # pragma: no cover - both Lightning packages depend on it
        return 0
    return int(getattr(rank_zero_only, "rank", 0) or 0)


class _NoExperiment:
    """What ``experiment`` is on ranks other than 0: every call is accepted and dropped,
    so ``logger.experiment.log(...)`` in a LightningModule works under DDP."""

    def _nop(self, *args: Any, **kwargs: Any) -> None:
        return None

    def __getattr__(self, _name: str) -> Any:
        return self._nop

    def __getitem__(self, _idx: Any) -> _NoExperiment:
        return self

    def __setitem__(self, *args: Any) -> None:
        return None


class StemmaLoggerBase:
    """Logs a Lightning run to Stemma the way ``WandbLogger`` logs it to W&B.

    Arguments are W&B's: ``project`` (default ``STEMMA_PROJECT``, ``WANDB_PROJECT`` or
    ``lightning_logs``), ``name``, ``entity``, ``id`` (or ``version``) to resume a run,
    ``tags``, ``group``, ``job_type``, ``config``, ``save_dir`` (where Lightning writes
    checkpoints; not where the store is, which is ``STEMMA_DIR`` or the server),
    ``offline`` (spool only; upload with ``stemma sync``), ``prefix`` for
    metric keys, ``checkpoint_name`` (default ``model-<run id>``), ``experiment`` (a run
    to log into), and ``log_model``:

    - ``False``: no checkpoints are uploaded;
    - ``True``: the checkpoints ``ModelCheckpoint`` kept are logged as versions of a
      ``model`` artifact when training ends (as they are saved when ``save_top_k=-1``);
    - ``"all"``: every checkpoint is logged as it is saved.

    Each version holds ``model.ckpt`` and metadata ``score``, ``step``,
    ``original_filename`` and the checkpoint callback's settings; ``latest`` moves to the
    newest and ``best`` to the best one. Other keyword arguments go to ``stemma.init``.

    Metrics are logged at Lightning's global step (also under ``trainer/global_step``,
    W&B's key). A run the logger started is finished when the trainer finalizes
    (``failed`` if training raised); logging again afterwards (``trainer.test()``)
    resumes it. A run that was already open is used and left open.
    """

    LOGGER_JOIN_CHAR = "-"

    def __init__(
        self,
        name: str | None = None,
        save_dir: str | os.PathLike[str] | None = None,
        version: str | None = None,
        offline: bool = False,
        dir: str | os.PathLike[str] | None = None,
        id: str | None = None,
        anonymous: bool | None = None,
        project: str | None = None,
        log_model: bool | str = False,
        experiment: stemma.Run | None = None,
        prefix: str = "",
        checkpoint_name: str | None = None,
        entity: str | None = None,
        tags: list[str] | tuple[str, ...] | None = None,
        group: str | None = None,
        job_type: str | None = None,
        config: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        del anonymous  # W&B's anonymous mode has no meaning for a self-hosted store
        super().__init__()
        if log_model not in (True, False, "all"):
            raise UsageError(f"log_model must be False, True or 'all', got {log_model!r}")
        self._log_model = log_model
        self._prefix = prefix
        self._checkpoint_name = checkpoint_name
        self._logged_model_time: dict[str, float] = {}
        self._checkpoint_callbacks: dict[int, Any] = {}
        directory = save_dir if save_dir is not None else dir
        self._save_dir = os.fspath(directory) if directory is not None else None
        self._project = (
            project
            or os.environ.get("STEMMA_PROJECT")
            or os.environ.get("WANDB_PROJECT")
            or "lightning_logs"
        )
        self._id = version or id
        self._name = name
        init: dict[str, Any] = {
            "project": self._project,
            "entity": entity,
            "name": name,
            "id": self._id,
            "resume": "allow" if self._id else None,
            "tags": tags,
            "group": group,
            "job_type": job_type,
            "config": config,
            "mode": "offline" if offline else None,
        }
        init.update(kwargs)
        self._init_kwargs = {k: v for k, v in init.items() if v is not None}
        self._owned = OwnedRun(self._init_kwargs, experiment)

    # ------------------------------------------------------------------ identity
    @property
    def experiment(self) -> Any:
        """The :class:`stemma.Run` (started on first use); a no-op object off rank 0."""
        if _rank() != 0:
            return _NoExperiment()
        return self._owned.get()

    @property
    def name(self) -> str:
        """The project, as W&B's logger answers (Lightning puts it in checkpoint paths)."""
        run = self._owned.run
        return run.project if run is not None else self._project

    @property
    def version(self) -> str | None:
        """The run id (Lightning puts it in checkpoint paths)."""
        run = self._owned.run
        return run.id if run is not None else self._id

    @property
    def save_dir(self) -> str | None:
        return self._save_dir

    # ------------------------------------------------------------------ logging
    def log_hyperparams(
        self, params: dict[str, Any] | Namespace, *args: Any, **kwargs: Any
    ) -> None:
        """Merge ``params`` (``save_hyperparameters()``) into the run's config; values the
        config cannot hold (callables, modules) are kept by name."""
        if _rank() != 0:
            return
        if isinstance(params, Namespace):
            params = vars(params)
        cleaned = clean_config(dict(params or {}))
        if cleaned:
            self.experiment.config.update(cleaned)

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        """Log one row at Lightning's ``step``; tensors become numbers."""
        if _rank() != 0:
            return
        row: dict[str, Any] = {}
        for key, value in metrics.items():
            number = to_number(value)
            if number is not None:
                name = f"{self._prefix}{self.LOGGER_JOIN_CHAR}{key}" if self._prefix else key
                row[name] = number
        if step is not None:
            row["trainer/global_step"] = int(step)
        if row:
            log_at_step(self.experiment, row, step)

    # ------------------------------------------------------------------ checkpoints
    def after_save_checkpoint(self, checkpoint_callback: Any) -> None:
        """Called by Lightning after each checkpoint: log it now (``log_model="all"``,
        or ``True`` with ``save_top_k=-1``) or remember the callback for the end."""
        if _rank() != 0:
            return
        if self._log_model == "all" or (
            self._log_model is True and getattr(checkpoint_callback, "save_top_k", None) == -1
        ):
            self._scan_and_log_checkpoints(checkpoint_callback)
        elif self._log_model is True:
            self._checkpoint_callbacks[id(checkpoint_callback)] = checkpoint_callback

    def finalize(self, status: str) -> None:
        """End of fit/validate/test: upload the checkpoints ``log_model=True`` waited for
        and finish the run if the logger started it (``failed`` unless ``success``)."""
        if _rank() != 0 or self._owned.run is None:
            return
        if status == "success":
            for callback in self._checkpoint_callbacks.values():
                self._scan_and_log_checkpoints(callback)
        self._owned.finish(exit_code=0 if status == "success" else 1)

    def _scan_and_log_checkpoints(self, checkpoint_callback: Any) -> None:
        """Log every checkpoint file the callback knows that is new or changed since it
        was last logged, oldest first, so ``latest`` ends on the newest."""
        found: dict[str, Any] = {}
        if getattr(checkpoint_callback, "last_model_path", None):
            found[checkpoint_callback.last_model_path] = getattr(
                checkpoint_callback, "current_score", None
            )
        for path, score in (getattr(checkpoint_callback, "best_k_models", None) or {}).items():
            found[path] = score
        best = getattr(checkpoint_callback, "best_model_path", None)
        if best:
            found[best] = getattr(checkpoint_callback, "best_model_score", None)
        candidates = sorted(
            (Path(p).stat().st_mtime, p, s) for p, s in found.items() if Path(p).is_file()
        )
        run = self.experiment
        settings = {
            k.lstrip("_"): clean_config(getattr(checkpoint_callback, k))
            for k in _CHECKPOINT_SETTINGS
            if hasattr(checkpoint_callback, k)
        }
        for mtime, path, score in candidates:
            if path in self._logged_model_time and self._logged_model_time[path] >= mtime:
                continue
            metadata: dict[str, Any] = {
                "score": to_number(score) if score is not None else None,
                "step": self._checkpoint_step(checkpoint_callback, path),
                "original_filename": Path(path).name,
                checkpoint_callback.__class__.__name__: settings,
            }
            name = self._checkpoint_name or f"model-{run.id}"
            artifact = stemma.Artifact(name=name, type="model", metadata=metadata)
            artifact.add_file(path, name="model.ckpt")
            aliases = ["latest", "best"] if path == best else ["latest"]
            run.log_artifact(artifact, aliases=aliases)
            self._logged_model_time[path] = mtime

    @staticmethod
    def _checkpoint_step(checkpoint_callback: Any, path: str) -> int | None:
        """The global step a checkpoint was saved at: from its file name
        (``epoch=1-step=8.ckpt``), else the callback's last saved step for its last file."""
        match = _STEP_IN_NAME.search(Path(path).name)
        if match:
            return int(match.group(1))
        if path == getattr(checkpoint_callback, "last_model_path", None):
            step = getattr(checkpoint_callback, "_last_global_step_saved", None)
            return int(step) if isinstance(step, int) else None
        return None

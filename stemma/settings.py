"""Settings, read from ``STEMMA_*`` environment variables, overridable per call.

Every setting is listed in :data:`ENV_VARS` with its meaning; a test checks that the
README documents each one, so none can be added silently.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from stemma.errors import UsageError

MODES = ("online", "offline", "disabled")

ENV_VARS: dict[str, str] = {
    "STEMMA_BASE_URL": "URL of a Stemma server; unset means the embedded store",
    "STEMMA_API_KEY": "API key for the server (WANDB_API_KEY is read when it is unset)",
    "STEMMA_ENTITY": "default entity (user or team) for new runs",
    "STEMMA_PROJECT": "default project for new runs",
    "STEMMA_MODE": "online | offline | disabled",
    "STEMMA_DIR": "where the embedded store and run spools live",
    "STEMMA_CACHE_DIR": "where downloaded artifact files are cached",
    "STEMMA_DATABASE_URL": "SQLAlchemy URL of the metadata database "
    "(default: SQLite in STEMMA_DIR)",
    "STEMMA_STORAGE_URL": "where blobs are stored (default: STEMMA_DIR/blobs)",
    "STEMMA_CACHE_MAX": "size limit of the download cache, e.g. 20GB (default 10% of its disk)",
    "STEMMA_HEARTBEAT_INTERVAL": "seconds between a live run's heartbeats (default 10)",
    "STEMMA_CRASH_TIMEOUT": "seconds without a heartbeat before a run counts as crashed "
    "(default 6 heartbeat intervals)",
    "STEMMA_SYSTEM_METRICS": "sample CPU/memory/GPU into system/* keys: true | false "
    "(default true)",
    "STEMMA_SYSTEM_METRICS_INTERVAL": "seconds between system metric samples (default 15)",
    "STEMMA_KEEP_SPOOL": "keep a run's spool file after everything in it is stored (default false)",
    "STEMMA_SILENT": "do not print run start and finish lines (default false)",
    "STEMMA_FINISH_TIMEOUT": "seconds finish() keeps trying an unreachable store before "
    "leaving the data in the spool for `stemma sync` (default 60)",
    "STEMMA_MAX_BODY_BYTES": "server: the largest request body accepted (default 64 MiB)",
    "STEMMA_MAX_BLOB_BYTES": "server: the largest blob uploaded through it to a local store "
    "(default 8 GiB)",
    "STEMMA_MULTIPART_THRESHOLD": "server: S3 uploads above this many bytes go in parts "
    "(default 256 MiB)",
    "STEMMA_S3_ENDPOINT_URL": "an S3-compatible endpoint (MinIO, Ceph...); unset for AWS",
    "STEMMA_S3_ADDRESSING_STYLE": "path | virtual | auto (default path with an endpoint)",
    "STEMMA_S3_MAX_CONNECTIONS": "S3 connection pool size (default 32)",
    "STEMMA_HTTP_RETRY_SECONDS": "seconds an API call retries an unreachable server (default 300)",
    "STEMMA_WEBHOOK_ALLOW_PRIVATE": "server: let webhooks target loopback and private "
    "addresses (default false)",
    "STEMMA_WEBHOOK_RETRY_SECONDS": "seconds before a failed webhook delivery's first retry, "
    "doubling after each (default 30)",
    "STEMMA_WEBHOOK_MAX_ATTEMPTS": "attempts of a webhook delivery before it is failed (default 8)",
}


def config_path() -> Path:
    """Where ``stemma login`` keeps the server URL and key."""
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "stemma" / "login.json"


def load_login() -> dict[str, str]:
    import json

    try:
        data = json.loads(config_path().read_text())
    except (FileNotFoundError, ValueError):
        return {}
    return {k: v for k, v in data.items() if isinstance(v, str)}


def save_login(base_url: str, api_key: str | None) -> Path:
    """Write the login file with mode 0600 (it holds a secret)."""
    import json

    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"base_url": base_url, **({"api_key": api_key} if api_key else {})}
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh)
    os.chmod(path, 0o600)
    return path


def default_dir() -> Path:
    """The user's data directory: ``$XDG_DATA_HOME/stemma`` or ``~/.local/share/stemma``."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "share"
    )
    return Path(base) / "stemma"


def _bool(value: str | None, default: bool) -> bool:
    if value is None or value == "":
        return default
    low = value.strip().lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise UsageError(f"expected true or false, got {value!r}", value=value)


def _float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise UsageError(f"{name} must be a number of seconds, got {raw!r}", name=name) from None
    if value <= 0:
        raise UsageError(f"{name} must be positive, got {raw!r}", name=name)
    return value


@dataclasses.dataclass(slots=True)
class Settings:
    """Resolved settings for one run or API client."""

    base_url: str | None = None
    api_key: str | None = None
    entity: str | None = None
    project: str | None = None
    mode: str = "online"
    dir: Path = dataclasses.field(default_factory=default_dir)
    cache_dir: Path | None = None
    database_url: str | None = None
    storage_url: str | None = None
    heartbeat_interval: float = 10.0
    crash_timeout: float = 60.0
    system_metrics: bool = True
    system_metrics_interval: float = 15.0
    keep_spool: bool = False
    silent: bool = False
    finish_timeout: float = 60.0

    @classmethod
    def from_env(cls, **overrides: Any) -> Settings:
        env = os.environ
        hb = _float("STEMMA_HEARTBEAT_INTERVAL", 10.0)
        login = load_login() if not env.get("STEMMA_BASE_URL") else {}
        s = cls(
            base_url=env.get("STEMMA_BASE_URL") or login.get("base_url") or None,
            # WANDB_API_KEY too, so CI set up for wandb (`export WANDB_API_KEY=...`) works.
            api_key=env.get("STEMMA_API_KEY")
            or env.get("WANDB_API_KEY")
            or login.get("api_key")
            or None,
            entity=env.get("STEMMA_ENTITY") or None,
            project=env.get("STEMMA_PROJECT") or None,
            mode=(env.get("STEMMA_MODE") or "online").strip().lower(),
            dir=Path(env["STEMMA_DIR"]).expanduser() if env.get("STEMMA_DIR") else default_dir(),
            cache_dir=Path(env["STEMMA_CACHE_DIR"]).expanduser()
            if env.get("STEMMA_CACHE_DIR")
            else None,
            database_url=env.get("STEMMA_DATABASE_URL") or None,
            storage_url=env.get("STEMMA_STORAGE_URL") or None,
            heartbeat_interval=hb,
            crash_timeout=_float("STEMMA_CRASH_TIMEOUT", 6 * hb),
            system_metrics=_bool(env.get("STEMMA_SYSTEM_METRICS"), True),
            system_metrics_interval=_float("STEMMA_SYSTEM_METRICS_INTERVAL", 15.0),
            keep_spool=_bool(env.get("STEMMA_KEEP_SPOOL"), False),
            silent=_bool(env.get("STEMMA_SILENT"), False),
            finish_timeout=_float("STEMMA_FINISH_TIMEOUT", 60.0),
        )
        for key, value in overrides.items():
            if value is None:
                continue
            if not hasattr(s, key):
                raise UsageError(f"unknown setting {key!r}", setting=key)
            setattr(s, key, Path(value).expanduser() if key in ("dir", "cache_dir") else value)
        if s.mode not in MODES:
            raise UsageError(f"mode must be one of {', '.join(MODES)}, got {s.mode!r}", mode=s.mode)
        return s

    @property
    def spool_root(self) -> Path:
        """Where run directories (spools, files) are written."""
        return self.dir / "runs"

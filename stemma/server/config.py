"""Server settings: ``STEMMA_DATABASE_URL``, ``STEMMA_STORAGE_URL`` and the limits."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from stemma.settings import Settings, default_dir

DEFAULT_PORT = 5280


@dataclasses.dataclass(slots=True)
class ServerSettings:
    database_url: str | None = None
    storage_url: str | None = None
    dir: Path = dataclasses.field(default_factory=default_dir)
    max_body_bytes: int = 64 << 20  # JSON and history frames
    max_blob_bytes: int = 8 << 30  # one blob uploaded through the server (local store)
    multipart_threshold: int = 256 << 20  # S3 uploads above this go in parts
    # The address `stemma server` binds: local mode (no accounts, no login) is allowed
    # only on loopback. Unknown (an app started some other way): never local mode.
    bind_host: str | None = None

    @classmethod
    def from_env(cls, **overrides: object) -> ServerSettings:
        env = os.environ
        s = cls(
            database_url=env.get("STEMMA_DATABASE_URL") or None,
            storage_url=env.get("STEMMA_STORAGE_URL") or None,
            dir=Path(env["STEMMA_DIR"]).expanduser() if env.get("STEMMA_DIR") else default_dir(),
            max_body_bytes=int(env.get("STEMMA_MAX_BODY_BYTES") or (64 << 20)),
            max_blob_bytes=int(env.get("STEMMA_MAX_BLOB_BYTES") or (8 << 30)),
            multipart_threshold=int(env.get("STEMMA_MULTIPART_THRESHOLD") or (256 << 20)),
            bind_host=env.get("STEMMA_SERVER_HOST") or None,
        )
        for key, value in overrides.items():
            if value is not None:
                setattr(s, key, Path(value) if key == "dir" else value)  # type: ignore[arg-type]
        return s

    def store_settings(self) -> Settings:
        """The settings the server's store (the same one the embedded SDK uses) opens."""
        return Settings(
            dir=self.dir,
            database_url=self.database_url,
            storage_url=self.storage_url,
            silent=True,
            system_metrics=False,
        )

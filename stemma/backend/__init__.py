"""Choosing a backend from the settings, one shared instance per store per process."""

from __future__ import annotations

import threading

from stemma.backend.base import Backend
from stemma.settings import Settings

_instances: dict[tuple[str, ...], Backend] = {}
_lock = threading.Lock()


def _key(settings: Settings) -> tuple[str, ...]:
    if settings.base_url:
        return ("http", settings.base_url, settings.api_key or "")
    return ("embedded", settings.database_url or str(settings.dir.resolve()))


def get_backend(settings: Settings) -> Backend:
    """The backend the settings name: a server when ``base_url`` is set, else embedded.

    Instances are shared, so several runs and ``Api`` objects in one process use one
    connection pool.
    """
    key = _key(settings)
    with _lock:
        backend = _instances.get(key)
        if backend is None:
            if settings.base_url:
                from stemma.backend.http import HttpBackend

                backend = HttpBackend(settings)
            else:
                from stemma.backend.embedded import EmbeddedBackend

                backend = EmbeddedBackend(settings)
            _instances[key] = backend
        return backend


def reset_backends() -> None:
    """Close and forget every shared backend (tests switch stores between cases)."""
    with _lock:
        for backend in _instances.values():
            backend.close()
        _instances.clear()

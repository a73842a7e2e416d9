"""What the signed-in caller may do where a page is looking, so pages draw edit controls
only for those who may use them. The store still checks every action itself: hiding a
button is a courtesy, not the protection."""

from __future__ import annotations

from typing import Any

from stemma.service.access import Level
from stemma.storage.database import read_tx


def level_of(store: Any, entity: str, project: str | None = None) -> Level:
    """The caller's level in ``entity`` (and ``project``): NONE, READ, WRITE or ADMIN."""
    with read_tx(store.engine) as conn:
        return Level(store.gate.level(conn, entity, project))


def abilities(store: Any, entity: str, project: str | None = None) -> dict[str, bool]:
    """``{"read", "write", "admin"}`` flags for templates (``can.write`` etc.)."""
    level = level_of(store, entity, project)
    return {
        "read": level >= Level.READ,
        "write": level >= Level.WRITE,
        "admin": level >= Level.ADMIN,
    }

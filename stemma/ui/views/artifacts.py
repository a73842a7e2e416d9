"""Pages of the web UI (being built)."""

from __future__ import annotations

from stemma.server.web import page_router

router = page_router()

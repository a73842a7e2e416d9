"""The pages of the web UI, one module per area; :func:`routers` lists their routers."""

from __future__ import annotations

import importlib

from fastapi import APIRouter

# Modules holding a ``router``; each is a page_router (sign-in redirect, form CSRF).
_MODULES = ("home", "project", "run", "artifacts", "team", "admin", "reports")


def routers() -> list[APIRouter]:
    return [importlib.import_module(f"{__name__}.{m}").router for m in _MODULES]

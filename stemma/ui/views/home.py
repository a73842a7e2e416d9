"""The home page: the projects the caller can read."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import HTMLResponse

from stemma.server.deps import Store
from stemma.server.web import page_router
from stemma.ui.render import render

router = page_router()


@router.get("/", response_class=HTMLResponse)
def home(request: Request, store: Store) -> HTMLResponse:
    projects = [{"entity": e, "project": p, "runs": n} for e, p, n in store.list_projects()]
    projects.sort(key=lambda x: (x["entity"], x["project"]))
    return render(request, "home.html", "Projects", projects=projects)

"""Plain HTML pages served until the web UI exists: projects, and each project's runs.

They live on :func:`~stemma.server.web.page_router`, which sends anonymous visitors to
the sign-in page and checks the CSRF token of every form posted with a session.
"""

from __future__ import annotations

import html

from fastapi import Request
from fastapi.responses import HTMLResponse

from stemma.server.deps import Store
from stemma.server.web import page, page_router
from stemma.wire.names import check_name

router = page_router()


@router.get("/", response_class=HTMLResponse)
def home(request: Request, store: Store) -> HTMLResponse:
    rows = (
        "".join(
            f"<tr><td><a href='/p/{html.escape(e)}/{html.escape(p)}'>{html.escape(e)}/"
            f"{html.escape(p)}</a></td><td>{n}</td></tr>"
            for e, p, n in store.list_projects()
        )
        or "<tr><td colspan=2>No projects yet: log a run with stemma.init().</td></tr>"
    )
    return page(
        request,
        "Projects",
        "<h1>Projects</h1><table><tr><th>project</th><th>runs</th>"
        f"</tr>{rows}</table><p><a href='/api/v1/docs'>REST API</a></p>",
    )


@router.get("/p/{entity}/{project}", response_class=HTMLResponse)
def project_page(request: Request, entity: str, project: str, store: Store) -> HTMLResponse:
    ent, proj = check_name(entity, "entity"), check_name(project, "project")
    runs = store.list_runs(ent, proj, limit=500)
    esc = html.escape
    rows = "".join(
        f"<tr><td>{esc(r.run_id)}</td><td>{esc(r.name)}</td><td>{esc(r.state)}</td>"
        f"<td>{esc(r.job_type or '')}</td><td>{esc(r.group or '')}</td>"
        f"<td>{esc(', '.join(r.tags))}</td><td>{r.last_step + 1}</td></tr>"
        for r in runs
    )
    title = f"{ent}/{proj}"
    return page(
        request,
        title,
        f"<p><a href='/'>Projects</a></p><h1>{esc(title)}</h1><table><tr>"
        "<th>id</th><th>name</th><th>state</th><th>job type</th><th>group</th>"
        f"<th>tags</th><th>steps</th></tr>{rows}</table>",
    )

"""Plain HTML pages served until the web UI exists: projects, and each project's runs."""

from __future__ import annotations

import html

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from stemma.server.deps import Store
from stemma.wire.names import check_name

router = APIRouter(include_in_schema=False)

_STYLE = """<style>body{font:15px system-ui,sans-serif;margin:2rem;max-width:72rem}
table{border-collapse:collapse}td,th{padding:.3rem .7rem;border-bottom:1px solid #ddd;
text-align:left}@media(prefers-color-scheme:dark){body{background:#111;color:#ddd}
a{color:#8af}td,th{border-color:#333}}</style>"""


def _page(title: str, body: str) -> HTMLResponse:
    return HTMLResponse(
        f"<!doctype html><html><head><meta charset=utf-8><title>"
        f"{html.escape(title)} · Stemma</title>{_STYLE}</head><body>"
        f"{body}</body></html>"
    )


@router.get("/", response_class=HTMLResponse)
def home(store: Store) -> HTMLResponse:
    rows = (
        "".join(
            f"<tr><td><a href='/p/{html.escape(e)}/{html.escape(p)}'>{html.escape(e)}/"
            f"{html.escape(p)}</a></td><td>{n}</td></tr>"
            for e, p, n in store.list_projects()
        )
        or "<tr><td colspan=2>No projects yet: log a run with stemma.init().</td></tr>"
    )
    return _page(
        "Projects",
        "<h1>Projects</h1><table><tr><th>project</th><th>runs</th>"
        f"</tr>{rows}</table><p><a href='/api/v1/docs'>REST API</a></p>",
    )


@router.get("/p/{entity}/{project}", response_class=HTMLResponse)
def project_page(entity: str, project: str, store: Store) -> HTMLResponse:
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
    return _page(
        title,
        f"<p><a href='/'>Projects</a></p><h1>{esc(title)}</h1><table><tr>"
        "<th>id</th><th>name</th><th>state</th><th>job type</th><th>group</th>"
        f"<th>tags</th><th>steps</th></tr>{rows}</table>",
    )

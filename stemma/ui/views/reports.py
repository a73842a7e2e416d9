"""Report pages: a project's reports, one report drawn from live data, its editor, and
the public page of a share link.

* ``GET  /p/{e}/{p}/reports``: the project's reports (title, description, revisions,
  who changed them last); members create an empty one (``POST`` the same path), team
  admins allow or forbid share links (``POST .../reports/sharing``).
* ``GET  /p/{e}/{p}/reports/{id}``: the report, evaluated on each load
  (:func:`stemma.report.evaluate.evaluate`: a new matching run appears without an
  edit), drawn by ``report.js`` from the embedded data; ``?revision=N`` shows an older
  revision under a banner. Members turn the share link on or off here
  (``POST .../share``) and restore an old revision (``POST .../edit`` op=restore).
* ``GET  /p/{e}/{p}/reports/{id}/edit``: the editor: plain forms (they work without
  script) that ``POST .../edit`` one change each (``op``: add, remove, up, down, text,
  meta, add_panel, remove_panel, panel_up, panel_down, panel, add_runset,
  remove_runset, runset, restore). Each change saves a new revision through
  ``store.save_report``, the same spec and checks as the API; a refused change
  re-renders the editor with the store's message (400) and saves nothing.
* ``GET  /share/r/{token}``: public (no sign-in): the report of a share link, read-only,
  evaluated as the link's read-only principal; its media come from
  ``GET /share/r/{token}/media/{e}/{p}/{run_id}/{digest}`` (the API media route's checks
  and headers). Unknown or revoked tokens: 404.

The store checks every read and write for the caller; ``abilities`` only decides which
controls are drawn.
"""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.responses import StreamingResponse as _Streaming
from jinja2.utils import htmlsafe_json_dumps
from markupsafe import Markup

from stemma.errors import Conflict, NotFound, PermissionDenied, StemmaError, UsageError
from stemma.server.deps import Store, run_ref
from stemma.server.web import page_router
from stemma.ui.access import abilities
from stemma.ui.render import ENV, flash, render, urlpart
from stemma.wire.names import check_name

pages = page_router()

NEW_LINK_COOKIE = "stemma_new_share_link"  # a share link just made, shown once
SHARE_HEADERS = {"cache-control": "no-store", "x-robots-tag": "noindex, nofollow"}
BLOCK_CHOICES = {
    "h1": "Heading 1",
    "h2": "Heading 2",
    "p": "Paragraph",
    "markdown": "Markdown",
    "toc": "Table of contents",
    "panel_grid": "Panel grid",
}
PANEL_CHOICES = {
    "line_plot": "Line plot",
    "bar_plot": "Bar plot",
    "scalar_chart": "Scalar chart",
    "scatter_plot": "Scatter plot",
    "parallel_coordinates_plot": "Parallel coordinates",
    "runs_table": "Runs table",
    "run_comparer": "Run comparer",
    "media_browser": "Media browser",
}
# The editable fields of each panel type, as form inputs: (field, kind, label, hint).
# Kinds: title (text or null), key (one metric), keys (comma-separated list),
# opt_keys (list or null), groupby (key or null), float, int, bool.
PANEL_FORM: dict[str, list[tuple[str, str, str, str]]] = {
    "line_plot": [
        ("title", "title", "Title", ""),
        ("y", "keys", "Y (history keys)", "train/loss, val/loss"),
        ("x", "key", "X", "_step, _runtime, _timestamp or a key"),
        ("groupby", "groupby", "Group by", "config.lr, group, job_type, state, tags, user"),
        ("smoothing", "float", "Smoothing (0-1)", "0"),
        ("max_runs", "int", "Max runs", "500"),
        ("log_x", "bool", "Log x", ""),
        ("log_y", "bool", "Log y", ""),
    ],
    "bar_plot": [
        ("title", "title", "Title", ""),
        ("metrics", "keys", "Metrics (summary keys)", "val/acc"),
        ("groupby", "groupby", "Group by", "config.lr"),
    ],
    "scalar_chart": [
        ("title", "title", "Title", ""),
        ("metric", "key", "Metric", "val/acc"),
        ("groupby", "groupby", "Group by", ""),
    ],
    "scatter_plot": [
        ("title", "title", "Title", ""),
        ("x", "key", "X", "config.learning_rate"),
        ("y", "key", "Y", "val/acc"),
    ],
    "parallel_coordinates_plot": [
        ("title", "title", "Title", ""),
        ("columns", "keys", "Columns", "config.lr, config.batch_size, val/acc"),
    ],
    "runs_table": [
        ("title", "title", "Title", ""),
        ("columns", "opt_keys", "Columns (empty: name, state, created and a few metrics)", ""),
    ],
    "run_comparer": [("title", "title", "Title", "")],
    "media_browser": [
        ("title", "title", "Title", ""),
        ("media_keys", "keys", "Media keys", "val/examples"),
    ],
}
# The field the "add panel" form's keys fill, per panel type.
MAIN_FIELD = {
    "line_plot": "y",
    "bar_plot": "metrics",
    "scalar_chart": "metric",
    "scatter_plot": "x,y",
    "parallel_coordinates_plot": "columns",
    "runs_table": "columns",
    "media_browser": "media_keys",
}


def _evaluate(store: Any, spec: Mapping[str, Any], **kwargs: Any) -> dict[str, Any]:
    from stemma.report.evaluate import evaluate

    return evaluate(store, spec, **kwargs)


def _panel_title(panel: Mapping[str, Any]) -> str:
    from stemma.report.evaluate import panel_title

    return panel_title(panel)


def report_json(data: Any) -> Markup:
    """``data`` as JSON safe inside <script type=application/json> (``<``, ``>``, ``&``
    and ``'`` escaped; NaN refused: the browser's JSON.parse would choke on it)."""
    dumps = functools.partial(json.dumps, separators=(",", ":"), allow_nan=False)
    return htmlsafe_json_dumps(data, dumps=dumps)


def render_blocks(data: Mapping[str, Any], *, links: bool = True) -> Markup:
    """The HTML of an evaluated report's blocks (headings, text, the panels' figures
    that ``report.js`` draws into, tables): what the report page, the share page and an
    exported file show. ``links=False`` leaves out links into the signed-in app."""
    html = ENV.get_template("report_blocks.html").render(report=data, links=links)
    return Markup(html)


# ------------------------------------------------------------------ helpers


def project_url(entity: str, project: str) -> str:
    return f"/p/{urlpart(entity)}/{urlpart(project)}"


def report_url(entity: str, project: str, report_id: str) -> str:
    return f"{project_url(entity, project)}/reports/{urlpart(report_id)}"


def _check(entity: str, project: str) -> None:
    check_name(entity, "entity")
    check_name(project, "project")


def _load(
    store: Any, entity: str, project: str, report_id: str, revision: int | None = None
) -> dict[str, Any]:
    """The report (at ``revision``), if it lives in entity/project (else NotFound)."""
    _check(entity, project)
    record: dict[str, Any] = store.get_report(report_id, revision)
    if record.get("entity") != entity or record.get("project") != project:
        raise NotFound(f"no report {report_id} in {entity}/{project}", report=report_id)
    return record


def _require_write(store: Any, entity: str, project: str) -> None:
    if not abilities(store, entity, project)["write"]:
        raise PermissionDenied(
            f"you may read the reports of {entity}/{project} but not change them: ask a "
            "team admin to make you a member"
        )


def _key_choices(store: Any, entity: str, project: str) -> dict[str, list[str]]:
    """Keys to offer in the editor's inputs: history keys of the latest run, config and
    summary keys of recent runs."""
    out: dict[str, list[str]] = {"history": [], "summary": [], "config": []}
    try:
        sample = store.run_keys(entity, project, 200)
        out["config"] = [f"config.{k}" for k in sample.get("config", [])][:300]
        out["summary"] = [k for k in sample.get("summary", []) if not k.startswith("_")][:300]
        latest = store.list_runs(entity, project, limit=1)
        if latest:
            keys = store.history_keys(latest[0].ref)
            out["history"] = [k for k in keys if not k.startswith("_")][:300]
    except (StemmaError, AttributeError):
        pass
    return out


def _revision_arg(raw: str | None) -> int | None:
    if raw in (None, ""):
        return None
    try:
        value = int(str(raw))
    except ValueError:
        raise UsageError(f"revision must be a whole number, got {raw!r}") from None
    if value < 1:
        raise UsageError(f"revision must be 1 or more, got {value}")
    return value


# ------------------------------------------------------------------ list and create


@pages.get("/p/{entity}/{project}/reports", response_class=HTMLResponse)
def report_list(
    request: Request, store: Store, entity: str, project: str, error: str | None = None
) -> HTMLResponse:
    _check(entity, project)
    reports = store.list_reports(entity, project)
    can = abilities(store, entity, project)
    try:
        sharing = bool(store.report_sharing_allowed(entity, project))
    except StemmaError:
        sharing = True
    return render(
        request,
        "report_list.html",
        f"Reports · {project}",
        status=400 if error else 200,
        entity=entity,
        project=project,
        base=project_url(entity, project),
        reports=reports,
        can=can,
        sharing=sharing,
        error=error,
    )


async def _form(request: Request) -> dict[str, Any]:
    form = await request.form()
    out: dict[str, Any] = {}
    for key, value in form.multi_items():
        if isinstance(value, str):
            out[key] = value
    return out


@pages.post("/p/{entity}/{project}/reports")
async def create_report(request: Request, store: Store, entity: str, project: str) -> Response:
    from starlette.concurrency import run_in_threadpool

    form = await _form(request)
    return await run_in_threadpool(_create, request, store, entity, project, form)


def _create(
    request: Request, store: Any, entity: str, project: str, form: dict[str, Any]
) -> Response:
    _check(entity, project)
    _require_write(store, entity, project)
    title = (form.get("title") or "").strip() or "Untitled Report"
    spec: dict[str, Any] = {
        "version": 1,
        "entity": entity,
        "project": project,
        "title": title,
        "description": (form.get("description") or "").strip(),
        "blocks": [],
    }
    try:
        record = store.save_report(entity, project, spec)
    except (UsageError, TypeError) as exc:
        return report_list(request, store, entity, project, error=getattr(exc, "message", str(exc)))
    url = report_url(entity, project, record["id"]) + "/edit"
    return flash(RedirectResponse(url, status_code=303), f"Created the report {title}.")


@pages.post("/p/{entity}/{project}/reports/sharing")
async def set_sharing(request: Request, store: Store, entity: str, project: str) -> Response:
    from starlette.concurrency import run_in_threadpool

    form = await _form(request)
    allowed = form.get("allowed") == "1"

    def act() -> Response:
        _check(entity, project)
        store.set_report_sharing_allowed(entity, project, allowed)
        message = "Share links are allowed." if allowed else "Share links are turned off."
        url = project_url(entity, project) + "/reports"
        return flash(RedirectResponse(url, status_code=303), message)

    return await run_in_threadpool(act)


# ------------------------------------------------------------------ one report


@pages.get("/p/{entity}/{project}/reports/{report_id}", response_class=HTMLResponse)
def report_page(
    request: Request,
    store: Store,
    entity: str,
    project: str,
    report_id: str,
    revision: str | None = None,
) -> HTMLResponse:
    wanted = _revision_arg(revision)
    link = request.cookies.get(NEW_LINK_COOKIE)
    if link and not link.startswith(share_link(request, "")):
        link = None
    page = _report_page(request, store, entity, project, report_id, wanted, new_link=link)
    if request.cookies.get(NEW_LINK_COOKIE) is not None:
        page.delete_cookie(NEW_LINK_COOKIE, path=report_url(entity, project, report_id))
    return page


def _report_page(
    request: Request,
    store: Any,
    entity: str,
    project: str,
    report_id: str,
    wanted: int | None = None,
    *,
    new_link: str | None = None,
) -> HTMLResponse:
    record = _load(store, entity, project, report_id, wanted)
    latest = record if wanted is None else _load(store, entity, project, report_id)
    can = abilities(store, entity, project)
    if not (latest.get("share") or {}).get("enabled") or not can["write"]:
        new_link = None
    data = _evaluate(store, record["spec"])
    revisions = sorted(store.report_revisions(report_id), key=lambda r: -int(r["revision"]))
    shown: dict[str, Any] = next((r for r in revisions if r["revision"] == record["revision"]), {})
    return render(
        request,
        "report.html",
        record["title"],
        headers={"cache-control": "no-store"} if new_link else None,
        entity=entity,
        project=project,
        base=project_url(entity, project),
        here=report_url(entity, project, report_id),
        record=record,
        latest=latest,
        shown=shown,
        old=wanted is not None and record["revision"] != latest["revision"],
        revisions=revisions,
        can=can,
        shared=False,
        share=latest.get("share") or {},
        new_link=new_link,
        blocks_html=render_blocks(data, links=True),
        report_data=report_json(data),
    )


def share_link(request: Request, token: str) -> str:
    return f"{str(request.base_url).rstrip('/')}/share/r/{quote(str(token), safe='')}"


@pages.post("/p/{entity}/{project}/reports/{report_id}/share", response_model=None)
async def set_share(
    request: Request, store: Store, entity: str, project: str, report_id: str
) -> Response:
    """Turn the share link on (a new token, shown on the report page this once: the
    store keeps only its hash) or off."""
    from starlette.concurrency import run_in_threadpool

    form = await _form(request)
    enabled = form.get("enabled") == "1"

    def act() -> Response:
        _load(store, entity, project, report_id)
        url = report_url(entity, project, report_id) + "#share"
        try:
            record = store.set_report_share(report_id, enabled)
        except PermissionDenied as exc:
            if not abilities(store, entity, project)["write"]:
                raise
            return flash(RedirectResponse(url, status_code=303), exc.message)
        token = (record.get("share") or {}).get("token")
        if enabled and token:
            # Shown once, on the next load of the report page (then the cookie goes): a
            # redirect, so reloading does not make another link.
            answer = RedirectResponse(url, status_code=303)
            answer.set_cookie(
                NEW_LINK_COOKIE,
                share_link(request, token),
                max_age=120,
                path=report_url(entity, project, report_id),
                httponly=True,
                samesite="strict",
                secure=request.url.scheme == "https",
            )
            return answer
        message = "Share link turned off: the old link no longer works."
        return flash(RedirectResponse(url, status_code=303), message)

    return await run_in_threadpool(act)


@pages.post("/p/{entity}/{project}/reports/{report_id}/delete")
async def delete_report(
    request: Request, store: Store, entity: str, project: str, report_id: str
) -> Response:
    from starlette.concurrency import run_in_threadpool

    await _form(request)

    def act() -> Response:
        record = _load(store, entity, project, report_id)
        store.delete_report(report_id)
        url = project_url(entity, project) + "/reports"
        return flash(RedirectResponse(url, status_code=303), f"Deleted {record['title']}.")

    return await run_in_threadpool(act)


# ------------------------------------------------------------------ the editor


@pages.get("/p/{entity}/{project}/reports/{report_id}/edit", response_class=HTMLResponse)
def edit_page(
    request: Request, store: Store, entity: str, project: str, report_id: str
) -> HTMLResponse:
    record = _load(store, entity, project, report_id)
    _require_write(store, entity, project)
    return _editor(request, store, record)


def _editor(
    request: Request,
    store: Any,
    record: Mapping[str, Any],
    *,
    error: str | None = None,
    status: int = 200,
    typed: Mapping[str, Any] | None = None,
) -> HTMLResponse:
    entity, project = record["entity"], record["project"]
    return render(
        request,
        "report_edit.html",
        f"Edit {record['title']}",
        status=status,
        entity=entity,
        project=project,
        base=project_url(entity, project),
        here=report_url(entity, project, record["id"]),
        record=record,
        spec=record["spec"],
        block_choices=BLOCK_CHOICES,
        panel_choices=PANEL_CHOICES,
        panel_form=PANEL_FORM,
        panel_title=_panel_title,
        keys=_key_choices(store, entity, project),
        error=error,
        typed=typed or {},
    )


@pages.post("/p/{entity}/{project}/reports/{report_id}/edit")
async def edit(
    request: Request, store: Store, entity: str, project: str, report_id: str
) -> Response:
    from starlette.concurrency import run_in_threadpool

    form = await _form(request)
    return await run_in_threadpool(_edit, request, store, entity, project, report_id, form)


def _edit(
    request: Request,
    store: Any,
    entity: str,
    project: str,
    report_id: str,
    form: dict[str, Any],
) -> Response:
    record = _load(store, entity, project, report_id)
    _require_write(store, entity, project)
    op = str(form.get("op") or "")
    base = form.get("base")
    try:
        if base and str(base) != str(record["revision"]):
            raise Conflict(
                f"this report changed since you opened the editor (it is at revision "
                f"{record['revision']} now, you edited revision {base}): nothing was saved; "
                "reload the editor and make your change again"
            )
        if op == "restore":
            old = _load(store, entity, project, report_id, _revision_arg(form.get("revision")))
            spec = copy.deepcopy(old["spec"])
            message = f"Restored revision {old['revision']}"
        else:
            spec = copy.deepcopy(record["spec"])
            message = apply_edit(spec, op, form)
        saved = store.save_report(entity, project, spec, report_id)
    except (UsageError, TypeError, Conflict) as exc:
        status = 409 if isinstance(exc, Conflict) else 400
        text = getattr(exc, "message", str(exc))
        return _editor(request, store, record, error=text, status=status, typed=form)
    target = report_url(entity, project, report_id)
    if op == "restore":
        response = RedirectResponse(target, status_code=303)
    else:
        anchor = _anchor(op, form, spec)
        response = RedirectResponse(f"{target}/edit{anchor}", status_code=303)
    return flash(response, f"{message}: saved as revision {saved['revision']}.")


def _anchor(op: str, form: Mapping[str, Any], spec: Mapping[str, Any]) -> str:
    if op in ("meta",):
        return "#meta"
    if op == "add":
        return f"#b{len(spec['blocks']) - 1}"
    try:
        i = int(form.get("block", ""))
    except ValueError:
        return ""
    if op == "up":
        i -= 1
    elif op == "down":
        i += 1
    elif op == "remove":
        return ""
    return f"#b{max(0, i)}"


def _index(form: Mapping[str, Any], name: str, size: int, what: str) -> int:
    raw = form.get(name)
    try:
        i = int(str(raw))
    except ValueError:
        raise UsageError(f"{name} must be a number, got {raw!r}") from None
    if not 0 <= i < size:
        raise UsageError(f"there is no {what} {i} (the report has {size})")
    return i


def _keys(raw: Any) -> list[str]:
    text = str(raw or "").replace("\n", ",")
    return [k.strip() for k in text.split(",") if k.strip()]


def _grid(spec: dict[str, Any], form: Mapping[str, Any]) -> dict[str, Any]:
    i = _index(form, "block", len(spec["blocks"]), "block")
    block: dict[str, Any] = spec["blocks"][i]
    if block.get("type") != "panel_grid":
        raise UsageError(f"block {i} is a {block.get('type')} block, not a panel grid")
    block.setdefault("panels", [])
    block.setdefault("runsets", [])
    return block


def new_panel(kind: str, keys: list[str]) -> dict[str, Any]:
    """A panel of ``kind`` whose main field holds ``keys`` (the add-panel form)."""
    if kind not in PANEL_CHOICES:
        raise UsageError(f"unknown panel type {kind!r} (use one of {', '.join(PANEL_CHOICES)})")
    panel: dict[str, Any] = {"type": kind}
    main = MAIN_FIELD.get(kind)
    if main == "x,y":
        if len(keys) != 2:
            raise UsageError("a scatter plot needs two keys: x, y (e.g. config.lr, val/acc)")
        panel["x"], panel["y"] = keys
    elif main in ("metric",):
        if len(keys) != 1:
            raise UsageError("a scalar chart needs one metric key")
        panel["metric"] = keys[0]
    elif main == "columns" and kind == "runs_table":
        panel["columns"] = keys or None
    elif main is not None:
        panel[main] = keys
    return panel


def panel_fields(kind: str, form: Mapping[str, Any], panel: dict[str, Any]) -> None:
    """Set ``panel``'s editable fields from the form (unchecked boxes are False)."""
    for field, how, label, _hint in PANEL_FORM.get(kind, []):
        raw = form.get(field)
        if how == "bool":
            panel[field] = raw in ("1", "on", "true")
            continue
        if raw is None:
            continue
        text = str(raw).strip()
        if how in ("title", "groupby"):
            panel[field] = text or None
        elif how == "key":
            panel[field] = text
        elif how == "keys":
            panel[field] = _keys(text)
        elif how == "opt_keys":
            panel[field] = _keys(text) or None
        elif how == "float":
            try:
                panel[field] = float(text) if text else 0.0
            except ValueError:
                raise UsageError(f"{label} must be a number, got {text!r}") from None
        elif how == "int":
            try:
                panel[field] = int(text)
            except ValueError:
                raise UsageError(f"{label} must be a whole number, got {text!r}") from None


def parse_filters(raw: Any) -> dict[str, Any]:
    """The runset filters typed as JSON (empty: no filter), or a clear UsageError."""
    text = str(raw or "").strip()
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise UsageError(
            f'filters must be a JSON object such as {{"state": "finished"}}: {exc}'
        ) from None
    if not isinstance(value, dict):
        raise UsageError(f"filters must be a JSON object, got {type(value).__name__}")
    return value


def apply_edit(spec: dict[str, Any], op: str, form: Mapping[str, Any]) -> str:
    """Change ``spec`` as the editor's form asks; what was done (for the flash)."""
    blocks: list[dict[str, Any]] = spec.setdefault("blocks", [])
    if op == "meta":
        spec["title"] = str(form.get("title") or "").strip()
        spec["description"] = str(form.get("description") or "").strip()
        return "Saved the title and description"
    if op == "add":
        kind = str(form.get("type") or "")
        block: dict[str, Any]
        if kind in ("h1", "h2", "p", "markdown"):
            block = {"type": kind, "text": str(form.get("text") or "")}
        elif kind == "toc":
            block = {"type": "toc"}
        elif kind == "panel_grid":
            block = {"type": "panel_grid", "runsets": [], "panels": []}
            panel_kind = str(form.get("panel_type") or "")
            if panel_kind:
                block["panels"].append(new_panel(panel_kind, _keys(form.get("keys"))))
        else:
            raise UsageError(f"unknown block type {kind!r} (use one of {', '.join(BLOCK_CHOICES)})")
        blocks.append(block)
        return f"Added a {BLOCK_CHOICES[kind].lower()} block"
    if op in ("remove", "up", "down", "text"):
        i = _index(form, "block", len(blocks), "block")
        if op == "remove":
            gone = blocks.pop(i)
            return f"Removed block {i + 1} ({BLOCK_CHOICES.get(gone.get('type', ''), '?')})"
        if op == "text":
            if blocks[i].get("type") not in ("h1", "h2", "p", "markdown"):
                raise UsageError(f"block {i} has no text to edit")
            blocks[i]["text"] = str(form.get("text") or "")
            return f"Saved the text of block {i + 1}"
        j = i - 1 if op == "up" else i + 1
        if not 0 <= j < len(blocks):
            raise UsageError(f"block {i + 1} is already {'first' if op == 'up' else 'last'}")
        blocks[i], blocks[j] = blocks[j], blocks[i]
        return f"Moved block {i + 1} {op}"
    if op in ("add_panel", "remove_panel", "panel", "panel_up", "panel_down"):
        grid = _grid(spec, form)
        panels: list[dict[str, Any]] = grid["panels"]
        if op == "add_panel":
            kind = str(form.get("panel_type") or "")
            panels.append(new_panel(kind, _keys(form.get("keys"))))
            return f"Added a {PANEL_CHOICES[kind].lower()}"
        k = _index(form, "panel", len(panels), "panel")
        if op == "remove_panel":
            panels.pop(k)
            return f"Removed panel {k + 1}"
        if op in ("panel_up", "panel_down"):
            j = k - 1 if op == "panel_up" else k + 1
            if not 0 <= j < len(panels):
                raise UsageError(f"panel {k + 1} cannot move further")
            panels[k], panels[j] = panels[j], panels[k]
            return f"Moved panel {k + 1}"
        panel_fields(str(panels[k].get("type")), form, panels[k])
        return f"Saved panel {k + 1}"
    if op in ("add_runset", "remove_runset", "runset"):
        grid = _grid(spec, form)
        runsets: list[dict[str, Any]] = grid["runsets"]
        if op == "add_runset":
            runsets.append({"name": f"Run set {len(runsets) + 1}"})
            return "Added a run set"
        k = _index(form, "runset", len(runsets), "run set")
        if op == "remove_runset":
            runsets.pop(k)
            return f"Removed run set {k + 1}"
        runsets[k] = {
            "name": str(form.get("name") or "").strip() or "Run set",
            "entity": str(form.get("entity") or "").strip() or spec.get("entity"),
            "project": str(form.get("project") or "").strip() or spec.get("project"),
            "filters": parse_filters(form.get("filters")),
            "order": str(form.get("order") or "").strip() or "-created_at",
        }
        return f"Saved run set {k + 1}"
    raise UsageError(f"unknown edit {op!r}")


# ------------------------------------------------------------------ share links (public)

public = APIRouter(include_in_schema=False)


def share_media_url(token: str) -> Any:
    def url(entity: str, project: str, run_id: str, digest: str) -> str:
        parts = (token, entity, project, run_id, digest)
        t, e, p, r, d = (quote(str(x), safe="") for x in parts)
        return f"/share/r/{t}/media/{e}/{p}/{r}/{d}"

    return url


def _shared(request: Request, token: str) -> tuple[dict[str, Any], Any]:
    """The shared report and the store acting as the link's read-only principal."""
    store = request.app.state.store
    if not token or len(token) > 200:
        raise NotFound("this share link does not exist or was turned off")
    record, principal = store.report_by_share_token(token)
    return record, store.as_principal(principal)


@public.get("/share/r/{token}", response_class=HTMLResponse)
def shared_report(request: Request, token: str) -> HTMLResponse:
    record, store = _shared(request, token)
    data = _evaluate(store, record["spec"], media_url=share_media_url(token), run_links=False)
    return render(
        request,
        "report.html",
        record["title"],
        headers=SHARE_HEADERS,
        entity=record["entity"],
        project=record["project"],
        record=record,
        latest=record,
        old=False,
        shown={},
        revisions=[],
        can={"read": True, "write": False, "admin": False},
        shared=True,
        share={},
        new_link=None,
        blocks_html=render_blocks(data, links=False),
        report_data=report_json(data),
    )


@public.get("/share/r/{token}/media/{entity}/{project}/{run_id}/{digest}")
def shared_media(
    request: Request, token: str, entity: str, project: str, run_id: str, digest: str
) -> Response:
    from stemma.server.routes.media import MEDIA_HEADERS, _chunks

    _record, store = _shared(request, token)
    content_type = store.media_blob(run_ref(entity, project, run_id), digest)
    headers = {**MEDIA_HEADERS, "etag": f'"{digest}"', "x-robots-tag": "noindex, nofollow"}
    blobs: Any = store.blobs
    if hasattr(blobs, "path"):
        return FileResponse(blobs.path(digest), media_type=content_type, headers=headers)
    return _Streaming(_chunks(blobs.open(digest)), media_type=content_type, headers=headers)


# The module's router: the signed-in pages (page_router: sign-in redirect, form CSRF)
# and the public share routes, which must not be behind either.
router = APIRouter(include_in_schema=False)
router.include_router(pages)
router.include_router(public)

"""Artifact pages: a project's artifacts, one artifact's versions and alias history, one
version (metadata, aliases, files, runs), its lineage graph, and its diff against another.

* ``GET  /p/{e}/{p}/artifacts``: the project's artifacts grouped by type (``?type=``).
* ``GET  /p/{e}/{p}/artifacts/{name}``: versions (paged), alias history, "what did this
  alias point at then?", pending promotion requests.
* ``GET  /p/{e}/{p}/artifacts/{name}/v{N}``: one version (an alias in place of ``vN``
  redirects to the version it points at); files browsed by folder (``?dir=``).
* ``POST .../v{N}/aliases``, ``.../aliases/remove``, ``.../promotion``: add or move an
  alias here, remove one, ask for a protected one. A refusal is shown on the page.
* ``GET  .../v{N}/files/{path}``: one file's bytes as a download; ``.../view/{path}``
  shows a small text file (a CSV as a table).
* ``GET  .../v{N}/lineage?depth=&direction=``: the graph, drawn by ``lineage.js``.
* ``GET  .../v{N}/diff?against=vM``: what changed since ``vM`` (default the version before).

The store checks every read and write for the signed-in caller; ``abilities`` only decides
which forms are drawn.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import posixpath
import re
from collections.abc import Iterator
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import Form, Request
from fastapi.responses import (
    FileResponse,
    HTMLResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)

from stemma.errors import Conflict, InvalidNameError, NotFound, PermissionDenied, UsageError
from stemma.server.deps import Store
from stemma.server.web import page_router
from stemma.service.diff import TEXT_SUFFIXES
from stemma.ui.access import abilities
from stemma.ui.render import flash, isotime, render, urlpart
from stemma.wire.manifest import Entry
from stemma.wire.names import check_name
from stemma.wire.records import ArtifactRecord, ArtifactRef
from stemma.wire.values import to_storable

router = page_router()

LATEST = "latest"
VERSIONS_PAGE = 50  # versions per page of an artifact
FILES_PAGE = 500  # files and folders per page of a folder
REFERENCES_SHOWN = 200
HISTORY_SHOWN = 200
ALIASED_LIMIT = 5000  # aliased versions read for a project's artifact list
VIEW_LIMIT = 1 << 20  # larger files are downloaded, not shown
TABLE_ROWS = 1000  # rows of a CSV shown as a table
DEPTHS = range(1, 7)
DIRECTIONS = ("both", "upstream", "downstream")
_VERSION = re.compile(r"v(\d+)")


# ------------------------------------------------------------------ small helpers


def _check(entity: str, project: str, name: str | None = None) -> None:
    check_name(entity, "entity")
    check_name(project, "project")
    if name is not None:
        check_name(name, "artifact")


def _index(version: str) -> int | None:
    m = _VERSION.fullmatch(version)
    return int(m.group(1)) if m else None


def _ref(entity: str, project: str, name: str, version: str) -> ArtifactRef:
    _check(entity, project, name)
    index = _index(version)
    if index is None:
        raise NotFound(f"artifact {entity}/{project}/{name} has no version {version!r}")
    return ArtifactRef(entity, project, name, index)


def project_url(entity: str, project: str) -> str:
    return f"/p/{urlpart(entity)}/{urlpart(project)}"


def artifact_url(entity: str, project: str, name: str, version: int | None = None) -> str:
    url = f"{project_url(entity, project)}/artifacts/{urlpart(name)}"
    return url if version is None else f"{url}/v{version}"


def run_url(path: str | None) -> str | None:
    """``entity/project/run_id`` -> the run's page."""
    if not path:
        return None
    entity, project, run_id = path.split("/", 2)
    return f"{project_url(entity, project)}/r/{urlpart(run_id)}"


def file_url(ref: ArtifactRef, path: str, kind: str = "files") -> str:
    segments = "/".join(quote(part, safe="") for part in path.split("/"))
    return f"{artifact_url(ref.entity, ref.project, ref.name, ref.version)}/{kind}/{segments}"


def span(seconds: float) -> str:
    """604800 -> '7 d': a length of time as people say it."""
    seconds = abs(seconds)
    if seconds >= 60:
        seconds = round(seconds / 60) * 60  # "1 h", not "60 min", a moment later
    for size, unit in ((86400 * 365, "y"), (86400, "d"), (3600, "h"), (60, "min")):
        if seconds >= size:
            value = seconds / size
            return (
                f"{value:.0f} {unit}"
                if value >= 10 or value.is_integer()
                else f"{value:.1f} {unit}"
            )
    return f"{seconds:.0f} s"


def expiry(rec: ArtifactRecord, now: dt.datetime | None = None) -> dict[str, Any] | None:
    """The TTL of a version and when it expires (None: kept until deleted)."""
    if rec.ttl_seconds is None:
        return None
    at = rec.created_at + dt.timedelta(seconds=rec.ttl_seconds)
    left = (at - (now or dt.datetime.now(dt.UTC))).total_seconds()
    return {
        "ttl": span(rec.ttl_seconds),
        "at": at,
        "expired": left <= 0,
        "text": "expired, deleted at the next gc" if left <= 0 else f"expires in {span(left)}",
    }


def pretty_json(value: Any) -> str:
    """Metadata for a <pre> (escaped by the template)."""
    try:
        return json.dumps(to_storable(value), indent=2, ensure_ascii=False, sort_keys=True)
    except (TypeError, ValueError):
        return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)


def short_value(value: Any, limit: int = 200) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def creator_rows(creator: dict[str, Any]) -> list[tuple[str, str]]:
    """Who, where and with which code a version was logged, as (label, text) rows."""
    rows = []
    for key, value in sorted(creator.items()):
        if key in ("run", "deleted_by", "delete_reason") or value is None or value == "":
            continue  # the run has its own row; a deletion is said above the table
        if key.endswith("_at") and isinstance(value, int | float):
            value = isotime(dt.datetime.fromtimestamp(value, dt.UTC))
        rows.append((key.replace("_", " "), short_value(value)))
    return rows


def viewable(entry: Entry) -> bool:
    """Whether the page can show the file (small, stored, with a text suffix)."""
    suffix = posixpath.splitext(entry.path)[1].lower()
    return (
        entry.ref is None
        and entry.digest is not None
        and (entry.size or 0) <= VIEW_LIMIT
        and (suffix in TEXT_SUFFIXES or "." not in posixpath.basename(entry.path))
    )


def _aliases_by_version(store: Any, entity: str, project: str, name: str) -> dict[str, int]:
    """alias -> version index for every alias of one artifact."""
    found = store.query_artifact_versions(
        entity, project, name=name, filters={"aliases": {"$regex": "."}}, limit=ALIASED_LIMIT
    )
    return {alias: rec.version for rec in found for alias in rec.aliases}


def _previous(store: Any, ref: ArtifactRef) -> int | None:
    """The newest committed version before ``ref`` (None for the first)."""
    found = store.query_artifact_versions(
        ref.entity,
        ref.project,
        name=ref.name,
        filters={"version": {"$lt": ref.version}},
        order="-version",
        limit=1,
    )
    return found[0].version if found else None


def _offset(value: int) -> int:
    return max(0, value)


# ------------------------------------------------------------------ the project's artifacts


@router.get("/p/{entity}/{project}/artifacts", response_class=HTMLResponse)
def collections(
    request: Request, store: Store, entity: str, project: str, type: str | None = None
) -> HTMLResponse:
    _check(entity, project)
    type_ = type or None
    found = store.list_artifact_collections(entity, project, type_)
    types = store.artifact_types(entity, project)
    protected = set(store.get_protected_aliases(entity, project))
    aliased = store.query_artifact_versions(
        entity,
        project,
        type_=type_,
        filters={"aliases": {"$regex": "."}},
        order="name",
        limit=ALIASED_LIMIT,
    )
    aliases: dict[str, list[tuple[str, int]]] = {}
    updated: dict[str, dt.datetime] = {}
    for rec in aliased:
        for alias in rec.aliases:
            if alias == LATEST:
                updated[rec.name] = rec.created_at
            else:
                aliases.setdefault(rec.name, []).append((alias, rec.version))
    groups: dict[str, list[dict[str, Any]]] = {}
    for c in found:
        c["aliases"] = sorted(aliases.get(c["name"], []))
        c["updated"] = updated.get(c["name"]) or c["created_at"]
        c["url"] = artifact_url(entity, project, c["name"])
        groups.setdefault(c["type"], []).append(c)
    return render(
        request,
        "artifacts.html",
        f"Artifacts · {entity}/{project}",
        entity=entity,
        project=project,
        base=project_url(entity, project),
        groups=sorted(groups.items()),
        types=types,
        type_=type_ or "",
        protected=protected,
        can=abilities(store, entity, project),
    )


# ------------------------------------------------------------------ one artifact


def _as_of(store: Any, entity: str, project: str, name: str, alias: str, at: str) -> dict[str, Any]:
    """What ``alias`` pointed at, at time ``at`` (an ISO date or date-time, UTC)."""
    answer: dict[str, Any] = {"alias": alias, "at": at}
    try:
        when = dt.datetime.fromisoformat(at)
    except ValueError:
        answer["error"] = f"{at!r} is not a date and time (e.g. 2026-10-01T12:00)"
        return answer
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    try:
        rec = store.get_artifact(entity, project, name, alias, when, with_manifest=False)
    except (NotFound, UsageError) as exc:
        answer["error"] = exc.message
        return answer
    answer["version"] = rec.version
    answer["url"] = artifact_url(entity, project, name, rec.version)
    return answer


@router.get("/p/{entity}/{project}/artifacts/{name}", response_class=HTMLResponse)
def collection(
    request: Request,
    store: Store,
    entity: str,
    project: str,
    name: str,
    offset: int = 0,
    alias: str = "",
    at: str = "",
) -> HTMLResponse:
    _check(entity, project, name)
    offset = _offset(offset)
    total = store.count_artifact_versions(entity, project, name=name)
    versions = store.query_artifact_versions(
        entity, project, name=name, order="-version", offset=offset, limit=VERSIONS_PAGE
    )
    info = next(
        (c for c in store.list_artifact_collections(entity, project) if c["name"] == name), {}
    )
    protected = set(store.get_protected_aliases(entity, project))
    history = [h for h in store.alias_history(entity, project, name) if h["alias"] != LATEST]
    history.reverse()
    promotions = store.list_promotions(entity, project, name)
    rows = [
        {
            "rec": rec,
            "url": artifact_url(entity, project, name, rec.version),
            "run_url": run_url(rec.run_path),
            "expiry": expiry(rec),
        }
        for rec in versions
    ]
    known_aliases = sorted({h["alias"] for h in history} | protected)
    return render(
        request,
        "artifact_collection.html",
        f"{name} · artifacts · {entity}/{project}",
        entity=entity,
        project=project,
        name=name,
        base=project_url(entity, project),
        home=artifact_url(entity, project, name),
        info=info,
        rows=rows,
        total=total,
        offset=offset,
        limit=VERSIONS_PAGE,
        protected=protected,
        history=history[:HISTORY_SHOWN],
        history_total=len(history),
        promotions=promotions,
        known_aliases=known_aliases,
        as_of=_as_of(store, entity, project, name, alias, at) if alias and at else None,
        as_of_alias=alias,
        as_of_at=at,
        can=abilities(store, entity, project),
    )


# ------------------------------------------------------------------ one version


def _folder(entries: list[Entry], folder: str) -> list[dict[str, Any]]:
    """The folders and files directly inside ``folder`` ("" for the top), folders first."""
    prefix = f"{folder}/" if folder else ""
    folders: dict[str, dict[str, Any]] = {}
    files: list[dict[str, Any]] = []
    for e in entries:
        if not e.path.startswith(prefix):
            continue
        rest = e.path[len(prefix) :]
        if "/" in rest:
            sub = rest.split("/", 1)[0]
            item = folders.setdefault(
                sub, {"kind": "dir", "name": sub, "path": prefix + sub, "files": 0, "size": 0}
            )
            item["files"] += 1
            item["size"] += e.size or 0
        else:
            files.append({"kind": "file", "name": rest, "entry": e})
    return [folders[k] for k in sorted(folders)] + files


def _version_page(
    request: Request,
    store: Any,
    ref: ArtifactRef,
    *,
    folder: str = "",
    offset: int = 0,
    error: str | None = None,
    status: int = 200,
    typed_alias: str = "",
    promote: str = "",
) -> HTMLResponse:
    """The version page; after a refused form, ``error`` and what was typed are shown."""
    entity, project, name = ref.entity, ref.project, ref.name
    rec = store.get_artifact(entity, project, name, f"v{ref.version}", with_manifest=True)
    can = abilities(store, entity, project)
    protected = set(store.get_protected_aliases(entity, project))
    logged, used = store.artifact_runs(ref)
    entries: list[Entry] = list(rec.manifest) if rec.manifest is not None else []
    folder = folder.strip("/")
    items = _folder(entries, folder)
    if folder and not items:
        raise NotFound(f"{name}:v{ref.version} has no folder {folder!r}")
    offset = _offset(offset)
    for item in items[offset : offset + FILES_PAGE]:
        if item["kind"] == "file":
            e = item["entry"]
            item["download"] = file_url(ref, e.path) if e.ref is None else None
            item["view"] = file_url(ref, e.path, "view") if viewable(e) else None
    crumbs_dir: list[tuple[str, str]] = []
    if folder:
        parts = folder.split("/")
        crumbs_dir = [(p, "/".join(parts[: i + 1])) for i, p in enumerate(parts)]
    references = [e for e in entries if e.ref is not None]
    all_aliases = _aliases_by_version(store, entity, project, name)
    pending = [
        p for p in store.list_promotions(entity, project, name) if p["version"] == f"v{ref.version}"
    ]
    graph = store.artifact_lineage(ref, 1, "both")
    here = artifact_url(entity, project, name, ref.version)
    return render(
        request,
        "artifact_version.html",
        f"{name}:v{ref.version} · {entity}/{project}",
        status=status,
        entity=entity,
        project=project,
        name=name,
        ref=ref,
        rec=rec,
        base=project_url(entity, project),
        home=artifact_url(entity, project, name),
        here=here,
        can=can,
        protected=protected,
        expiry=expiry(rec),
        metadata=pretty_json(rec.metadata) if rec.metadata else "",
        creator=creator_rows(rec.creator),
        logged=logged,
        logged_url=run_url(logged.ref.path) if logged else None,
        used=[(r, run_url(r.ref.path)) for r in used],
        items=items[offset : offset + FILES_PAGE],
        items_total=len(items),
        files_query=urlencode({"dir": folder}) if folder else "",
        folder=folder,
        crumbs_dir=crumbs_dir,
        offset=offset,
        limit=FILES_PAGE,
        references=references[:REFERENCES_SHOWN],
        references_total=len(references),
        elsewhere=sorted(
            (a, v) for a, v in all_aliases.items() if v != ref.version and a != LATEST
        ),
        pending=pending,
        previous=_previous(store, ref),
        graph=_graph_data(graph, 1, "both"),
        error=error,
        typed_alias=typed_alias,
        promote=promote,
    )


@router.get("/p/{entity}/{project}/artifacts/{name}/{version}", response_class=HTMLResponse)
def version_page(
    request: Request,
    store: Store,
    entity: str,
    project: str,
    name: str,
    version: str,
    dir: str = "",
    offset: int = 0,
) -> Response:
    _check(entity, project, name)
    if _index(version) is None:  # an alias: show the version it points at now
        try:
            rec = store.get_artifact(entity, project, name, version, with_manifest=False)
        except InvalidNameError:
            raise NotFound(
                f"artifact {entity}/{project}/{name} has no version {version!r}"
            ) from None
        return RedirectResponse(artifact_url(entity, project, name, rec.version), status_code=303)
    return _version_page(
        request, store, _ref(entity, project, name, version), folder=dir, offset=offset
    )


def _refused(
    request: Request, store: Any, ref: ArtifactRef, exc: Exception, alias: str
) -> HTMLResponse:
    """The version page again, saying why a change was refused (nothing changed)."""
    message = getattr(exc, "message", str(exc))
    status = 403 if isinstance(exc, PermissionDenied) else 409 if isinstance(exc, Conflict) else 400
    protected = isinstance(exc, PermissionDenied) and "protected" in message
    return _version_page(
        request,
        store,
        ref,
        error=message,
        status=status,
        typed_alias=alias,
        promote=alias if protected else "",
    )


def _require_write(store: Any, ref: ArtifactRef) -> None:
    """Members only, even when the form would change nothing (the store checks writes)."""
    if not abilities(store, ref.entity, ref.project)["write"]:
        raise PermissionDenied(
            f"you may read {ref.entity}/{ref.project} but not change its artifacts: ask a "
            "team admin to make you a member"
        )


def _back(ref: ArtifactRef, message: str) -> Response:
    response = RedirectResponse(
        artifact_url(ref.entity, ref.project, ref.name, ref.version) + "#aliases", status_code=303
    )
    return flash(response, message)


@router.post("/p/{entity}/{project}/artifacts/{name}/{version}/aliases")
def add_alias(
    request: Request,
    store: Store,
    entity: str,
    project: str,
    name: str,
    version: str,
    alias: Annotated[str, Form()] = "",
) -> Response:
    """Point ``alias`` at this version (moving it from where it was)."""
    ref = _ref(entity, project, name, version)
    alias = alias.strip()
    try:
        if not alias:
            raise UsageError("type the alias to point at this version")
        _require_write(store, ref)
        current = store.get_artifact(entity, project, name, version, with_manifest=False).aliases
        if alias in current:
            return _back(ref, f"{alias} already points at {name}:{version}.")
        was = _aliases_by_version(store, entity, project, name).get(alias)
        store.update_artifact(ref, {"add_aliases": [alias]})
    except (PermissionDenied, UsageError, Conflict) as exc:
        return _refused(request, store, ref, exc, alias)
    moved = f" (moved from v{was})" if was is not None else ""
    return _back(ref, f"{alias} now points at {name}:{version}{moved}.")


@router.post("/p/{entity}/{project}/artifacts/{name}/{version}/aliases/remove")
def remove_alias(
    request: Request,
    store: Store,
    entity: str,
    project: str,
    name: str,
    version: str,
    alias: Annotated[str, Form()] = "",
) -> Response:
    ref = _ref(entity, project, name, version)
    try:
        _require_write(store, ref)
        current = store.get_artifact(entity, project, name, version, with_manifest=False).aliases
        if alias not in current:
            return _back(ref, f"{alias} does not point at {name}:{version}; nothing changed.")
        store.update_artifact(ref, {"remove_aliases": [alias]})
    except (PermissionDenied, UsageError, Conflict) as exc:
        return _refused(request, store, ref, exc, "")
    return _back(ref, f"Removed {alias} from {name}:{version}.")


@router.post("/p/{entity}/{project}/artifacts/{name}/{version}/promotion")
def request_promotion(
    request: Request,
    store: Store,
    entity: str,
    project: str,
    name: str,
    version: str,
    alias: Annotated[str, Form()] = "",
    comment: Annotated[str, Form()] = "",
) -> Response:
    """Ask a team admin to point a (protected) alias here."""
    ref = _ref(entity, project, name, version)
    alias = alias.strip()
    try:
        if not alias:
            raise UsageError("type the alias you want to point at this version")
        req = store.request_promotion(ref, alias, comment.strip() or None)
    except (PermissionDenied, UsageError, Conflict) as exc:
        return _refused(request, store, ref, exc, alias)
    return _back(
        ref,
        f"Requested {alias} → {name}:{version} (request {req['id']}). A team admin approves "
        "or rejects it in the project's settings.",
    )


# ------------------------------------------------------------------ files


def _entry(store: Any, ref: ArtifactRef, path: str) -> tuple[ArtifactRecord, Entry]:
    rec = store.get_artifact(
        ref.entity, ref.project, ref.name, f"v{ref.version}", with_manifest=True
    )
    entry = rec.manifest.get(path) if rec.manifest is not None else None
    if entry is None:
        raise NotFound(f"{ref.name}:v{ref.version} has no file {path!r}", path=path)
    return rec, entry


def _disposition(path: str) -> str:
    """``attachment`` with the file's base name (ASCII fallback, then UTF-8)."""
    base = posixpath.basename(path) or "download"
    plain = "".join(c if c.isascii() and (c.isalnum() or c in "._- ") else "_" for c in base)
    return f"attachment; filename=\"{plain}\"; filename*=UTF-8''{quote(base, safe='')}"


def _chunks(fh: Any) -> Iterator[bytes]:
    with fh:
        while chunk := fh.read(1 << 20):
            yield chunk


@router.get("/p/{entity}/{project}/artifacts/{name}/{version}/files/{path:path}")
def download(
    store: Store, entity: str, project: str, name: str, version: str, path: str
) -> Response:
    """One stored file's bytes, as a download (never shown inline in our origin)."""
    ref = _ref(entity, project, name, version)
    _rec, entry = _entry(store, ref, path)
    if entry.ref is not None or entry.digest is None:
        raise NotFound(f"{path!r} is a reference to {entry.ref}: its bytes are not stored here")
    headers = {
        "content-disposition": _disposition(path),
        "x-content-type-options": "nosniff",
        "content-security-policy": "sandbox",
        "cache-control": "private, max-age=31536000, immutable",
        "etag": f'"{entry.digest}"',
    }
    blobs: Any = store.blobs  # local directory or object store: duck-typed extras
    if hasattr(blobs, "path") and entry.chunks is None:
        local = blobs.path(entry.digest)
        if not local.is_file():
            raise NotFound(f"the bytes of {path!r} are missing from the store")
        return FileResponse(local, media_type="application/octet-stream", headers=headers)
    if entry.size is not None:
        headers["content-length"] = str(entry.size)
    return StreamingResponse(
        _chunks(blobs.open(entry.digest)), media_type="application/octet-stream", headers=headers
    )


def _text_of(store: Any, entry: Entry) -> str | None:
    if not viewable(entry):
        return None
    with store.blobs.open(entry.digest) as fh:
        data = fh.read(VIEW_LIMIT + 1)
    if len(data) > VIEW_LIMIT or b"\x00" in data[:8192]:
        return None
    try:
        return str(data.decode("utf-8"))
    except UnicodeDecodeError:
        return None


def _table(path: str, text: str) -> tuple[list[list[str]], bool] | None:
    """A CSV/TSV file's first rows (header first), and whether there were more."""
    suffix = posixpath.splitext(path)[1].lower()
    if suffix not in (".csv", ".tsv"):
        return None
    try:
        reader = csv.reader(text.splitlines(), delimiter="\t" if suffix == ".tsv" else ",")
        rows: list[list[str]] = []
        for row in reader:
            if len(rows) > TABLE_ROWS:
                return rows[: TABLE_ROWS + 1], True
            rows.append(row)
    except csv.Error:
        return None
    return (rows, False) if rows else None


@router.get(
    "/p/{entity}/{project}/artifacts/{name}/{version}/view/{path:path}",
    response_class=HTMLResponse,
)
def view_file(
    request: Request,
    store: Store,
    entity: str,
    project: str,
    name: str,
    version: str,
    path: str,
    raw: bool = False,
) -> HTMLResponse:
    ref = _ref(entity, project, name, version)
    rec, entry = _entry(store, ref, path)
    text = _text_of(store, entry)
    table = None if text is None or raw else _table(path, text)
    folder = posixpath.dirname(path)
    return render(
        request,
        "artifact_file.html",
        f"{posixpath.basename(path)} · {name}:v{ref.version}",
        entity=entity,
        project=project,
        name=name,
        ref=ref,
        rec=rec,
        entry=entry,
        text=text,
        table=table,
        raw=raw,
        base=project_url(entity, project),
        home=artifact_url(entity, project, name),
        here=artifact_url(entity, project, name, ref.version),
        folder_url=artifact_url(entity, project, name, ref.version)
        + (f"?{urlencode({'dir': folder})}" if folder else "")
        + "#files",
        download=file_url(ref, path) if entry.ref is None else None,
    )


# ------------------------------------------------------------------ lineage


def _graph_data(graph: dict[str, Any], depth: int, direction: str) -> dict[str, Any]:
    """The lineage graph for lineage.js: labelled nodes with their links, and edges."""
    root = graph["root"]
    root_project = root.split(":", 1)[1].split("/")[:2]
    query = urlencode({"depth": depth, "direction": direction})
    nodes = []
    for n in graph["nodes"]:
        entity, project, rest = n["path"].split("/", 2)
        where = "" if [entity, project] == root_project else f"{entity}/{project} · "
        if n["kind"] == "artifact":
            art, _, version = rest.rpartition(":v")
            aliases = [a for a in n.get("aliases") or [] if a != LATEST]
            sub = n.get("type") or "artifact"
            if aliases:
                sub += " · " + ", ".join(aliases)
            if n.get("state") == "deleted":
                sub += " · deleted"
            href = f"{artifact_url(entity, project, art, int(version))}/lineage?{query}"
            label = rest
            aria = f"artifact {rest} ({n.get('type')})"
        else:
            label = n.get("name") or rest
            sub = f"run · {n.get('job_type') or n.get('state') or ''}".rstrip(" ·")
            if n.get("job_type") and n.get("state"):
                sub += f" · {n['state']}"
            href = run_url(n["path"]) or ""
            aria = f"run {label} ({rest}, {n.get('state')})"
        nodes.append(
            {
                "id": n["id"],
                "kind": n["kind"],
                "label": label,
                "sub": where + sub,
                "href": href,
                "aria": aria,
                "state": n.get("state"),
                "focus": n["id"] == root,
            }
        )
    return {
        "root": root,
        "nodes": nodes,
        "edges": [{"source": e["source"], "target": e["target"]} for e in graph["edges"]],
        "hidden": graph.get("hidden", 0),
    }


@router.get("/p/{entity}/{project}/artifacts/{name}/{version}/lineage", response_class=HTMLResponse)
def lineage(
    request: Request,
    store: Store,
    entity: str,
    project: str,
    name: str,
    version: str,
    depth: int = 2,
    direction: str = "both",
) -> HTMLResponse:
    ref = _ref(entity, project, name, version)
    depth = min(max(depth, DEPTHS.start), DEPTHS.stop - 1)
    direction = direction if direction in DIRECTIONS else "both"
    rec = store.get_artifact(entity, project, name, version, with_manifest=False)
    data = _graph_data(store.artifact_lineage(ref, depth, direction), depth, direction)
    labels = {n["id"]: n for n in data["nodes"]}
    return render(
        request,
        "artifact_lineage.html",
        f"Lineage of {name}:v{ref.version} · {entity}/{project}",
        entity=entity,
        project=project,
        name=name,
        ref=ref,
        rec=rec,
        base=project_url(entity, project),
        home=artifact_url(entity, project, name),
        here=artifact_url(entity, project, name, ref.version),
        graph=data,
        labels=labels,
        depth=depth,
        depths=list(DEPTHS),
        direction=direction,
        directions=DIRECTIONS,
    )


# ------------------------------------------------------------------ diff


def _csv_cells(line: str, path: str) -> list[str]:
    delimiter = "\t" if path.lower().endswith(".tsv") else ","
    try:
        return next(csv.reader([line], delimiter=delimiter), [line])
    except csv.Error:
        return [line]


def _shape_change(item: dict[str, Any]) -> dict[str, Any]:
    """One changed file of the service's diff, made ready to draw."""
    content = item.get("content")
    out = dict(item)
    if not content:
        return out
    if content["kind"] == "rows":
        header = content.get("header")
        out["header"] = _csv_cells(header, item["path"]) if header else None
        out["rows"] = [("del", _csv_cells(r, item["path"])) for r in content["rows_removed"]] + [
            ("add", _csv_cells(r, item["path"])) for r in content["rows_added"]
        ]
    else:
        lines = []
        for line in content["diff"]:
            if line.startswith(("+++", "---")):
                kind = "head"
            elif line.startswith("@@"):
                kind = "hunk"
            elif line.startswith("+"):
                kind = "add"
            elif line.startswith("-"):
                kind = "del"
            else:
                kind = "same"
            lines.append((kind, line))
        out["lines"] = lines
    return out


def _dict_rows(diff: dict[str, Any] | None) -> list[tuple[str, str, str | None, str | None]]:
    """(key, how, old, new) rows of a metadata or config diff."""
    if not diff:
        return []
    rows: list[tuple[str, str, str | None, str | None]] = []
    rows += [(k, "added", None, short_value(v)) for k, v in diff["added"].items()]
    rows += [(k, "removed", short_value(v), None) for k, v in diff["removed"].items()]
    rows += [
        (k, "changed", short_value(a), short_value(b)) for k, (a, b) in diff["changed"].items()
    ]
    return sorted(rows)


@router.get("/p/{entity}/{project}/artifacts/{name}/{version}/diff", response_class=HTMLResponse)
def diff(
    request: Request,
    store: Store,
    entity: str,
    project: str,
    name: str,
    version: str,
    against: str = "",
) -> HTMLResponse:
    ref = _ref(entity, project, name, version)
    rec = store.get_artifact(entity, project, name, version, with_manifest=False)
    others = [
        v for v in store.list_artifact_versions(entity, project, name) if v.version != ref.version
    ]
    if against:
        other = _index(against)
        if other is None:
            raise NotFound(f"artifact {entity}/{project}/{name} has no version {against!r}")
    else:
        other = _previous(store, ref)
        if other is None and others:
            other = others[0].version
    result = None
    if other is not None:
        result = store.artifact_diff(ArtifactRef(entity, project, name, other), ref, True)
        result["files"]["changed"] = [_shape_change(c) for c in result["files"]["changed"]]
    return render(
        request,
        "artifact_diff.html",
        f"{name}:v{ref.version} vs v{other} · {entity}/{project}"
        if other is not None
        else f"Diff of {name}:v{ref.version} · {entity}/{project}",
        entity=entity,
        project=project,
        name=name,
        ref=ref,
        rec=rec,
        base=project_url(entity, project),
        home=artifact_url(entity, project, name),
        here=artifact_url(entity, project, name, ref.version),
        other=other,
        other_url=artifact_url(entity, project, name, other) if other is not None else None,
        others=others,
        result=result,
        metadata_rows=_dict_rows(result["metadata"]) if result else [],
        config_rows=_dict_rows(result["config"]) if result else [],
        runs={k: run_url(v) for k, v in result["runs"].items()} if result else {},
    )

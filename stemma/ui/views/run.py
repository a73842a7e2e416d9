"""The run page and the compare page.

* ``GET /p/{entity}/{project}/r/{run_id}``: one run. A header (name, state, who, when,
  where, tags) and four tabs chosen by ``?tab=``: *charts* (one chart per numeric history
  key, grouped by key prefix, system metrics last), *overview* (config, summary, notes,
  system information), *media* and *artifacts* (versions used and logged). The charts
  are drawn by ``run.js`` from the JSON history API; this module only says which keys
  are numeric, so the page can lay out one box per chart before any data arrives.
* ``POST /p/{entity}/{project}/r/{run_id}/edit``: display name, tags and notes (members).
* ``GET /p/{entity}/{project}/compare?runs=a,b&keys=x,y&config=lr``: one chart per key
  with one line per run (up to :data:`MAX_COMPARE` runs), and a table of the runs.
  ``filters=`` (a JSON run filter, as the API takes) may select the runs instead.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Annotated, Any

from fastapi import Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from stemma.errors import NotFound, PermissionDenied, UsageError
from stemma.server.deps import Store, run_ref
from stemma.server.web import page_router
from stemma.ui.access import abilities
from stemma.ui.render import flash, render, urlpart
from stemma.wire.chunks import Column
from stemma.wire.history import FLOAT64, INT64
from stemma.wire.names import check_name
from stemma.wire.records import RunRecord, RunRef

router = page_router()

TABS = ("charts", "overview", "media", "artifacts")
# History keys that are x axes (or bookkeeping), never charts of their own.
X_KEYS = frozenset(("_step", "_runtime", "_timestamp", "system/_runtime", "system/_timestamp"))
MAX_COMPARE = 500  # runs on one compare page
MAX_COMPARE_KEYS = 100  # charts on one compare page
DEFAULT_COMPARE_KEYS = 24  # charts shown when the URL names none
DEFAULT_CONFIG_COLUMNS = 8
MAX_NAME = 128
MAX_TAG = 128
MAX_TAGS = 100
MAX_NOTES = 100_000
MAX_MEDIA_STEPS = 500  # steps of one media key the page's slider offers


# ------------------------------------------------------------------ shared helpers


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _numeric(col: Column) -> bool:
    """A key worth a line chart: numbers (a msgpack column counts when it holds some)."""
    if col.kind in (FLOAT64, INT64):
        return True
    return any(_is_number(v) for v in col.values)


def _group_of(key: str) -> str:
    """``train/loss`` -> ``train``; a key without a prefix has the group ``""``."""
    return key.rsplit("/", 1)[0] if "/" in key else ""


def chart_keys(store: Any, ref: RunRef) -> list[dict[str, Any]]:
    """The run's numeric history keys as ``{key, stream, group}``, grouped by prefix
    (keys without one first, ``system/*`` last). A sampled read of every key (4 points
    each) decides which are numeric: it reads chunk summaries, not whole histories."""
    found: list[dict[str, Any]] = []
    for stream in ("default", "system"):
        cols = store.read_history(ref, None, stream=stream, samples=4)
        for key, col in cols.items():
            if key in X_KEYS or key.startswith("_") or not len(col) or not _numeric(col):
                continue
            found.append({"key": key, "stream": stream, "group": _group_of(key)})

    def order(item: dict[str, Any]) -> tuple[int, str, str]:
        rank = 2 if item["stream"] == "system" else (0 if item["group"] == "" else 1)
        return rank, item["group"], item["key"]

    found.sort(key=order)
    return found


def _sections(keys: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Chart keys as consecutive sections ``{title, keys}`` (one per prefix)."""
    out: list[dict[str, Any]] = []
    for item in keys:
        if not out or out[-1]["group"] != item["group"]:
            out.append({"title": item["group"] or "Charts", "group": item["group"], "keys": []})
        out[-1]["keys"].append(item)
    return out


def flatten(data: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """Nested mappings as sorted ``(a.b.c, value)`` rows for a key/value table."""
    rows: list[tuple[str, Any]] = []
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value and "_type" not in value and "$float" not in value:
            rows.extend(flatten(value, name + "."))
        else:
            rows.append((name, value))
    rows.sort(key=lambda kv: kv[0])
    return rows


def _short(value: Any) -> Any:
    """A config/metadata value for a table cell: lists and maps as compact JSON."""
    if isinstance(value, list | tuple | dict) and not (
        isinstance(value, dict) and ("_type" in value or "$float" in value)
    ):
        return json.dumps(value, default=str, ensure_ascii=False)[:2000]
    return value


def _run_json(record: RunRecord) -> dict[str, Any]:
    """What the page's script needs about the run (state and where it lives)."""
    return {
        "entity": record.entity,
        "project": record.project,
        "run_id": record.run_id,
        "name": record.name,
        "state": record.state,
        "last_step": record.last_step,
    }


# ------------------------------------------------------------------ the run page


def _require_run(store: Any, ref: RunRef) -> RunRecord:
    record = store.get_run(ref)
    if record is None:
        raise NotFound(f"run {ref.path} does not exist (or you may not read it)", path=ref.path)
    assert isinstance(record, RunRecord)
    return record


def _media(store: Any, ref: RunRef) -> list[dict[str, Any]]:
    """The run's media grouped by key: ``{key, kind, items: [{step, digest, ...}]}``."""
    if not hasattr(store, "list_media"):  # a store without media support
        return []
    by_key: dict[str, dict[str, Any]] = {}
    for item in store.list_media(ref):
        entry = by_key.setdefault(item["key"], {"key": item["key"], "items": []})
        entry["kind"] = item["kind"]
        entry["items"].append(
            {
                "step": item["step"],
                "kind": item["kind"],
                "digest": item["digest"],
                "caption": item.get("caption"),
                "meta": item.get("meta") or {},
            }
        )
    out = []
    for key in sorted(by_key):
        entry = by_key[key]
        items = entry["items"]
        entry["total"] = len(items)
        if len(items) > MAX_MEDIA_STEPS:  # the slider walks an even sample, last step kept
            last = len(items) - 1
            picks = sorted(
                {round(i * last / (MAX_MEDIA_STEPS - 1)) for i in range(MAX_MEDIA_STEPS)}
            )
            entry["items"] = [items[i] for i in picks]
        out.append(entry)
    return out


def _artifact_rows(store: Any, ref: RunRef, direction: str) -> list[Any]:
    return list(store.run_artifacts(ref, direction))


def _run_page(
    request: Request,
    store: Any,
    record: RunRecord,
    tab: str,
    *,
    status: int = 200,
    edit_error: str | None = None,
    edit_values: Mapping[str, str] | None = None,
) -> HTMLResponse:
    ref = record.ref
    can = abilities(store, ref.entity, ref.project)
    # Every media row only where they are shown; the other tabs need their number.
    media = _media(store, ref) if tab == "media" else []
    used = _artifact_rows(store, ref, "input")
    logged = _artifact_rows(store, ref, "output")
    keys = chart_keys(store, ref) if tab == "charts" else []
    summary = [(k, _short(v)) for k, v in flatten(record.summary) if not k.startswith("_")]
    values = {
        "name": record.name,
        "tags": ", ".join(record.tags),
        "notes": record.notes or "",
        **(edit_values or {}),
    }
    return render(
        request,
        "run.html",
        f"{record.name} · {ref.project}",
        status=status,
        run=record,
        ref=ref,
        tab=tab,
        tabs=TABS,
        can=can,
        keys=keys,
        sections=_sections(keys),
        media=media,
        media_count=store.count_media(ref),
        used=used,
        logged=logged,
        config=[(k, _short(v)) for k, v in flatten(record.config)],
        summary=summary,
        metadata=[(k, _short(v)) for k, v in flatten(record.metadata)],
        run_json=_run_json(record),
        edit_error=edit_error,
        edit=values,
        base=f"/p/{urlpart(ref.entity)}/{urlpart(ref.project)}",
    )


@router.get("/p/{entity}/{project}/r/{run_id}", response_class=HTMLResponse)
def run_page(
    request: Request, entity: str, project: str, run_id: str, store: Store, tab: str = "charts"
) -> HTMLResponse:
    ref = run_ref(entity, project, run_id)
    record = _require_run(store, ref)
    return _run_page(request, store, record, tab if tab in TABS else "charts")


def _parse_tags(raw: str) -> list[str]:
    tags: list[str] = []
    for part in raw.replace("\n", ",").split(","):
        tag = part.strip()
        if not tag:
            continue
        if len(tag) > MAX_TAG or "\x00" in tag:
            raise UsageError(f"a tag may have at most {MAX_TAG} characters: {tag[:40]!r}…")
        if tag not in tags:
            tags.append(tag)
    if len(tags) > MAX_TAGS:
        raise UsageError(f"at most {MAX_TAGS} tags, got {len(tags)}")
    return tags


@router.post("/p/{entity}/{project}/r/{run_id}/edit", response_class=HTMLResponse)
def edit_run(
    request: Request,
    entity: str,
    project: str,
    run_id: str,
    store: Store,
    name: Annotated[str | None, Form()] = None,
    tags: Annotated[str | None, Form()] = None,
    notes: Annotated[str | None, Form()] = None,
    tab: Annotated[str, Form()] = "charts",
) -> Response:
    """Display name, tags and notes from the run page's form (members only: the store
    refuses anyone else, whatever the page showed them)."""
    ref = run_ref(entity, project, run_id)
    can = abilities(store, ref.entity, ref.project)
    if not can["read"]:
        raise NotFound(f"run {ref.path} does not exist (or you may not read it)", path=ref.path)
    if not can["write"]:
        raise PermissionDenied(f"only members of {ref.entity} may edit its runs")
    tab = tab if tab in TABS else "charts"
    changes: dict[str, Any] = {}
    try:
        if name is not None:
            name = name.strip()
            if not name or len(name) > MAX_NAME or "\x00" in name:
                raise UsageError(f"the display name must have 1 to {MAX_NAME} characters")
            changes["name"] = name
        if tags is not None:
            changes["tags"] = _parse_tags(tags)
        if notes is not None:
            if len(notes) > MAX_NOTES or "\x00" in notes:
                raise UsageError(f"notes may have at most {MAX_NOTES} characters")
            changes["notes"] = notes.replace("\r\n", "\n")
    except UsageError as exc:
        record = _require_run(store, ref)
        entered = {"name": name or "", "tags": tags or "", "notes": notes or ""}
        return _run_page(
            request, store, record, tab, status=400, edit_error=exc.message, edit_values=entered
        )
    if changes:
        store.update_run(ref, changes)
    target = f"/p/{urlpart(entity)}/{urlpart(project)}/r/{urlpart(run_id)}"
    if tab != "charts":
        target += f"?tab={tab}"
    return flash(RedirectResponse(target, status_code=303), "Run updated.")


# ------------------------------------------------------------------ the compare page


def _split_list(values: Iterable[str], limit: int) -> list[str]:
    """``a,b`` and repeated parameters as one list (order kept, no repeats)."""
    out: list[str] = []
    for value in values:
        for part in value.split(","):
            part = part.strip()
            if part and part not in out:
                out.append(part)
                if len(out) >= limit:
                    return out
    return out


def _parse_filters(raw: str) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise UsageError(f"filters is not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise UsageError("filters must be a JSON object")
    return value


def _select_runs(
    store: Any, entity: str, project: str, ids: list[str], filters: str | None
) -> tuple[list[RunRecord], list[str], bool]:
    """(the runs, ids not found, whether the selection was cut to MAX_COMPARE)."""
    if filters:
        found = store.list_runs(
            entity, project, filters=_parse_filters(filters), limit=MAX_COMPARE + 1
        )
        if ids:
            wanted = set(ids)
            found = [r for r in found if r.run_id in wanted]
        return found[:MAX_COMPARE], [], len(found) > MAX_COMPARE
    cut = len(ids) > MAX_COMPARE
    ids = ids[:MAX_COMPARE]
    if not ids:
        return store.list_runs(entity, project, limit=MAX_COMPARE), [], False
    by_id: dict[str, RunRecord] = {}
    if len(ids) > 20 and store.count_runs(entity, project) <= 5000:
        # Many runs: one query for the project's runs beats one per run.
        wanted = set(ids)
        for r in store.list_runs(entity, project, limit=None):
            if r.run_id in wanted:
                by_id[r.run_id] = r
    else:
        for run_id in ids:
            try:
                r = store.get_run(RunRef(entity, project, run_id))
            except UsageError:
                r = None
            if r is not None:
                by_id[run_id] = r
    missing = [i for i in ids if i not in by_id]
    return [by_id[i] for i in ids if i in by_id], missing, cut


def _summary_keys(runs: list[RunRecord]) -> Counter[str]:
    """How many of the runs have each numeric, non-underscore summary key."""
    counts: Counter[str] = Counter()
    for r in runs:
        for key, value in r.summary.items():
            if not key.startswith("_") and _is_number(value):
                counts[key] += 1
    return counts


def _default_keys(counts: Counter[str], n_runs: int) -> list[str]:
    shared = sorted(k for k, c in counts.items() if c == n_runs)
    if not shared:  # no key in every run: the most common ones
        shared = [k for k, _c in sorted(counts.items(), key=lambda kc: (-kc[1], kc[0]))]
    return shared[:DEFAULT_COMPARE_KEYS]


def _config_value(config: Mapping[str, Any], key: str) -> Any:
    if key in config:
        return config[key]
    node: Any = config
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def _default_config(runs: list[RunRecord]) -> tuple[list[str], list[str]]:
    """(every flat config key, those whose values differ across the runs, first few)."""
    seen: dict[str, set[str]] = {}
    present: Counter[str] = Counter()
    for r in runs:
        for key, value in flatten(r.config):
            seen.setdefault(key, set()).add(json.dumps(value, sort_keys=True, default=str))
            present[key] += 1
    keys = sorted(seen)
    differing = [k for k in keys if len(seen[k]) > 1 or present[k] < len(runs)]
    return keys, differing[:DEFAULT_CONFIG_COLUMNS]


def compare_samples(n_runs: int) -> int:
    """Points per run and key: the total per chart stays near 200,000."""
    return max(50, min(1000, 200_000 // max(n_runs, 1)))


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


@router.get("/p/{entity}/{project}/compare", response_class=HTMLResponse)
def compare_page(request: Request, entity: str, project: str, store: Store) -> HTMLResponse:
    entity = check_name(entity, "entity")
    project = check_name(project, "project")
    if not abilities(store, entity, project)["read"]:
        raise NotFound(f"project {entity}/{project} does not exist (or you may not read it)")
    params = request.query_params
    ids = _split_list(params.getlist("runs"), MAX_COMPARE + 1)
    filters = params.get("filters") or None
    runs, missing, cut = _select_runs(store, entity, project, ids, filters)
    counts = _summary_keys(runs)
    asked_keys = _split_list(params.getlist("keys"), MAX_COMPARE_KEYS)
    keys = asked_keys or _default_keys(counts, len(runs))
    all_keys = sorted(set(counts) | set(keys))
    config_keys, default_config = _default_config(runs)
    asked_config = _split_list(params.getlist("config"), 50)
    columns = asked_config if "config" in params else default_config
    rows = [
        {
            "run": r,
            "config": [_short(_config_value(r.config, c)) for c in columns],
            "summary": [_finite(r.summary.get(k)) for k in keys[:6]],
        }
        for r in runs
    ]
    data = {
        "entity": entity,
        "project": project,
        "keys": keys,
        "samples": compare_samples(len(runs)),
        "runs": [{"id": r.run_id, "name": r.name, "state": r.state} for r in runs],
    }
    base = f"/p/{urlpart(entity)}/{urlpart(project)}"
    return render(
        request,
        "compare.html",
        f"Compare {len(runs)} runs · {project}",
        entity=entity,
        project=project,
        base=base,
        runs=runs,
        rows=rows,
        missing=missing,
        cut=cut,
        keys=keys,
        all_keys=all_keys,
        key_counts=counts,
        config_keys=config_keys,
        columns=columns,
        summary_keys=keys[:6],
        runs_param=",".join(r.run_id for r in runs),
        max_runs=MAX_COMPARE,
        compare_json=data,
    )

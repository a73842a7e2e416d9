"""Runs: ingest spool frames, read runs and their history, edit and delete."""

from __future__ import annotations

import json
import time
from typing import Annotated, Any

import msgpack
import numpy as np
from fastapi import APIRouter, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from stemma.errors import UsageError
from stemma.server.deps import Store, rule, run_ref
from stemma.wire import chunks
from stemma.wire.names import check_name
from stemma.wire.schemas import (
    MSGPACK,
    ApplyOut,
    CountOut,
    HistoriesIn,
    KeysOut,
    OffsetOut,
    ProjectOut,
    RunOut,
    RunPage,
    RunUpdateIn,
    run_page_json,
)

router = APIRouter(prefix="/api/v1", tags=["runs"])

# Client clocks may be wrong: a creation or finish time further in the future than this
# is replaced by the server's clock (the logged history keeps the client's timestamps).
MAX_FUTURE_SKEW = 300.0

_FRAME_BODY = {
    "requestBody": {
        "required": True,
        "description": "msgpack map {spool_id: str, start: int, end: int, events: [map]}, "
        "optionally zstd- or gzip-compressed (Content-Encoding). Events are the SDK's spool "
        "events; history events carry columnar batches as binary.",
        "content": {MSGPACK: {"schema": {"type": "string", "format": "binary"}}},
    }
}


def _decode_body(body: bytes, encoding: str | None, limit: int) -> Any:
    enc = (encoding or "identity").lower()
    try:
        if enc == "zstd":
            import zstandard

            body = zstandard.ZstdDecompressor().decompress(body, max_output_size=limit)
            if len(body) > limit:
                raise UsageError("decompressed body is too large")
        elif enc == "gzip":
            import zlib

            d = zlib.decompressobj(16 + zlib.MAX_WBITS)
            body = d.decompress(body, limit + 1)
            if len(body) > limit:
                raise UsageError("decompressed body is too large")
        elif enc != "identity":
            raise UsageError(f"unsupported Content-Encoding {encoding!r}: use zstd or gzip")
        return msgpack.unpackb(body, raw=False)
    except UsageError:
        raise
    except Exception as exc:
        raise UsageError(f"the body is not valid msgpack ({type(exc).__name__}: {exc})") from None


def _clamp_times(events: list[dict[str, Any]]) -> None:
    latest = time.time() + MAX_FUTURE_SKEW
    for ev in events:
        for field in ("created_at", "at"):
            value = ev.get(field)
            if isinstance(value, int | float) and value > latest:
                ev[field] = time.time()


@router.post(
    "/runs/{entity}/{project}/{run_id}/frames",
    response_model=ApplyOut,
    openapi_extra=rule("write", **_FRAME_BODY),
    summary="Apply one spool frame (idempotent by spool id and byte range)",
)
async def apply_frame(
    entity: str, project: str, run_id: str, request: Request, store: Store
) -> ApplyOut:
    ref = run_ref(entity, project, run_id)
    body = await request.body()
    payload = _decode_body(
        body, request.headers.get("content-encoding"), request.app.state.settings.max_body_bytes
    )
    if not isinstance(payload, dict):
        raise UsageError("frame body must be a map with spool_id, start, end and events")
    spool_id, start, end, events = (payload.get(k) for k in ("spool_id", "start", "end", "events"))
    if not (
        isinstance(spool_id, str)
        and 0 < len(spool_id) <= 64
        and isinstance(start, int)
        and isinstance(end, int)
        and 0 <= start < end
        and isinstance(events, list)
        and all(isinstance(e, dict) and isinstance(e.get("t"), str) for e in events)
    ):
        raise UsageError(
            "frame must have spool_id (string), 0 <= start < end (integers) and "
            "events (a list of maps with a 't' type)"
        )
    _clamp_times(events)
    result = await run_in_threadpool(store.apply, ref, spool_id, start, end, events)
    return ApplyOut(applied=result.applied, committed_offset=result.committed_offset)


@router.get(
    "/runs/{entity}/{project}/{run_id}/spools/{spool_id}",
    response_model=OffsetOut,
    openapi_extra=rule("write"),
)
def spool_offset(entity: str, project: str, run_id: str, spool_id: str, store: Store) -> OffsetOut:
    return OffsetOut(
        committed_offset=store.committed_offset(run_ref(entity, project, run_id), spool_id)
    )


@router.post(
    "/runs/{entity}/{project}/{run_id}/heartbeat", status_code=204, openapi_extra=rule("write")
)
def heartbeat(entity: str, project: str, run_id: str, store: Store) -> Response:
    store.heartbeat(run_ref(entity, project, run_id))
    return Response(status_code=204)


@router.get("/runs/{entity}/{project}/{run_id}", response_model=RunOut, openapi_extra=rule("read"))
def get_run(entity: str, project: str, run_id: str, store: Store) -> RunOut:
    from stemma.errors import NotFound

    ref = run_ref(entity, project, run_id)
    record = store.get_run(ref)
    if record is None:
        raise NotFound(f"run {ref.path} does not exist", path=ref.path)
    return RunOut.from_record(record)


@router.patch("/runs/{entity}/{project}/{run_id}", status_code=204, openapi_extra=rule("write"))
def update_run(entity: str, project: str, run_id: str, body: RunUpdateIn, store: Store) -> Response:
    store.update_run(run_ref(entity, project, run_id), body.changes())
    return Response(status_code=204)


@router.delete("/runs/{entity}/{project}/{run_id}", status_code=204, openapi_extra=rule("write"))
def delete_run(entity: str, project: str, run_id: str, store: Store) -> Response:
    store.delete_run(run_ref(entity, project, run_id))
    return Response(status_code=204)


@router.get("/projects/{entity}/{project}/runs", response_model=RunPage, openapi_extra=rule("read"))
def list_runs(
    entity: str,
    project: str,
    store: Store,
    order: str = "-created_at",
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    filters: str | None = None,
) -> Response:
    """A page of runs; the body is a RunPage, serialized straight from the records."""
    records = store.list_runs(
        check_name(entity, "entity"),
        check_name(project, "project"),
        order=order,
        offset=offset,
        limit=limit,
        filters=_parse_filters(filters),
    )
    return Response(run_page_json(records), media_type="application/json")


@router.get(
    "/projects/{entity}/{project}/runs/count", response_model=CountOut, openapi_extra=rule("read")
)
def count_runs(entity: str, project: str, store: Store, filters: str | None = None) -> CountOut:
    return CountOut(
        count=store.count_runs(
            check_name(entity, "entity"), check_name(project, "project"), _parse_filters(filters)
        )
    )


def _parse_filters(raw: str | None) -> dict[str, Any] | None:
    """The ``filters`` query parameter: a JSON object (MongoDB-style run filter)."""
    if raw is None or raw == "":
        return None
    import json

    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise UsageError(
            f"filters is not valid JSON ({exc}): {raw[:200]!r}", filters=raw[:200]
        ) from None
    if not isinstance(value, dict):
        raise UsageError(f"filters must be a JSON object: {raw[:200]!r}", filters=raw[:200])
    return value


@router.get("/projects", response_model=list[ProjectOut], openapi_extra=rule("authenticated"))
def list_projects(store: Store, entity: str | None = None) -> list[ProjectOut]:
    return [ProjectOut(entity=e, name=p, runs=n) for e, p, n in store.list_projects(entity)]


@router.get(
    "/runs/{entity}/{project}/{run_id}/history/keys",
    response_model=KeysOut,
    openapi_extra=rule("read"),
)
def history_keys(entity: str, project: str, run_id: str, store: Store) -> KeysOut:
    return KeysOut(keys=store.history_keys(run_ref(entity, project, run_id)))


@router.get(
    "/runs/{entity}/{project}/{run_id}/history",
    responses={
        200: {
            "content": {MSGPACK: {}},
            "description": "msgpack map {key: [kind, steps, values]} of "
            "chunk-encoded columns (see stemma.wire.chunks); with `Accept: "
            "application/json`, {key: {steps: [...], values: [...]}} with non-finite "
            "numbers as null (what the web UI's charts read)",
        }
    },
    openapi_extra=rule("read"),
)
def read_history(
    request: Request,
    entity: str,
    project: str,
    run_id: str,
    store: Store,
    keys: Annotated[list[str] | None, Query()] = None,
    stream: str = "default",
    samples: Annotated[int | None, Query(ge=1, le=1_000_000)] = None,
    min_step: int | None = None,
    max_step: int | None = None,
) -> Response:
    if stream not in ("default", "system"):
        raise UsageError("stream must be 'default' or 'system'", stream=stream)
    cols = store.read_history(
        run_ref(entity, project, run_id),
        keys,
        stream=stream,
        samples=samples,
        min_step=min_step,
        max_step=max_step,
    )
    if _wants_json(request):
        return _json_response(_json_columns(cols))
    return Response(msgpack.packb(_encode_columns(cols), use_bin_type=True), media_type=MSGPACK)


def _wants_json(request: Request) -> bool:
    """Browsers ask for JSON; the SDK (any Accept but JSON) gets compact msgpack chunks."""
    return "application/json" in request.headers.get("accept", "")


def _json_values(values: Any) -> list[Any]:
    if isinstance(values, np.ndarray):
        out: list[Any] = values.tolist()
        if values.dtype.kind == "f":
            for i in np.flatnonzero(~np.isfinite(values)).tolist():
                out[i] = None  # JSON has no NaN or infinity
        return out
    return list(values)


def _json_columns(cols: dict[str, Any]) -> dict[str, dict[str, list[Any]]]:
    return {
        key: {"steps": np.asarray(col.steps).tolist(), "values": _json_values(col.values)}
        for key, col in cols.items()
    }


def _json_response(body: Any) -> Response:
    return Response(
        json.dumps(body, separators=(",", ":"), allow_nan=False, default=str),
        media_type="application/json",
    )


def _encode_columns(cols: dict[str, Any]) -> dict[str, list[Any]]:
    """Columns as chunk blobs (see stemma.wire.chunks), which the client decodes."""
    return {
        key: [
            col.kind,
            chunks.encode_steps_any(col.steps),
            chunks.encode_values_any(col.kind, col.values),
        ]
        for key, col in cols.items()
    }


@router.post(
    "/projects/{entity}/{project}/histories",
    responses={
        200: {
            "content": {MSGPACK: {}},
            "description": "msgpack map {run_id: {key: [kind, steps, values]}}; with "
            "`Accept: application/json`, {run_id: {key: {steps: [...], values: [...]}}}",
        }
    },
    summary="The same keys of up to 1,000 runs, downsampled per key when samples is given",
    openapi_extra=rule("read"),
)
def read_histories(
    request: Request, entity: str, project: str, body: HistoriesIn, store: Store
) -> Response:
    cols = store.read_histories(
        check_name(entity, "entity"),
        check_name(project, "project"),
        body.run_ids,
        body.keys,
        stream=body.stream,
        samples=body.samples,
    )
    if _wants_json(request):
        return _json_response({run_id: _json_columns(per) for run_id, per in cols.items()})
    out = {run_id: _encode_columns(per_key) for run_id, per_key in cols.items()}
    return Response(msgpack.packb(out, use_bin_type=True), media_type=MSGPACK)

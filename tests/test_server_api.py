"""The REST API in-process: the error shape, bad input, idempotent ingest, uploads."""

from __future__ import annotations

import gzip
import hashlib
import time
from pathlib import Path
from typing import Any

import msgpack
import pytest
import zstandard
from fastapi.testclient import TestClient

from stemma.server.app import create_app
from stemma.server.config import ServerSettings
from stemma.server.errors import STATUS_BY_CODE
from stemma.wire.history import encode_rows


@pytest.fixture
def client(store_dir: Path) -> TestClient:
    settings = ServerSettings.from_env(max_body_bytes=256 * 1024, bind_host="127.0.0.1")
    settings.max_blob_bytes = 1 << 20
    return TestClient(
        create_app(settings), base_url="http://127.0.0.1", raise_server_exceptions=False
    )


def _error(resp: Any, status: int, code: str) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"code", "message", "context"}
    assert body["code"] == code
    assert STATUS_BY_CODE[code] == status
    assert body["message"]
    return body


def _frame(spool: str, start: int, end: int, events: list[dict[str, Any]]) -> bytes:
    return zstandard.ZstdCompressor().compress(
        msgpack.packb(
            {"spool_id": spool, "start": start, "end": end, "events": events}, use_bin_type=True
        )
    )


def _run_event(created_at: float | None = None) -> dict[str, Any]:
    return {
        "t": "run",
        "entity": "e",
        "project": "p",
        "run_id": "r1",
        "name": "n",
        "config": {},
        "tags": [],
        "created_at": created_at or time.time(),
    }


def _history(start: int, n: int) -> dict[str, Any]:
    return encode_rows([(s, time.time(), 0.0, {"x": s}) for s in range(start, start + n)]) | {
        "t": "history"
    }


FRAMES = "/api/v1/runs/e/p/r1/frames"
HEADERS = {"content-type": "application/x-msgpack", "content-encoding": "zstd"}


def test_routes_and_methods(client: TestClient) -> None:
    _error(client.get("/api/v1/nothing-here"), 404, "not_found")
    _error(client.delete("/api/v1/projects"), 405, "method_not_allowed")
    _error(client.get("/api/v1/runs/e/p/missing"), 404, "not_found")
    _error(client.get("/api/v1/runs/bad%20name/p/r"), 400, "invalid_name")
    assert client.get("/healthz").json() == {"status": "ok"}
    doc = client.get("/api/v1/openapi.json").json()
    assert doc["info"]["title"] == "Stemma"
    assert len(doc["paths"]) >= 25
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            assert (
                "200" in op["responses"] or "204" in op["responses"] or "201" in op["responses"]
            ), (method, path)


@pytest.mark.parametrize(
    ("method", "url", "kwargs", "status", "code"),
    [
        (
            "post",
            "/api/v1/blobs/missing",
            {"content": b"{not json", "headers": {"content-type": "application/json"}},
            400,
            "invalid_request",
        ),
        (
            "post",
            "/api/v1/blobs/missing",
            {"json": {"digests": "not-a-list"}},
            400,
            "invalid_request",
        ),
        ("post", "/api/v1/blobs/missing", {"json": {"digests": ["xyz"]}}, 400, "invalid_value"),
        (
            "post",
            "/api/v1/blobs/uploads",
            {"json": {"blobs": [{"digest": "a" * 64, "size": -1}]}},
            400,
            "invalid_request",
        ),
        (
            "post",
            "/api/v1/artifacts/e/p/a/versions",
            {"json": {"type": "model"}},
            400,
            "invalid_request",
        ),
        (
            "post",
            "/api/v1/artifacts/e/p/a/versions",
            {"json": {"type": "model", "manifest": {"version": 99, "contents": {}}}},
            400,
            "invalid_value",
        ),
        ("get", "/api/v1/projects/e/p/runs?limit=0", {}, 400, "invalid_request"),
        ("get", "/api/v1/projects/e/p/runs?order=colour", {}, 400, "usage_error"),
        ("patch", "/api/v1/runs/e/p/r1", {"json": {"colour": "red"}}, 400, "invalid_request"),
        (
            "put",
            "/api/v1/projects/e/p/retention",
            {"json": {"keep_last": 0}},
            400,
            "invalid_request",
        ),
    ],
)
def test_bad_input_is_a_clear_4xx(
    client: TestClient, method: str, url: str, kwargs: dict[str, Any], status: int, code: str
) -> None:
    _error(getattr(client, method)(url, **kwargs), status, code)


def test_bad_frames(client: TestClient) -> None:
    def post(body: bytes, **headers: str) -> Any:
        return client.post(FRAMES, content=body, headers={**HEADERS, **headers})

    _error(post(b"\x00garbage"), 400, "usage_error")  # not zstd
    _error(post(zstandard.ZstdCompressor().compress(b"\xc1")), 400, "usage_error")  # not msgpack
    _error(post(_frame("s", 5, 1, [_run_event()])), 400, "usage_error")  # end < start
    _error(post(zstandard.ZstdCompressor().compress(msgpack.packb([1, 2]))), 400, "usage_error")
    _error(post(_frame("s", 0, 5, [{"no": "type"}])), 400, "usage_error")
    _error(post(b"x", **{"content-encoding": "brotli"}), 400, "usage_error")
    # a frame with an unknown event type is refused whole, and nothing is half-applied
    _error(post(_frame("s", 0, 5, [_run_event(), {"t": "bogus"}])), 400, "usage_error")
    _error(client.get("/api/v1/runs/e/p/r1"), 404, "not_found")
    # a frame for a run that was never created
    _error(post(_frame("s", 0, 5, [_history(0, 2)])), 404, "not_found")


def test_frames_are_idempotent_and_ordered(client: TestClient) -> None:
    first = _frame("s1", 0, 10, [_run_event(), _history(0, 5)])
    assert client.post(FRAMES, content=first, headers=HEADERS).json() == {
        "applied": True,
        "committed_offset": 10,
    }
    assert client.post(FRAMES, content=first, headers=HEADERS).json() == {
        "applied": False,
        "committed_offset": 10,
    }  # a duplicate delivery changes nothing
    gap = _frame("s1", 20, 30, [_history(5, 5)])
    body = _error(client.post(FRAMES, content=gap, headers=HEADERS), 409, "conflict")
    assert body["context"]["committed"] == 10
    plain = msgpack.packb(
        {"spool_id": "s1", "start": 10, "end": 20, "events": [_history(5, 5)]}, use_bin_type=True
    )
    ok = client.post(
        FRAMES,
        content=gzip.compress(plain),
        headers={"content-type": "application/x-msgpack", "content-encoding": "gzip"},
    )
    assert ok.json()["applied"] is True
    assert client.get("/api/v1/runs/e/p/r1/spools/s1").json() == {"committed_offset": 20}
    run = client.get("/api/v1/runs/e/p/r1").json()
    assert run["summary"]["x"] == 9 and run["last_step"] == 9
    history = msgpack.unpackb(
        client.get("/api/v1/runs/e/p/r1/history", params={"keys": ["x"]}).content, raw=False
    )
    assert list(history) == ["x"]


def test_clock_skew_is_clamped(client: TestClient) -> None:
    future = time.time() + 10 * 365 * 86400
    client.post(FRAMES, content=_frame("s", 0, 5, [_run_event(created_at=future)]), headers=HEADERS)
    created = client.get("/api/v1/runs/e/p/r1").json()["created_at"]
    import datetime as dt

    assert dt.datetime.fromisoformat(created).timestamp() < time.time() + 60


def test_oversized_bodies_get_413(client: TestClient) -> None:
    big = b"x" * (300 * 1024)
    _error(
        client.post(
            "/api/v1/blobs/missing", content=big, headers={"content-type": "application/json"}
        ),
        413,
        "payload_too_large",
    )

    def stream() -> Any:  # no Content-Length: the limit applies while streaming
        for _ in range(300):
            yield b"y" * 1024

    _error(client.post(FRAMES, content=stream(), headers=HEADERS), 413, "payload_too_large")
    bomb = zstandard.ZstdCompressor().compress(b"\x00" * (2 << 20))  # small on the wire
    _error(client.post(FRAMES, content=bomb, headers=HEADERS), 400, "usage_error")


def test_blob_upload_and_commit_protocol(client: TestClient) -> None:
    data = b"artifact bytes"
    digest = hashlib.sha256(data).hexdigest()
    plan = client.post(
        "/api/v1/blobs/uploads", json={"blobs": [{"digest": digest, "size": len(data)}]}
    ).json()
    assert [u["digest"] for u in plan["uploads"]] == [digest]
    manifest = {"version": 1, "contents": {"a.txt": {"digest": digest, "size": len(data)}}}
    refused = _error(
        client.post(
            "/api/v1/artifacts/e/p/a/versions", json={"type": "dataset", "manifest": manifest}
        ),
        409,
        "conflict",
    )
    assert refused["context"]["missing"] == [digest]
    wrong = client.put(plan["uploads"][0]["url"], content=b"other bytes")
    _error(wrong, 400, "invalid_value")
    assert client.post("/api/v1/blobs/missing", json={"digests": [digest]}).json() == {
        "digests": [digest]
    }  # the wrong bytes were not stored
    assert client.put(plan["uploads"][0]["url"], content=data).status_code == 204
    assert client.post("/api/v1/blobs/missing", json={"digests": [digest]}).json() == {
        "digests": []
    }
    assert client.post(
        "/api/v1/blobs/uploads", json={"blobs": [{"digest": digest, "size": len(data)}]}
    ).json() == {"uploads": []}
    made = client.post(
        "/api/v1/artifacts/e/p/a/versions",
        json={"type": "dataset", "manifest": manifest, "aliases": ["x"]},
    ).json()
    assert made["created"] is True and made["artifact"]["version"] == 0
    again = client.post(
        "/api/v1/artifacts/e/p/a/versions", json={"type": "dataset", "manifest": manifest}
    ).json()
    assert again["created"] is False
    assert client.get(f"/api/v1/blobs/{digest}").content == data
    _error(client.get(f"/api/v1/blobs/{'0' * 64}"), 404, "not_found")
    _error(
        client.put(f"/api/v1/blobs/{digest}", content=b"z" * (2 << 20)), 413, "payload_too_large"
    )


@pytest.mark.sqlite_only
def test_run_pages_serialize_without_models_exactly() -> None:
    """The hand-built RunPage JSON matches the RunPage schema and reads back equal,
    NaN, infinities, nested config and missing finish times included."""
    import datetime as dt
    import json
    import math

    from stemma.wire.records import RunRecord
    from stemma.wire.schemas import RunPage, run_from_json, run_page_json

    now = dt.datetime(2026, 11, 28, 5, 6, 7, 891011, tzinfo=dt.UTC)
    record = RunRecord(
        entity="e",
        project="p",
        run_id="r1",
        name="n",
        state="running",
        job_type=None,
        group="g",
        tags=["a", "b c"],
        notes=None,
        config={"lr": 0.1, "nested": {"x": [1, 2]}, "bad": math.nan, "big": math.inf},
        summary={"loss": -math.inf, "_step": 3},
        metadata={"git": {"commit": "abc"}},
        user="ada",
        host="h",
        created_at=now,
        heartbeat_at=now,
        finished_at=None,
        exit_code=None,
        last_step=3,
        runtime=1.5,
    )
    body = run_page_json([record])
    RunPage.model_validate_json(body)  # what the OpenAPI document promises
    back = run_from_json(json.loads(body)["runs"][0])
    assert math.isnan(back.config.pop("bad")) and math.isnan(record.config.pop("bad"))
    assert back == record

"""The HTTP backend: the same operations as the embedded store, over the REST API.

One pooled keep-alive connection set per process; history frames travel as zstd
compressed msgpack; errors come back as JSON with a stable code and are raised as the
same exception classes the embedded store raises. A server that cannot be reached is a
:class:`~stemma.errors.StoreError`, which the writer thread retries with backoff while
the spool keeps everything.

Blob bytes go where the server's upload plan says: to the server itself (local-directory
stores) or straight to the object store through presigned URLs, so with S3 the server
is never on the data path. Downloads fill the local cache first, so a second download,
or an offline one, needs no network.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import os
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import msgpack

from stemma import errors
from stemma.backend.base import Backend, Progress, StrPath, check_history_request
from stemma.errors import InvalidValueError, StoreError
from stemma.hashing import hash_path
from stemma.settings import Settings
from stemma.storage import chunking
from stemma.storage.chunking import ChunkParams
from stemma.wire import chunks
from stemma.wire.chunks import Column
from stemma.wire.records import (
    ApplyResult,
    ArtifactCommit,
    ArtifactRecord,
    ArtifactRef,
    RunRecord,
    RunRef,
)

_CHUNK = 8 << 20


class _Unavailable(Exception):
    """A response that means "no server right now" (502/503/504): retried."""


def _filter_json(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    raise errors.UsageError(
        f"a filter value must be JSON (or a datetime): {value!r}"[:300],
        value=repr(value)[:200],
    )


def _filter_params(filters: Mapping[str, Any] | None) -> dict[str, str]:
    """The ``filters`` query parameter: the filter document as JSON."""
    if not filters:
        return {}
    import json

    try:
        return {"filters": json.dumps(filters, default=_filter_json, allow_nan=False)}
    except errors.UsageError:
        raise
    except ValueError as exc:  # NaN or infinity
        raise errors.UsageError(
            f"filters must be JSON ({exc}): {filters!r}"[:300], filters=repr(filters)[:200]
        ) from None


def _path(*parts: str) -> str:
    from urllib.parse import quote

    return "/".join(quote(p, safe="") for p in parts)


class HttpBackend(Backend):
    """A client of ``stemma server`` at ``settings.base_url``."""

    def __init__(self, settings: Settings) -> None:
        import httpx

        if not settings.base_url:
            raise StoreError("no server URL: set STEMMA_BASE_URL or run `stemma login`")
        self.settings = settings
        self.base_url = settings.base_url.rstrip("/")
        headers = {"user-agent": "stemma-sdk"}
        if settings.api_key:
            headers["authorization"] = f"Bearer {settings.api_key}"
        self._httpx = httpx
        self.client = httpx.Client(
            base_url=self.base_url,
            headers=headers,
            timeout=httpx.Timeout(120.0, connect=10.0),
            limits=httpx.Limits(max_connections=32, max_keepalive_connections=16),
            follow_redirects=False,
        )
        # Presigned object-store URLs carry their own authorisation: never our key.
        self.raw = httpx.Client(
            timeout=httpx.Timeout(600.0, connect=10.0), limits=httpx.Limits(max_connections=32)
        )
        self.retry_seconds = float(os.environ.get("STEMMA_HTTP_RETRY_SECONDS") or 300)
        self._local = threading.local()
        # What "the server went away" looks like: httpx's errors, and h11's protocol
        # errors, which httpcore lets escape when it re-sends a half-streamed body on a
        # dead pooled connection. Every call is idempotent, so all are retried whole.
        import h11

        self._retryable: tuple[type[BaseException], ...] = (
            httpx.HTTPError,
            h11.LocalProtocolError,
            h11.RemoteProtocolError,
            _Unavailable,
        )
        self._whoami: dict[str, Any] | None = None
        self._cache: Any = None
        self._cache_lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None

    # ------------------------------------------------------------ plumbing
    def _retrying(self, what: str, attempt: Callable[[], Any]) -> Any:
        """Run ``attempt`` until it succeeds, retrying unreachable-server failures with
        exponential backoff and jitter for up to ``STEMMA_HTTP_RETRY_SECONDS``.

        Every request this client sends is idempotent (frames by spool offset, blobs by
        digest, commits by manifest digest), so repeating one is always safe.
        """
        budget = getattr(self._local, "budget", None)
        deadline = time.monotonic() + (self.retry_seconds if budget is None else budget)
        delay = 0.25
        while True:
            try:
                return attempt()
            except self._retryable as exc:
                if time.monotonic() + delay > deadline:
                    raise StoreError(
                        f"cannot reach the Stemma server at {self.base_url} ({what}): {exc}",
                        url=self.base_url,
                    ) from exc
                time.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 8.0)

    @contextlib.contextmanager
    def retry_budget(self, seconds: float) -> Iterator[None]:
        previous = getattr(self._local, "budget", None)
        self._local.budget = seconds
        try:
            yield
        finally:
            self._local.budget = previous

    def _request(self, method: str, url: str, **kwargs: Any) -> Any:
        def once() -> Any:
            resp = self.client.request(method, url, **kwargs)
            if resp.status_code in (502, 503, 504):  # a proxy with no live replica
                raise _Unavailable(f"HTTP {resp.status_code}")
            return resp

        resp = self._retrying(f"{method} {url}", once)
        if resp.status_code >= 400:
            self._raise(resp)
        return resp

    def _raise(self, resp: Any) -> None:
        try:
            body = resp.json()
        except ValueError:
            body = None
        if isinstance(body, dict) and "code" in body:
            raise errors.from_dict(body)
        if resp.status_code >= 500:
            raise StoreError(
                f"the Stemma server answered HTTP {resp.status_code}", status=resp.status_code
            )
        raise errors.StemmaError(
            f"the Stemma server answered HTTP {resp.status_code}: {resp.text[:200]}",
            status=resp.status_code,
        )

    def _json(self, method: str, url: str, **kwargs: Any) -> Any:
        return self._request(method, url, **kwargs).json()

    def _cache_obj(self) -> Any:
        with self._cache_lock:
            if self._cache is None:
                from stemma.sdk.cache import open_cache

                self._cache = open_cache(self.settings.cache_dir)
            return self._cache

    def default_entity(self) -> str:
        if self._whoami is None:
            self._whoami = self._json("GET", "/api/v1/whoami")
        return str(self._whoami["entity"])

    # ------------------------------------------------------------ runs
    def apply(
        self, ref: RunRef, spool_id: str, start: int, end: int, events: list[dict[str, Any]]
    ) -> ApplyResult:
        import zstandard

        body = msgpack.packb(
            {"spool_id": spool_id, "start": start, "end": end, "events": events}, use_bin_type=True
        )
        data = zstandard.ZstdCompressor(level=3).compress(body)
        out = self._json(
            "POST",
            f"/api/v1/runs/{_path(ref.entity, ref.project, ref.run_id)}/frames",
            content=data,
            headers={"content-type": "application/x-msgpack", "content-encoding": "zstd"},
        )
        return ApplyResult(out["applied"], out["committed_offset"])

    def committed_offset(self, ref: RunRef, spool_id: str) -> int:
        path = _path(ref.entity, ref.project, ref.run_id, "spools", spool_id)
        return int(self._json("GET", f"/api/v1/runs/{path}")["committed_offset"])

    def heartbeat(self, ref: RunRef) -> None:
        self._request(
            "POST", f"/api/v1/runs/{_path(ref.entity, ref.project, ref.run_id)}/heartbeat"
        )

    def get_run(self, ref: RunRef) -> RunRecord | None:
        from stemma.wire.schemas import RunOut

        try:
            body = self._json("GET", f"/api/v1/runs/{_path(ref.entity, ref.project, ref.run_id)}")
        except errors.NotFound:
            return None
        return RunOut.model_validate(body).to_record()

    def list_runs(
        self,
        entity: str,
        project: str,
        *,
        order: str = "-created_at",
        offset: int = 0,
        limit: int | None = 50,
        filters: Mapping[str, Any] | None = None,
    ) -> list[RunRecord]:
        from stemma.wire.schemas import run_from_json

        out: list[RunRecord] = []
        page = 1000 if limit is None else min(limit, 1000)
        extra = _filter_params(filters)
        while True:
            body = self._json(
                "GET",
                f"/api/v1/projects/{_path(entity, project)}/runs",
                params={"order": order, "offset": offset + len(out), "limit": page, **extra},
            )
            batch = [run_from_json(r) for r in body["runs"]]
            out.extend(batch)
            if len(batch) < page or (limit is not None and len(out) >= limit):
                return out if limit is None else out[:limit]

    def count_runs(
        self, entity: str, project: str, filters: Mapping[str, Any] | None = None
    ) -> int:
        return int(
            self._json(
                "GET",
                f"/api/v1/projects/{_path(entity, project)}/runs/count",
                params=_filter_params(filters),
            )["count"]
        )

    def list_projects(self, entity: str | None = None) -> list[tuple[str, str, int]]:
        params = {"entity": entity} if entity else {}
        return [
            (p["entity"], p["name"], p["runs"])
            for p in self._json("GET", "/api/v1/projects", params=params)
        ]

    def history_keys(self, ref: RunRef) -> list[str]:
        path = _path(ref.entity, ref.project, ref.run_id)
        return list(self._json("GET", f"/api/v1/runs/{path}/history/keys")["keys"])

    def read_history(
        self,
        ref: RunRef,
        keys: list[str] | None = None,
        *,
        stream: str = "default",
        samples: int | None = None,
        min_step: int | None = None,
        max_step: int | None = None,
    ) -> dict[str, Column]:
        params: dict[str, Any] = {"stream": stream}
        if keys is not None:
            if not keys:
                return {}
            params["keys"] = keys
        for name, value in (("samples", samples), ("min_step", min_step), ("max_step", max_step)):
            if value is not None:
                params[name] = value
        path = _path(ref.entity, ref.project, ref.run_id)
        resp = self._request("GET", f"/api/v1/runs/{path}/history", params=params)
        return _decode_columns(msgpack.unpackb(resp.content, raw=False))

    def read_histories(
        self,
        entity: str,
        project: str,
        run_ids: list[str],
        keys: list[str] | None = None,
        *,
        stream: str = "default",
        samples: int | None = None,
    ) -> dict[str, dict[str, Column]]:
        check_history_request(run_ids, samples, keys)
        resp = self._request(
            "POST",
            f"/api/v1/projects/{_path(entity, project)}/histories",
            json={"run_ids": run_ids, "keys": keys, "stream": stream, "samples": samples},
        )
        body = msgpack.unpackb(resp.content, raw=False)
        return {run_id: _decode_columns(per_key) for run_id, per_key in body.items()}

    def update_run(self, ref: RunRef, changes: dict[str, Any]) -> None:
        from stemma.wire.values import to_storable

        body = dict(changes)
        if "summary" in body and body["summary"] is not None:
            body["summary"] = to_storable(body["summary"], "summary")
        self._request(
            "PATCH", f"/api/v1/runs/{_path(ref.entity, ref.project, ref.run_id)}", json=body
        )

    def delete_run(self, ref: RunRef) -> None:
        self._request("DELETE", f"/api/v1/runs/{_path(ref.entity, ref.project, ref.run_id)}")

    # ------------------------------------------------------------ media
    def list_media(self, ref: RunRef, key: str | None = None) -> list[dict[str, Any]]:
        from stemma.wire.schemas import MediaListOut

        params = {} if key is None else {"key": key}
        path = _path(ref.entity, ref.project, ref.run_id)
        body = self._json("GET", f"/api/v1/runs/{path}/media", params=params)
        return [m.model_dump() for m in MediaListOut.model_validate(body).media]

    def read_media(self, ref: RunRef, digest: str) -> bytes:
        """The bytes, checked against their digest (a proxy may not alter them)."""
        import hashlib

        path = _path(ref.entity, ref.project, ref.run_id, "media", digest)
        data: bytes = self._request("GET", f"/api/v1/runs/{path}").content
        if hashlib.sha256(data).hexdigest() != digest:
            raise StoreError(
                f"media blob {digest} of {ref.path} arrived with other bytes", digest=digest
            )
        return data

    # ------------------------------------------------------------ blobs
    def store_files(
        self, files: Sequence[tuple[StrPath, str | None]], progress: Progress = None
    ) -> list[tuple[str, int]]:
        """Hash what is not known, ask the server what it lacks, upload only that.

        Large files (``STEMMA_CHUNK_THRESHOLD``) go as chunks: only the chunks the server
        lacks are packed and uploaded."""
        params = ChunkParams.from_env()
        results_by_index: dict[int, tuple[str, int]] = {}
        small: list[int] = []
        for i, (path, _known) in enumerate(files):
            size = os.stat(path).st_size
            if params.wants(size):
                results_by_index[i] = self._store_chunked(path, params, progress)
            else:
                small.append(i)
        if small:
            stored = self._store_whole([files[i] for i in small], progress)
            results_by_index.update(zip(small, stored, strict=True))
        return [results_by_index[i] for i in range(len(files))]

    def _store_whole(
        self, files: Sequence[tuple[StrPath, str | None]], progress: Progress = None
    ) -> list[tuple[str, int]]:
        """Files stored as whole blobs (one upload each, skipped when the server has it)."""

        def digest_of(item: tuple[StrPath, str | None]) -> tuple[str, int]:
            path, known = item
            size = os.stat(path).st_size
            return (known or hash_path(path)), size

        with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 2)) as pool:
            results = list(pool.map(digest_of, files))
        by_digest = {d: (p, s) for (p, _), (d, s) in zip(files, results, strict=True)}
        plan = self._json(
            "POST",
            "/api/v1/blobs/uploads",
            json={"blobs": [{"digest": d, "size": s} for d, (_, s) in by_digest.items()]},
        )
        uploads = plan["uploads"]
        skipped = sum(
            s for d, (_, s) in by_digest.items() if d not in {u["digest"] for u in uploads}
        )
        if progress is not None and skipped:
            progress(skipped)
        direct: list[dict[str, Any]] = []

        def upload(target: dict[str, Any]) -> None:
            path, size = by_digest[target["digest"]]
            # a whole upload is retried (the file is reopened) if the server goes away
            self._retrying(f"upload of {path}", lambda: self._upload(path, size, target))
            if target["url"] is None or not target["url"].startswith("/"):
                direct.append({"digest": target["digest"], "size": size})
            if progress is not None:
                progress(size)

        with ThreadPoolExecutor(max_workers=min(8, 2 * (os.cpu_count() or 2))) as pool:
            list(pool.map(upload, uploads))
        if direct:
            self._request("POST", "/api/v1/blobs/register", json={"blobs": direct})
        return results

    def _chunk_pool(self) -> ThreadPoolExecutor:
        with self._cache_lock:
            if self._pool is None:
                workers = max(4, 2 * (os.cpu_count() or 2))
                self._pool = ThreadPoolExecutor(workers, thread_name_prefix="stemma-chunks")
            return self._pool

    def _store_chunked(
        self, path: StrPath, params: ChunkParams, progress: Progress = None
    ) -> tuple[str, int]:
        """Cut the file, ask which chunks the server lacks, upload those in packs, then
        have the server record the file (it checks the file's SHA-256 from the chunks).
        ``progress`` hears of the bytes already stored at once, then of each pack."""
        pool = self._chunk_pool()
        with chunking.open_chunked(path, params, pool) as cf:
            cf.finish()
            recipe = cf.recipe()
            for _attempt in range(3):
                answer = self._json(
                    "POST",
                    "/api/v1/chunks/missing",
                    json={
                        "files": [{"digest": cf.digest, "size": cf.size}],
                        "chunks": sorted({d for d, _ in recipe}),
                    },
                )
                if cf.digest in answer["files"]:
                    return cf.digest, cf.size
                todo = chunking.chunks_to_store(cf, 0, len(recipe), set(answer["chunks"]), set())
                report = progress if _attempt == 0 else None  # a retry adds no bytes
                if report is not None:
                    report(cf.size - sum(cf.chunks[i][2] for i in todo))  # already there

                def upload(body: bytes, index: Any, report: Progress = report) -> str:
                    digest = self._upload_pack(body, index)
                    if report is not None:
                        report(sum(c.size for c in index))
                    return digest

                packs = [f.result() for f in chunking.write_packs(cf, todo, params, pool, upload)]
                if packs:
                    self._json("POST", "/api/v1/chunks/packs", json={"packs": packs})
                resp = self._retrying(
                    f"registration of {path}",
                    lambda: self.client.post(
                        "/api/v1/chunks/files",
                        json={"digest": cf.digest, "size": cf.size, "chunks": recipe},
                    ),
                )
                if resp.status_code == 204:
                    return cf.digest, cf.size
                if resp.status_code != 409:
                    self._raise(resp)
                # 409: a gc took chunks away meanwhile; ask again and upload them
            raise StoreError(
                f"chunks of {path} keep vanishing on the server (a gc with --grace 0?); try again",
                path=str(path),
            )

    def _upload_pack(self, body: bytes, index: Any) -> str:
        """Upload one packfile as a blob; returns its digest."""
        del index  # the server reads the index from the pack itself
        digest = hashlib.sha256(body).hexdigest()
        plan = self._json(
            "POST", "/api/v1/blobs/uploads", json={"blobs": [{"digest": digest, "size": len(body)}]}
        )
        for target in plan["uploads"]:

            def put(t: dict[str, Any] = target) -> None:
                self._put_bytes(body, t)

            self._retrying(f"upload of pack {digest}", put)
            if not target["url"].startswith("/"):
                self._request(
                    "POST",
                    "/api/v1/blobs/register",
                    json={"blobs": [{"digest": digest, "size": len(body)}]},
                )
        return digest

    def _put_bytes(self, body: bytes, target: dict[str, Any]) -> None:
        self._put_to(target, body, len(body), "a pack")

    def _put_to(self, target: dict[str, Any], content: Any, size: int, what: str) -> None:
        """One PUT of an upload plan's target: to this server (a local-directory store)
        or straight to the object store with the presigned headers."""
        url = target["url"]
        to_server = url.startswith("/")  # local-directory store: the server keeps bytes
        headers = (
            {"content-type": "application/octet-stream"}
            if to_server
            else dict(target.get("headers") or {})
        )
        headers["content-length"] = str(size)
        client = self.client if to_server else self.raw
        resp = client.put(url, content=content, headers=headers)
        if resp.status_code in (500, 502, 503, 504):
            raise _Unavailable(f"HTTP {resp.status_code}")
        if resp.status_code >= 300:
            if to_server:
                self._raise(resp)
            raise StoreError(
                f"upload of {what} to the object store failed: HTTP "
                f"{resp.status_code} {resp.text[:200]}"
            )

    def _upload(self, path: StrPath, size: int, target: dict[str, Any]) -> None:
        """One attempt at uploading one blob, reading the file afresh (the caller retries
        the whole attempt: a half-sent stream can never be resent)."""
        before = os.stat(path)
        if target.get("upload_id"):
            self._upload_parts(path, target)
        else:
            with open(path, "rb") as fh:
                self._put_to(target, _file_chunks(fh), size, str(path))
        after = os.stat(path)
        if (before.st_size, before.st_mtime_ns) != (after.st_size, after.st_mtime_ns):
            raise InvalidValueError(f"{path} changed while it was being uploaded", path=str(path))

    def _upload_parts(self, path: StrPath, target: dict[str, Any]) -> None:
        part_size = int(target["part_size"])
        parts = []
        with open(path, "rb") as fh:
            for number, url in enumerate(target["part_urls"], 1):
                data = fh.read(part_size)
                resp = self.raw.put(url, content=data)
                if resp.status_code >= 300:
                    raise StoreError(
                        f"upload of part {number} of {path} failed: HTTP {resp.status_code}"
                    )
                parts.append({"PartNumber": number, "ETag": resp.headers.get("etag", "")})
        self._request(
            "POST",
            "/api/v1/blobs/multipart/complete",
            json={
                "digest": target["digest"],
                "upload_id": target["upload_id"],
                "parts": parts,
                "size": target["size"],
            },
        )

    def fetch_blob(self, digest: str, dest: Path, chunked: bool = False) -> None:
        cache = self._cache_obj()
        if not cache.has(digest):
            if chunked:
                self._retrying(
                    f"download of {digest}", lambda: self._download_chunked(cache, digest)
                )
            else:
                self._retrying(f"download of blob {digest}", lambda: self._download(cache, digest))
        cache.copy_out(digest, dest)

    def _download_chunked(self, cache: Any, digest: str) -> None:
        """Ranged reads of the packs holding the file's chunks, reassembled in order;
        each chunk and then the file is checked against its SHA-256."""
        info = self._json("GET", f"/api/v1/chunks/files/{digest}")
        urls: dict[str, str] = info["packs"]
        where = {
            c["digest"]: (
                c["pack"],
                chunking.PackedChunk(
                    c["digest"], c["offset"], c["stored_size"], c["size"], c["codec"]
                ),
            )
            for c in info["chunks"]
        }
        recipe = [(c["digest"], c["size"]) for c in info["chunks"]]

        def read_range(pack: str, offset: int, length: int) -> bytes:
            url = urls[pack]
            client = self.client if url.startswith("/") else self.raw
            resp = client.get(url, headers={"range": f"bytes={offset}-{offset + length - 1}"})
            if resp.status_code in (502, 503, 504):
                raise _Unavailable(f"HTTP {resp.status_code}")
            if resp.status_code != 206:
                raise StoreError(
                    f"ranged read of pack {pack} failed: HTTP {resp.status_code}", digest=pack
                )
            return bytes(resp.content)

        cache.put_chunks(chunking.reassemble(recipe, where, read_range, self._chunk_pool()), digest)

    def _download(self, cache: Any, digest: str) -> None:
        """One attempt: follow a redirect to the object store without our key."""
        request = self.client.build_request("GET", f"/api/v1/blobs/{digest}")
        resp = self.client.send(request, stream=True)
        try:
            if resp.status_code in (301, 302, 303, 307, 308):
                location = resp.headers["location"]
                resp.close()
                with self.raw.stream("GET", location) as direct:
                    if direct.status_code >= 400:
                        raise StoreError(
                            f"download of blob {digest} from the object store "
                            f"failed: HTTP {direct.status_code}"
                        )
                    cache.put_chunks(direct.iter_bytes(1 << 20), digest)
            elif resp.status_code in (502, 503, 504):
                raise _Unavailable(f"HTTP {resp.status_code}")
            elif resp.status_code >= 400:
                resp.read()
                self._raise(resp)
            else:
                cache.put_chunks(resp.iter_bytes(1 << 20), digest)
        finally:
            resp.close()

    def verify_blobs(self, digests: list[str], progress: Progress = None) -> list[str]:
        return list(
            self._json("POST", "/api/v1/blobs/verify", json={"digests": digests})["digests"]
        )

    # ------------------------------------------------------------ artifacts
    def commit_artifact(self, commit: ArtifactCommit) -> tuple[ArtifactRecord, bool]:
        from stemma.wire.schemas import ArtifactOut
        from stemma.wire.values import to_storable

        body = {
            "type": commit.type,
            "description": commit.description,
            "metadata": to_storable(commit.metadata, "metadata"),
            "manifest": commit.manifest.to_json(),
            "aliases": commit.aliases,
            "ttl_seconds": commit.ttl_seconds,
            "run": None
            if commit.run is None
            else {
                "entity": commit.run.entity,
                "project": commit.run.project,
                "run_id": commit.run.run_id,
            },
            "creator": to_storable(commit.creator, "creator"),
        }
        out = self._json(
            "POST",
            f"/api/v1/artifacts/{_path(commit.entity, commit.project, commit.name)}/versions",
            json=body,
        )
        record = ArtifactOut.model_validate(out["artifact"]).to_record()
        record.manifest = commit.manifest
        return record, bool(out["created"])

    def get_artifact(
        self,
        entity: str,
        project: str,
        name: str,
        selector: str | None,
        at: Any = None,
        with_manifest: bool = True,
    ) -> ArtifactRecord:
        from stemma.wire.schemas import ArtifactOut

        params: dict[str, Any] = {"manifest": with_manifest}
        if at is not None:
            params["at"] = at.isoformat() if isinstance(at, dt.datetime) else str(at)
        body = self._json(
            "GET",
            f"/api/v1/artifacts/{_path(entity, project, name, selector or 'latest')}",
            params=params,
        )
        return ArtifactOut.model_validate(body).to_record()

    def list_artifact_versions(
        self, entity: str, project: str, name: str, include_deleted: bool = False
    ) -> list[ArtifactRecord]:
        from stemma.wire.schemas import ArtifactOut

        body = self._json(
            "GET",
            f"/api/v1/artifacts/{_path(entity, project, name)}/versions",
            params={"include_deleted": include_deleted},
        )
        return [ArtifactOut.model_validate(a).to_record() for a in body["artifacts"]]

    def list_artifact_collections(
        self, entity: str, project: str, type_: str | None = None
    ) -> list[dict[str, Any]]:
        params = {"type": type_} if type_ else {}
        body = self._json(
            "GET", f"/api/v1/projects/{_path(entity, project)}/artifacts", params=params
        )
        out = body["collections"]
        for c in out:
            if c.get("created_at"):
                c["created_at"] = dt.datetime.fromisoformat(c["created_at"])
        return list(out)

    def _artifact_query(
        self,
        type_: str | None,
        name: str | None,
        filters: Mapping[str, Any] | None,
        include_deleted: bool,
    ) -> dict[str, Any]:
        params: dict[str, Any] = {**_filter_params(filters)}
        if type_ is not None:
            params["type"] = type_
        if name is not None:
            params["name"] = name
        if include_deleted:
            params["include_deleted"] = True
        return params

    def query_artifact_versions(
        self,
        entity: str,
        project: str,
        *,
        type_: str | None = None,
        name: str | None = None,
        filters: Mapping[str, Any] | None = None,
        order: str = "-created_at",
        offset: int = 0,
        limit: int | None = 50,
        include_deleted: bool = False,
    ) -> list[ArtifactRecord]:
        from stemma.wire.schemas import ArtifactOut

        out: list[ArtifactRecord] = []
        page = 1000 if limit is None else min(limit, 1000)
        if page <= 0:
            return out
        params = self._artifact_query(type_, name, filters, include_deleted)
        while True:
            body = self._json(
                "GET",
                f"/api/v1/projects/{_path(entity, project)}/artifact-versions",
                params={**params, "order": order, "offset": offset + len(out), "limit": page},
            )
            batch = [ArtifactOut.model_validate(a).to_record() for a in body["artifacts"]]
            out.extend(batch)
            if len(batch) < page or (limit is not None and len(out) >= limit):
                return out if limit is None else out[:limit]

    def count_artifact_versions(
        self,
        entity: str,
        project: str,
        *,
        type_: str | None = None,
        name: str | None = None,
        filters: Mapping[str, Any] | None = None,
        include_deleted: bool = False,
    ) -> int:
        return int(
            self._json(
                "GET",
                f"/api/v1/projects/{_path(entity, project)}/artifact-versions/count",
                params=self._artifact_query(type_, name, filters, include_deleted),
            )["count"]
        )

    def artifact_types(self, entity: str, project: str) -> list[dict[str, Any]]:
        body = self._json("GET", f"/api/v1/projects/{_path(entity, project)}/artifact-types")
        return [dict(t) for t in body["types"]]

    def _version_path(self, ref: ArtifactRef) -> str:
        return f"/api/v1/artifacts/{_path(ref.entity, ref.project, ref.name, f'v{ref.version}')}"

    def update_artifact(self, ref: ArtifactRef, changes: dict[str, Any]) -> ArtifactRecord:
        from stemma.wire.schemas import ArtifactOut
        from stemma.wire.values import to_storable

        body = dict(changes)
        if body.get("metadata") is not None:
            body["metadata"] = to_storable(body["metadata"], "metadata")
        return ArtifactOut.model_validate(
            self._json("PATCH", self._version_path(ref), json=body)
        ).to_record()

    def delete_artifact(self, ref: ArtifactRef, delete_aliases: bool = False) -> None:
        self._request("DELETE", self._version_path(ref), params={"delete_aliases": delete_aliases})

    def use_artifact(self, run: RunRef, ref: ArtifactRef) -> None:
        self._request(
            "POST",
            f"/api/v1/runs/{_path(run.entity, run.project, run.run_id)}/used",
            json={
                "entity": ref.entity,
                "project": ref.project,
                "name": ref.name,
                "version": ref.version,
            },
        )

    def artifact_runs(self, ref: ArtifactRef) -> tuple[RunRecord | None, list[RunRecord]]:
        from stemma.wire.schemas import ArtifactRunsOut

        body = ArtifactRunsOut.model_validate(self._json("GET", self._version_path(ref) + "/runs"))
        return (
            body.logged_by.to_record() if body.logged_by else None,
            [r.to_record() for r in body.used_by],
        )

    def run_artifacts(self, run: RunRef, direction: str) -> list[ArtifactRecord]:
        from stemma.wire.schemas import ArtifactOut

        body = self._json(
            "GET",
            f"/api/v1/runs/{_path(run.entity, run.project, run.run_id)}/artifacts",
            params={"direction": direction},
        )
        return [ArtifactOut.model_validate(a).to_record() for a in body["artifacts"]]

    def artifact_lineage(
        self, ref: ArtifactRef, depth: int = 2, direction: str = "both"
    ) -> dict[str, Any]:
        return dict(
            self._json(
                "GET",
                self._version_path(ref) + "/lineage",
                params={"depth": depth, "direction": direction},
            )
        )

    def alias_history(
        self, entity: str, project: str, name: str, alias: str | None = None
    ) -> list[dict[str, Any]]:
        params = {"alias": alias} if alias else {}
        rows = self._json(
            "GET", f"/api/v1/artifacts/{_path(entity, project, name)}/alias-history", params=params
        )
        for r in rows:
            r["at"] = dt.datetime.fromisoformat(r["at"])
        return list(rows)

    def artifact_diff(
        self, a: ArtifactRef, b: ArtifactRef, contents: bool = True
    ) -> dict[str, Any]:
        def ref(x: ArtifactRef) -> dict[str, Any]:
            return {"entity": x.entity, "project": x.project, "name": x.name, "version": x.version}

        return dict(
            self._json(
                "POST",
                "/api/v1/artifact-diff",
                params={"contents": contents},
                json={"a": ref(a), "b": ref(b)},
            )
        )

    def get_protected_aliases(self, entity: str, project: str) -> list[str]:
        return list(
            self._json("GET", f"/api/v1/projects/{_path(entity, project)}/protected-aliases")[
                "aliases"
            ]
        )

    def set_protected_aliases(self, entity: str, project: str, aliases: list[str]) -> None:
        self._request(
            "PUT",
            f"/api/v1/projects/{_path(entity, project)}/protected-aliases",
            json={"aliases": aliases},
        )

    def get_retention(self, entity: str, project: str) -> list[dict[str, Any]]:
        return list(
            self._json("GET", f"/api/v1/projects/{_path(entity, project)}/retention")["policies"]
        )

    def set_retention(
        self,
        entity: str,
        project: str,
        name: str | None,
        keep_last: int | None,
        delete_unaliased_older_than: float | None,
        default_ttl: float | None = None,
    ) -> None:
        self._request(
            "PUT",
            f"/api/v1/projects/{_path(entity, project)}/retention",
            json={
                "name": name,
                "keep_last": keep_last,
                "delete_unaliased_older_than": delete_unaliased_older_than,
                "default_ttl": default_ttl,
            },
        )

    def gc(
        self, dry_run: bool = False, grace_seconds: float = 3600.0, repack_below: float = 0.5
    ) -> dict[str, Any]:
        return dict(
            self._json(
                "POST",
                "/api/v1/admin/gc",
                json={
                    "dry_run": dry_run,
                    "grace_seconds": grace_seconds,
                    "repack_below": repack_below,
                },
            )
        )

    def storage_stats(
        self, entity: str | None = None, project: str | None = None
    ) -> list[dict[str, Any]]:
        params = {k: v for k, v in (("entity", entity), ("project", project)) if v}
        return list(self._json("GET", "/api/v1/storage", params=params))

    # ------------------------------------------------------------ people and teams
    def whoami(self) -> dict[str, Any]:
        from stemma.wire.schemas import WhoAmIOut

        me = WhoAmIOut.model_validate(self._json("GET", "/api/v1/whoami")).model_dump()
        self._whoami = me
        return me

    def has_users(self) -> bool:
        # A server with no accounts runs in local mode (loopback) or refuses to start.
        return self.whoami()["mode"] != "local"

    def _user_body(
        self,
        email: str,
        display_name: str | None,
        username: str | None,
        is_admin: bool,
        password: str | None,
        with_key: bool,
    ) -> dict[str, Any]:
        from stemma.wire.schemas import CreatedUserOut

        body = {
            "email": email,
            "display_name": display_name,
            "username": username,
            "admin": is_admin,
            "password": password,
            "with_key": with_key,
        }
        out = CreatedUserOut.model_validate(self._json("POST", "/api/v1/users", json=body))
        return {"user": out.user.model_dump(), "password": out.password, "key": out.key}

    def create_user(
        self,
        email: str,
        *,
        display_name: str | None = None,
        username: str | None = None,
        is_admin: bool = False,
        password: str | None = None,
    ) -> tuple[dict[str, Any], str]:
        out = self._user_body(email, display_name, username, is_admin, password, False)
        return out["user"], out["password"]

    def create_user_with_key(
        self,
        email: str,
        *,
        display_name: str | None = None,
        username: str | None = None,
        is_admin: bool = False,
        password: str | None = None,
    ) -> tuple[dict[str, Any], str, str]:
        """One request: the server makes the user and the key in one go."""
        out = self._user_body(email, display_name, username, is_admin, password, True)
        return out["user"], out["password"], str(out["key"])

    def list_users(self) -> list[dict[str, Any]]:
        from stemma.wire.schemas import UserOut

        return [UserOut.model_validate(u).model_dump() for u in self._json("GET", "/api/v1/users")]

    def set_user_disabled(self, user: str, disabled: bool = True) -> None:
        self._request("PATCH", f"/api/v1/users/{_path(user)}", json={"disabled": disabled})

    def set_password(self, user: str, password: str | None = None) -> str:
        out = self._json(
            "POST", f"/api/v1/users/{_path(user)}/password", json={"password": password}
        )
        return str(out["password"])

    def create_api_key(
        self, user: str | None = None, name: str | None = None, expires_in: float | None = None
    ) -> tuple[dict[str, Any], str]:
        from stemma.wire.schemas import CreatedKeyOut

        out = CreatedKeyOut.model_validate(
            self._json(
                "POST", "/api/v1/keys", json={"user": user, "name": name, "expires_in": expires_in}
            )
        )
        return out.info.model_dump(), out.key

    def list_api_keys(self, user: str | None = None) -> list[dict[str, Any]]:
        from stemma.wire.schemas import KeyOut

        params = {"user": user} if user else {}
        return [
            KeyOut.model_validate(k).model_dump()
            for k in self._json("GET", "/api/v1/keys", params=params)
        ]

    def revoke_api_key(self, prefix: str) -> dict[str, Any]:
        from stemma.wire.schemas import KeyOut

        return KeyOut.model_validate(
            self._json("DELETE", f"/api/v1/keys/{_path(prefix)}")
        ).model_dump()

    def create_team(self, name: str) -> dict[str, Any]:
        from stemma.wire.schemas import TeamOut

        return TeamOut.model_validate(
            self._json("POST", "/api/v1/teams", json={"name": name})
        ).model_dump()

    def list_teams(self) -> list[dict[str, Any]]:
        from stemma.wire.schemas import TeamOut

        return [TeamOut.model_validate(t).model_dump() for t in self._json("GET", "/api/v1/teams")]

    def team_members(self, team: str) -> dict[str, Any]:
        from stemma.wire.schemas import TeamDetailOut

        return TeamDetailOut.model_validate(
            self._json("GET", f"/api/v1/teams/{_path(team)}")
        ).model_dump()

    def add_member(self, team: str, email: str, role: str = "member") -> dict[str, Any]:
        from stemma.wire.schemas import MembershipOut

        return MembershipOut.model_validate(
            self._json("PUT", f"/api/v1/teams/{_path(team, 'members', email)}", json={"role": role})
        ).model_dump()

    def remove_member(self, team: str, user: str) -> dict[str, Any]:
        from stemma.wire.schemas import MembershipOut

        return MembershipOut.model_validate(
            self._json("DELETE", f"/api/v1/teams/{_path(team, 'members', user)}")
        ).model_dump()

    def create_service_account(
        self, team: str, name: str, role: str = "member"
    ) -> tuple[dict[str, Any], str]:
        from stemma.wire.schemas import CreatedServiceAccountOut

        out = CreatedServiceAccountOut.model_validate(
            self._json(
                "POST",
                f"/api/v1/teams/{_path(team, 'service-accounts')}",
                json={"name": name, "role": role},
            )
        )
        return {**out.account.model_dump(), "key_prefix": _key_prefix(out.key)}, out.key

    def delete_service_account(self, team: str, name: str) -> None:
        self._request("DELETE", f"/api/v1/teams/{_path(team, 'service-accounts', name)}")

    def set_project_visibility(self, entity: str, project: str, visibility: str) -> None:
        self._request(
            "PUT",
            f"/api/v1/projects/{_path(entity, project)}/visibility",
            json={"visibility": visibility},
        )

    # ------------------------------------------------------------ audit
    def audit_log(
        self,
        *,
        entity: str | None = None,
        actor: str | None = None,
        action: str | None = None,
        target: str | None = None,
        since: Any = None,
        until: Any = None,
        limit: int = 100,
        before_seq: int | None = None,
    ) -> list[dict[str, Any]]:
        """A team's log from ``/teams/T/audit`` (its admins), else the instance's."""
        from stemma.wire.schemas import AuditEntryOut

        params: dict[str, Any] = {"limit": limit}
        for key, value in (
            ("actor", actor),
            ("action", action),
            ("target", target),
            ("since", since),
            ("until", until),
            ("before_seq", before_seq),
        ):
            if value is not None:
                params[key] = value.isoformat() if isinstance(value, dt.datetime) else value
        url = "/api/v1/audit" if entity is None else f"/api/v1/teams/{_path(entity)}/audit"
        return [
            AuditEntryOut.model_validate(e).model_dump()
            for e in self._json("GET", url, params=params)
        ]

    def audit_verify(self) -> dict[str, Any]:
        from stemma.wire.schemas import AuditVerifyOut

        return AuditVerifyOut.model_validate(self._json("GET", "/api/v1/audit/verify")).model_dump()

    # ------------------------------------------------------------ promotions
    def request_promotion(
        self, ref: ArtifactRef, alias: str, comment: str | None = None
    ) -> dict[str, Any]:
        from stemma.wire.schemas import PromotionOut

        return PromotionOut.model_validate(
            self._json(
                "POST",
                self._version_path(ref) + "/promotions",
                json={"alias": alias, "comment": comment},
            )
        ).model_dump()

    def list_promotions(
        self,
        entity: str,
        project: str,
        name: str | None = None,
        state: str | None = "pending",
    ) -> list[dict[str, Any]]:
        from stemma.wire.schemas import PromotionOut

        params = {"state": state or "all", **({"name": name} if name else {})}
        return [
            PromotionOut.model_validate(p).model_dump()
            for p in self._json(
                "GET", f"/api/v1/projects/{_path(entity, project)}/promotions", params=params
            )
        ]

    def decide_promotion(
        self,
        request_id: int,
        approve: bool,
        comment: str | None = None,
        project: tuple[str, str] | None = None,
    ) -> dict[str, Any]:
        from stemma.wire.schemas import PromotionOut

        if project is None:
            raise errors.UsageError(
                f"name the project of promotion request {request_id} (entity, project)",
                request=request_id,
            )
        path = _path(*project, "promotions", str(request_id), "decision")
        return PromotionOut.model_validate(
            self._json(
                "POST",
                f"/api/v1/projects/{path}",
                json={"approve": approve, "comment": comment},
            )
        ).model_dump()

    # ------------------------------------------------------------ reports
    def _report(self, body: Any) -> dict[str, Any]:
        from stemma.wire.reports import ReportOut

        return ReportOut.model_validate(body).model_dump()

    def save_report(
        self, entity: str, project: str, spec: dict[str, Any], report_id: str | None = None
    ) -> dict[str, Any]:
        from stemma.report.spec import validate_spec

        # Checked here first (the same check as the server's, so the same messages, and
        # what JSON cannot carry is refused by name); the normalized spec names the
        # project, which the server compares with the report's own.
        clean = validate_spec(spec, entity, project)
        if report_id is None:
            url = f"/api/v1/projects/{_path(entity, project)}/reports"
            return self._report(self._json("POST", url, json={"spec": clean}))
        url = f"/api/v1/reports/{_path(report_id)}"
        return self._report(self._json("PUT", url, json={"spec": clean}))

    def get_report(self, report_id: str, revision: int | None = None) -> dict[str, Any]:
        params = {} if revision is None else {"revision": revision}
        return self._report(self._json("GET", f"/api/v1/reports/{_path(report_id)}", params=params))

    def list_reports(self, entity: str, project: str) -> list[dict[str, Any]]:
        from stemma.wire.reports import ReportListOut

        body = self._json("GET", f"/api/v1/projects/{_path(entity, project)}/reports")
        return [r.model_dump() for r in ReportListOut.model_validate(body).reports]

    def report_revisions(self, report_id: str) -> list[dict[str, Any]]:
        from stemma.wire.reports import RevisionListOut

        body = self._json("GET", f"/api/v1/reports/{_path(report_id, 'revisions')}")
        return [r.model_dump() for r in RevisionListOut.model_validate(body).revisions]

    def delete_report(self, report_id: str) -> None:
        self._request("DELETE", f"/api/v1/reports/{_path(report_id)}")

    def set_report_share(self, report_id: str, enabled: bool) -> dict[str, Any]:
        return self._report(
            self._json(
                "PUT", f"/api/v1/reports/{_path(report_id, 'share')}", json={"enabled": enabled}
            )
        )

    def report_sharing_allowed(self, entity: str, project: str) -> bool:
        url = f"/api/v1/projects/{_path(entity, project)}/report-sharing"
        return bool(self._json("GET", url)["allowed"])

    def set_report_sharing_allowed(self, entity: str, project: str, allowed: bool) -> None:
        url = f"/api/v1/projects/{_path(entity, project)}/report-sharing"
        self._request("PUT", url, json={"allowed": allowed})

    # ------------------------------------------------------------ webhooks
    def add_webhook(
        self,
        team: str,
        url: str,
        events: Sequence[str],
        alias: str | None = None,
        secret: str | None = None,
    ) -> tuple[dict[str, Any], str]:
        from stemma.wire.webhooks import CreatedWebhookOut

        body = {"url": url, "events": list(events), "alias": alias, "secret": secret}
        out = CreatedWebhookOut.model_validate(
            self._json("POST", f"/api/v1/teams/{_path(team, 'webhooks')}", json=body)
        )
        return out.webhook.model_dump(), out.secret

    def list_webhooks(self, team: str) -> list[dict[str, Any]]:
        from stemma.wire.webhooks import WebhookOut

        body = self._json("GET", f"/api/v1/teams/{_path(team, 'webhooks')}")
        return [WebhookOut.model_validate(w).model_dump() for w in body]

    def delete_webhook(self, team: str, webhook_id: int) -> None:
        self._request("DELETE", f"/api/v1/teams/{_path(team, 'webhooks', str(webhook_id))}")

    def test_webhook(self, team: str, webhook_id: int) -> dict[str, Any]:
        from stemma.wire.webhooks import DeliveryOut

        url = f"/api/v1/teams/{_path(team, 'webhooks', str(webhook_id), 'test')}"
        return DeliveryOut.model_validate(self._json("POST", url)).model_dump()

    def webhook_deliveries(
        self, team: str, webhook_id: int, limit: int = 20
    ) -> list[dict[str, Any]]:
        from stemma.wire.webhooks import DeliveryOut

        url = f"/api/v1/teams/{_path(team, 'webhooks', str(webhook_id), 'deliveries')}"
        body = self._json("GET", url, params={"limit": limit})
        return [DeliveryOut.model_validate(d).model_dump() for d in body]

    def close(self) -> None:
        self.client.close()
        self.raw.close()


def _key_prefix(key: str) -> str:
    """The visible part of an API key ``stm_<prefix>_<secret>`` (what ``key ls`` shows)."""
    return key.split("_")[1] if key.count("_") >= 2 else ""


def _file_chunks(fh: Any) -> Any:
    while chunk := fh.read(_CHUNK):
        yield chunk


def _decode_columns(body: dict[str, Any]) -> dict[str, Column]:
    return {
        key: Column(kind, chunks.decode_steps(steps), chunks.decode_values(kind, vals))
        for key, (kind, steps, vals) in body.items()
    }

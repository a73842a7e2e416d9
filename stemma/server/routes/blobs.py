"""Blobs: which are missing, where to upload them, registering, fetching, verifying.

With an S3 store the client uploads and downloads through presigned URLs, so artifact
bytes never pass through this server; with a local directory store the server itself
receives ``PUT /api/v1/blobs/{digest}`` (verifying the SHA-256 as the bytes stream in)
and serves ``GET``.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import FileResponse, RedirectResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from stemma.errors import InvalidValueError, NotFound
from stemma.server.deps import Store, rule
from stemma.wire.schemas import (
    BlobsIn,
    DigestsIn,
    DigestsOut,
    MultipartDoneIn,
    UploadPlanOut,
    UploadTarget,
)

router = APIRouter(prefix="/api/v1/blobs", tags=["blobs"])

PART_SIZE = 64 << 20


def _check_digest(digest: str) -> str:
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise InvalidValueError(f"not a SHA-256 hex digest: {digest!r}", digest=digest)
    return digest


@router.post(
    "/missing",
    response_model=DigestsOut,
    summary="Which of these blobs the store lacks",
    openapi_extra=rule("authenticated"),
)
def missing(body: DigestsIn, store: Store) -> DigestsOut:
    for d in body.digests:
        _check_digest(d)
    return DigestsOut(digests=sorted(store.missing_blobs(body.digests)))


@router.post(
    "/uploads",
    response_model=UploadPlanOut,
    summary="Upload instructions for the blobs the store lacks",
    openapi_extra=rule("authenticated"),
)
def plan_uploads(body: BlobsIn, request: Request, store: Store) -> UploadPlanOut:
    settings = request.app.state.settings
    wanted = {b.digest: b.size for b in body.blobs}
    lacking = store.missing_blobs(list(wanted))
    blobs: Any = store.blobs  # local directory or object store: duck-typed extras
    out = []
    for digest in sorted(lacking):
        size = wanted[digest]
        if hasattr(blobs, "presign_put"):  # an object store: the client talks to it directly
            if size > settings.multipart_threshold:
                mp = blobs.create_multipart(digest, size, PART_SIZE)
                out.append(
                    UploadTarget(
                        digest=digest,
                        size=size,
                        upload_id=mp["upload_id"],
                        part_size=mp["part_size"],
                        part_urls=[p["url"] for p in mp["parts"]],
                    )
                )
            else:
                put = blobs.presign_put(digest, size)
                out.append(
                    UploadTarget(
                        digest=digest, size=size, url=put["url"], headers=put.get("headers", {})
                    )
                )
        else:
            out.append(UploadTarget(digest=digest, size=size, url=f"/api/v1/blobs/{digest}"))
    return UploadPlanOut(uploads=out)


@router.put(
    "/{digest}",
    status_code=204,
    openapi_extra=rule(
        "authenticated",
        requestBody={
            "required": True,
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
        },
    ),
    summary="Upload a blob's bytes (local-directory stores only)",
)
async def put_blob(digest: str, request: Request, store: Store) -> Response:
    _check_digest(digest)
    blobs: Any = store.blobs  # local directory or object store: duck-typed extras
    if not hasattr(blobs, "receive_path"):
        raise InvalidValueError(
            "this server's store takes uploads through presigned URLs: "
            "ask POST /api/v1/blobs/uploads"
        )
    tmp = blobs.receive_path()
    h = hashlib.sha256()
    size = 0
    try:
        with open(tmp, "wb") as fh:
            async for chunk in request.stream():
                h.update(chunk)
                size += len(chunk)
                await run_in_threadpool(fh.write, chunk)
        if h.hexdigest() != digest:
            raise InvalidValueError(
                f"uploaded bytes have SHA-256 {h.hexdigest()}, not {digest}; nothing stored",
                digest=digest,
            )
        await run_in_threadpool(blobs.place, tmp, digest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    await run_in_threadpool(store.register_blobs, [(digest, size)])
    return Response(status_code=204)


@router.post(
    "/register",
    status_code=204,
    summary="Record blobs uploaded straight to the object store",
    openapi_extra=rule("authenticated"),
)
def register(body: BlobsIn, store: Store) -> Response:
    store.register_uploaded([(b.digest, b.size) for b in body.blobs])
    return Response(status_code=204)


@router.post("/multipart/complete", status_code=204, openapi_extra=rule("authenticated"))
def complete_multipart(body: MultipartDoneIn, store: Store) -> Response:
    blobs: Any = store.blobs  # local directory or object store: duck-typed extras
    if not hasattr(blobs, "complete_multipart"):
        raise InvalidValueError("this server's store does not take multipart uploads")
    blobs.complete_multipart(body.digest, body.upload_id, body.parts, size=body.size)
    return Response(status_code=204)


@router.get(
    "/{digest}",
    summary="Download a blob (a redirect to the object store, or bytes)",
    responses={
        200: {"content": {"application/octet-stream": {}}},
        307: {"description": "presigned URL of the object store"},
    },
    openapi_extra=rule("authenticated"),
)
def get_blob(digest: str, store: Store) -> Response:
    _check_digest(digest)
    blobs: Any = store.blobs  # local directory or object store: duck-typed extras
    if blobs.raw.size(digest) is None and blobs.recipe(digest) is not None:
        # a file stored as chunks: reassembled here (clients that can read ranges ask
        # GET /api/v1/chunks/files/{digest} and fetch the packs' ranges themselves)
        return StreamingResponse(
            _chunks(blobs.open(digest)),
            media_type="application/octet-stream",
            headers={"x-stemma-digest": digest, "content-length": str(blobs.size(digest))},
        )
    if hasattr(blobs, "presign_get"):
        if not blobs.raw.has(digest):
            raise NotFound(f"blob {digest} is not in the store", digest=digest)
        return RedirectResponse(blobs.presign_get(digest), status_code=307)
    path = blobs.path(digest)
    if not path.is_file():
        raise NotFound(f"blob {digest} is not in the store", digest=digest)
    # FileResponse answers Range requests: how clients read chunks out of packfiles
    return FileResponse(
        path, media_type="application/octet-stream", headers={"x-stemma-digest": digest}
    )


def _chunks(fh: Any) -> Iterator[bytes]:
    with fh:
        while data := fh.read(1 << 20):
            yield data


@router.post(
    "/verify",
    response_model=DigestsOut,
    summary="Re-hash stored blobs; returns those missing or corrupt",
    openapi_extra=rule("authenticated"),
)
def verify(body: DigestsIn, store: Store) -> DigestsOut:
    for d in body.digests:
        _check_digest(d)
    return DigestsOut(digests=store.verify_blobs(body.digests))

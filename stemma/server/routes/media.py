"""Run media: list what a run logged, and serve the bytes of one of its media blobs.

The bytes route answers only for a digest that belongs to a media item of the run in
the path (else 404, whatever the store holds), after the same read check as the run
itself, so a media URL can be handed to a browser signed in with a session cookie.
Responses are immutable (content-addressed) and never run in the app's origin: the
Content-Type comes from the index (never from the client), ``nosniff`` stops browsers
guessing another, and ``Content-Security-Policy: sandbox`` (no ``allow-scripts``) makes
logged HTML, opened directly or framed, a script-less page of an opaque origin.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import FileResponse, StreamingResponse

from stemma.server.deps import Store, rule, run_ref
from stemma.wire.media import HTML_CONTENT_TYPE, IMAGE_CONTENT_TYPES, JSON_CONTENT_TYPE
from stemma.wire.schemas import MediaListOut, MediaOut

router = APIRouter(prefix="/api/v1", tags=["media"])

MEDIA_HEADERS = {
    "x-content-type-options": "nosniff",
    "cache-control": "private, max-age=31536000, immutable",
    "content-security-policy": "sandbox",
}

_BYTES = {
    200: {
        "content": {
            t: {"schema": {"type": "string", "format": "binary"}}
            for t in (*IMAGE_CONTENT_TYPES.values(), JSON_CONTENT_TYPE, HTML_CONTENT_TYPE)
        },
        "description": "the blob's bytes, as the Content-Type of its media kind",
    }
}


@router.get(
    "/runs/{entity}/{project}/{run_id}/media",
    response_model=MediaListOut,
    summary="The media a run logged (of one key), by key then step",
    openapi_extra=rule("read"),
)
def list_media(
    entity: str, project: str, run_id: str, store: Store, key: str | None = None
) -> MediaListOut:
    items = store.list_media(run_ref(entity, project, run_id), key)
    return MediaListOut(media=[MediaOut(**item) for item in items])


@router.get(
    "/runs/{entity}/{project}/{run_id}/media/{digest}",
    responses=_BYTES,  # type: ignore[arg-type]
    summary="The bytes of a blob of the run's media (404 unless it is one)",
    openapi_extra=rule("read"),
)
def get_media(entity: str, project: str, run_id: str, digest: str, store: Store) -> Response:
    content_type = store.media_blob(run_ref(entity, project, run_id), digest)
    headers = {**MEDIA_HEADERS, "etag": f'"{digest}"'}
    blobs: Any = store.blobs  # local directory or object store: duck-typed extras
    if hasattr(blobs, "path"):
        return FileResponse(blobs.path(digest), media_type=content_type, headers=headers)
    # An object store: streamed through here, since a redirect would lose these headers.
    return StreamingResponse(_chunks(blobs.open(digest)), media_type=content_type, headers=headers)


def _chunks(fh: Any) -> Iterator[bytes]:
    with fh:
        while chunk := fh.read(1 << 20):
            yield chunk

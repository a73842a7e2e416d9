"""Chunked files: which chunks the store lacks, registering uploaded packs and files,
and where a chunked file's chunks are for a ranged download.

The upload of a large file, as the client does it::

    POST /chunks/missing {files, chunks}   -> files already complete, chunks lacking
    (pack the lacking chunks; each pack is a blob: POST /blobs/uploads, PUT, register)
    POST /chunks/packs   {packs}           -> the server reads each pack back and checks
                                              every chunk's SHA-256 before trusting it
    POST /chunks/files   {digest, size, chunks}
                                           -> the server reassembles the file and checks
                                              its SHA-256, then records its recipe
    POST /artifacts/.../versions           -> the commit, as for whole files

Like blobs, chunks are content-addressed and shared by the whole instance: any signed-in
account may ask about them, and nothing can be read without knowing a digest.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from stemma.server.deps import Store, rule
from stemma.server.routes.blobs import _check_digest
from stemma.wire.schemas import (
    ChunkedFileIn,
    ChunkedFileOut,
    ChunkLocation,
    ChunksMissingIn,
    ChunksMissingOut,
    PacksIn,
    PacksOut,
)

router = APIRouter(prefix="/api/v1/chunks", tags=["chunks"])


@router.post(
    "/missing",
    response_model=ChunksMissingOut,
    summary="Which large files are already stored, and which chunks the store lacks",
    openapi_extra=rule("authenticated"),
)
def missing(body: ChunksMissingIn, store: Store) -> ChunksMissingOut:
    for d in body.chunks:
        _check_digest(d)
    files, chunks = store.chunks_missing([(f.digest, f.size) for f in body.files], body.chunks)
    return ChunksMissingOut(files=files, chunks=chunks)


@router.post(
    "/packs",
    response_model=PacksOut,
    summary="Register uploaded packfiles (every chunk in them is checked first)",
    openapi_extra=rule("authenticated"),
)
async def register_packs(body: PacksIn, store: Store) -> PacksOut:
    for d in body.packs:
        _check_digest(d)
    return PacksOut(chunks=await run_in_threadpool(store.register_packs, body.packs))


@router.post(
    "/files",
    status_code=204,
    summary="Record a large file as its chunks (its SHA-256 is checked first)",
    openapi_extra=rule("authenticated"),
)
async def register_file(body: ChunkedFileIn, store: Store) -> None:
    for d, _n in body.chunks:
        _check_digest(d)
    await run_in_threadpool(
        store.register_chunked_file, body.digest, body.size, [(d, n) for d, n in body.chunks]
    )


@router.get(
    "/files/{digest}",
    response_model=ChunkedFileOut,
    summary="Where a chunked file's chunks are, for ranged downloads",
    openapi_extra=rule("authenticated"),
)
def locate(digest: str, store: Store) -> ChunkedFileOut:
    _check_digest(digest)
    size, located = store.locate_file(digest)
    blobs: Any = store.blobs  # local directory or object store: duck-typed extras
    packs: dict[str, str] = {}
    for pack, _c in located:
        if pack not in packs:
            packs[pack] = (
                blobs.presign_get(pack)
                if hasattr(blobs, "presign_get")
                else f"/api/v1/blobs/{pack}"
            )
    return ChunkedFileOut(
        digest=digest,
        size=size,
        chunks=[
            ChunkLocation(
                digest=c.digest,
                size=c.size,
                pack=pack,
                offset=c.offset,
                stored_size=c.stored_size,
                codec=c.codec,
            )
            for pack, c in located
        ],
        packs=packs,
    )

"""A request body limit enforced while the body streams in (413 with the error shape)."""

from __future__ import annotations

import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyTooLarge(Exception):
    pass


class BodyLimitMiddleware:
    """Refuse bodies over ``limit`` bytes, declared or streamed, before handlers see them.

    Blob uploads (``PUT /api/v1/blobs/...``) have their own, larger limit, since they are
    the one route meant to carry file bytes when the store is a local directory.
    """

    def __init__(self, app: ASGIApp, limit: int, blob_limit: int) -> None:
        self.app = app
        self.limit = limit
        self.blob_limit = blob_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = (
            self.blob_limit
            if (scope["method"] == "PUT" and scope["path"].startswith("/api/v1/blobs/"))
            else self.limit
        )
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _too_large(send, limit)
            return
        seen = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await _too_large(send, limit)


async def _too_large(send: Send, limit: int) -> None:
    body: dict[str, Any] = {
        "code": "payload_too_large",
        "message": f"request body is larger than the server's limit of {limit} bytes",
        "context": {"limit": limit},
    }
    data = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(data)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": data})

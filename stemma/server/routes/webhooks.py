"""A team's webhooks: register, list, delete, send a test, read deliveries. Thin: the
store checks every rule (team admins) and every URL."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from stemma.server.deps import Store, rule
from stemma.wire.names import check_name
from stemma.wire.webhooks import CreatedWebhookOut, DeliveryOut, WebhookIn, WebhookOut

router = APIRouter(prefix="/api/v1", tags=["webhooks"])


def reached_at(request: Request) -> list[tuple[str, int]]:
    """Where this request reached the server: the Host it named and the socket it
    came in on. A webhook may not point at either (it would call the server itself)."""
    out: list[tuple[str, int]] = []
    url = request.url
    if url.hostname:
        out.append((url.hostname, url.port or (443 if url.scheme == "https" else 80)))
    server = request.scope.get("server")
    if server and server[0] and server[1]:
        out.append((str(server[0]), int(server[1])))
    return out


@router.get(
    "/teams/{team}/webhooks",
    response_model=list[WebhookOut],
    summary="A team's webhooks (never their secrets)",
    openapi_extra=rule("admin"),
)
def list_webhooks(team: str, store: Store) -> list[WebhookOut]:
    return [WebhookOut(**w) for w in store.list_webhooks(check_name(team, "team"))]


@router.post(
    "/teams/{team}/webhooks",
    response_model=CreatedWebhookOut,
    status_code=201,
    summary="Register a webhook; the answer holds its secret, shown only here",
    openapi_extra=rule("admin"),
)
def add_webhook(team: str, body: WebhookIn, request: Request, store: Store) -> CreatedWebhookOut:
    hook, secret = store.add_webhook(
        check_name(team, "team"),
        body.url,
        body.events,
        body.alias,
        body.secret,
        reached_at=reached_at(request),
    )
    return CreatedWebhookOut(webhook=WebhookOut(**hook), secret=secret)


@router.delete(
    "/teams/{team}/webhooks/{webhook_id}",
    status_code=204,
    summary="Delete a webhook and its deliveries",
    openapi_extra=rule("admin"),
)
def delete_webhook(team: str, webhook_id: int, store: Store) -> Response:
    store.delete_webhook(check_name(team, "team"), webhook_id)
    return Response(status_code=204)


@router.post(
    "/teams/{team}/webhooks/{webhook_id}/test",
    response_model=DeliveryOut,
    status_code=201,
    summary="Queue a ping delivery to a webhook",
    openapi_extra=rule("admin"),
)
def test_webhook(team: str, webhook_id: int, store: Store) -> DeliveryOut:
    return DeliveryOut(**store.test_webhook(check_name(team, "team"), webhook_id))


@router.get(
    "/teams/{team}/webhooks/{webhook_id}/deliveries",
    response_model=list[DeliveryOut],
    summary="A webhook's deliveries, newest first",
    openapi_extra=rule("admin"),
)
def webhook_deliveries(
    team: str,
    webhook_id: int,
    store: Store,
    limit: Annotated[int, Query(ge=1, le=1000)] = 20,
) -> list[DeliveryOut]:
    found = store.webhook_deliveries(check_name(team, "team"), webhook_id, limit)
    return [DeliveryOut(**d) for d in found]

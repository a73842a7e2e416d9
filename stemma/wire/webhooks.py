"""The REST API's webhook bodies, shared by the server and the HTTP client.

Kept apart from :mod:`stemma.wire.schemas` only for size; the same rules apply: this
module imports pydantic, so only the server and the HTTP backend import it. Events and
URLs are checked by the store, not here, so both backends refuse with one message.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WebhookIn(_Model):
    url: str = Field(description="http(s) URL the deliveries are POSTed to", max_length=2048)
    events: list[str] = Field(
        description="artifact.version_created, artifact.alias_moved, run.finished, report.saved",
        max_length=16,
    )
    alias: str | None = Field(
        None, description="artifact.alias_moved only for this alias (e.g. production)"
    )
    secret: str | None = Field(
        None, description="the signing secret (16 to 256 characters); generated when absent"
    )


class WebhookOut(_Model):
    id: int
    team: str
    url: str
    events: list[str]
    alias: str | None
    enabled: bool
    created_by: str
    created_at: dt.datetime


class CreatedWebhookOut(_Model):
    webhook: WebhookOut
    secret: str = Field(description="the signing secret: returned here only, never again")


class AttemptOut(_Model):
    attempt: int
    at: str
    status_code: int | None
    error: str | None
    ms: int


class DeliveryOut(_Model):
    id: str = Field(description="the delivery id (X-Stemma-Delivery), the same on retries")
    webhook: int
    event: str
    status: str = Field(description="pending | succeeded | failed")
    attempts: int
    next_attempt_at: dt.datetime | None
    last_status_code: int | None
    last_error: str | None
    created_at: dt.datetime
    finished_at: dt.datetime | None
    payload: dict[str, Any] = Field(description="the JSON body sent")
    attempt_log: list[AttemptOut]

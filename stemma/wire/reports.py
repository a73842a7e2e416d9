"""The REST API's report bodies, shared by the server and the HTTP client.

Kept apart from :mod:`stemma.wire.schemas` only for size; the same rules apply: this
module imports pydantic, so only the server and the HTTP backend import it. A report's
``spec`` travels as the JSON of :mod:`stemma.report.spec` (checked by the store, not
here, so both backends refuse a bad spec with the same message).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ReportIn(_Model):
    spec: dict[str, Any] = Field(description="the report spec (see stemma.report.spec)")


class ShareIn(_Model):
    enabled: bool


class SharingIn(_Model):
    allowed: bool


class SharingOut(_Model):
    allowed: bool


class ShareOut(_Model):
    enabled: bool
    token: str | None = Field(
        None, description="the share token: only in the answer that enables the link"
    )
    allowed: bool = Field(description="whether the project's admins allow share links")
    enabled_by: str | None = None
    enabled_at: dt.datetime | None = None


class ReportSummaryOut(_Model):
    id: str
    entity: str
    project: str
    title: str
    description: str
    revision: int
    revisions: int
    created_by: str
    created_at: dt.datetime
    updated_by: str
    updated_at: dt.datetime
    share: ShareOut


class ReportOut(ReportSummaryOut):
    spec: dict[str, Any]


class ReportListOut(_Model):
    reports: list[ReportSummaryOut]


class RevisionOut(_Model):
    revision: int
    saved_by: str
    saved_at: dt.datetime
    title: str


class RevisionListOut(_Model):
    revisions: list[RevisionOut]

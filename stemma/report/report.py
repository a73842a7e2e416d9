"""``stemma.Report``: a report built in Python, saved as a spec, loaded back as objects.

::

    report = stemma.Report(project="text-classifier", title="Week 6")
    report.blocks = [stemma.report.PanelGrid(panels=[stemma.report.LinePlot(y="val/loss")])]
    report.save()  # validates, stores revision 1; report.url, report.id
    report.save()  # revision 2; revision 1 stays readable

``Api().reports(path)`` and ``Api().report(id, revision=None)`` give the same objects
back (equal ``to_spec()`` and blocks). The report's spec is described in
:mod:`stemma.report.spec`.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from stemma.errors import UsageError
from stemma.report.blocks import Block, block_from_spec
from stemma.report.spec import SPEC_VERSION, validate_spec

if TYPE_CHECKING:
    from stemma.backend.base import Backend
    from stemma.settings import Settings

# Where report pages are when the store is embedded: `stemma server`'s default address.
LOCAL_UI = "http://127.0.0.1:5280"


def report_url(base_url: str | None, entity: str, project: str, report_id: str) -> str:
    """The report's page: on the server the SDK talks to, else on a local `stemma
    server` (names and ids are URL-safe by construction)."""
    base = (base_url or LOCAL_UI).rstrip("/")
    return f"{base}/p/{entity}/{project}/reports/{report_id}"


def share_url(base_url: str | None, token: str) -> str:
    """The public page of a share link (no sign-in needed)."""
    from urllib.parse import quote

    return f"{(base_url or LOCAL_UI).rstrip('/')}/share/r/{quote(token, safe='')}"


class Report:
    """A report of ``project`` (``"entity/project"`` or ``project`` with ``entity``):
    a title, a description and a list of blocks (:mod:`stemma.report`).

    ``save()`` validates the blocks and stores a new revision (the first save creates
    the report); ``id``, ``url`` and ``revision`` are set by it (None before).
    """

    def __init__(
        self,
        project: str,
        title: str = "Untitled Report",
        description: str = "",
        entity: str | None = None,
        blocks: list[Block] | None = None,
    ) -> None:
        from stemma.wire.names import split_project

        if not isinstance(project, str) or not project:
            raise UsageError(f"a report needs a project, got {project!r}"[:200])
        self.entity, self.project = split_project(project, entity)
        self.title = title
        self.description = description
        self._blocks: list[Any] | None = list(blocks) if blocks is not None else []
        self.id: str | None = None
        self.revision: int | None = None
        self._record: dict[str, Any] = {}
        self._backend: Backend | None = None
        self._settings: Settings | None = None

    # ------------------------------------------------------------------ state
    @property
    def blocks(self) -> list[Any]:
        """The report's blocks (a report listed by ``Api().reports`` loads them from
        the store on first use)."""
        if self._blocks is None:
            assert self.id is not None
            record = self._store().get_report(self.id, self.revision)
            self._blocks = _blocks_of(record["spec"])
        return self._blocks

    @blocks.setter
    def blocks(self, value: list[Any]) -> None:
        # Anything but a list or tuple is kept as given, for save() to refuse by name.
        self._blocks = list(value) if isinstance(value, list | tuple) else value

    @property
    def url(self) -> str | None:
        """The report's page (None until saved)."""
        if self.id is None or self.entity is None:
            return None
        base = self._settings.base_url if self._settings is not None else None
        return report_url(base, self.entity, self.project, self.id)

    @property
    def revisions(self) -> int:
        """How many revisions are stored (0 before the first save)."""
        return int(self._record.get("revisions", 0))

    @property
    def created_by(self) -> str | None:
        return self._record.get("created_by")

    @property
    def created_at(self) -> dt.datetime | None:
        return self._record.get("created_at")

    @property
    def updated_by(self) -> str | None:
        return self._record.get("updated_by")

    @property
    def updated_at(self) -> dt.datetime | None:
        return self._record.get("updated_at")

    @property
    def share(self) -> dict[str, Any]:
        """``{"enabled", "token", "allowed", ...}`` of the report's share link (the
        token only in the answer of :meth:`enable_share_link`)."""
        return dict(self._record.get("share") or {"enabled": False, "token": None})

    def __repr__(self) -> str:
        where = f"{self.entity or '?'}/{self.project}"
        if self.id is None:
            return f"<Report {where} {self.title!r} (not saved)>"
        return f"<Report {where}/{self.id} {self.title!r} (revision {self.revision})>"

    # ------------------------------------------------------------------ spec
    def to_spec(self) -> dict[str, Any]:
        """The report as its spec (as given: :meth:`save` checks and normalizes it)."""
        from stemma.report.blocks import _plain

        return {
            "version": SPEC_VERSION,
            "entity": self.entity,
            "project": self.project,
            "title": self.title,
            "description": self.description,
            "blocks": _plain(self.blocks),
        }

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> Report:
        """A (not yet saved) report from a spec, which is validated first."""
        clean = validate_spec(spec)
        report = cls(
            clean["project"],
            title=clean["title"],
            description=clean["description"],
            entity=clean["entity"],
        )
        report._blocks = _blocks_of(clean)
        return report

    # ------------------------------------------------------------------ store
    def _store(self) -> Backend:
        if self._backend is None:
            from stemma.backend import get_backend
            from stemma.settings import Settings

            self._settings = self._settings or Settings.from_env()
            self._backend = get_backend(self._settings)
        return self._backend

    @classmethod
    def _from_record(cls, backend: Backend, settings: Settings, record: dict[str, Any]) -> Report:
        report = cls(record["project"], entity=record["entity"])
        report._backend, report._settings = backend, settings
        report._load(record)
        return report

    def _load(self, record: dict[str, Any]) -> None:
        self._record = dict(record)
        self.id = record["id"]
        self.entity = record["entity"]
        self.project = record["project"]
        self.title = record["title"]
        self.description = record["description"]
        self.revision = record["revision"]
        spec = record.get("spec")
        self._blocks = _blocks_of(spec) if spec is not None else None

    def save(self) -> Report:
        """Validate and store the report as a new revision (creating it on the first
        save); sets ``id``, ``url`` and ``revision``. InvalidValueError names the block
        and field at fault, and nothing is stored."""
        store = self._store()
        assert self._settings is not None
        entity = self.entity or self._settings.entity or store.default_entity()
        spec = validate_spec({**self.to_spec(), "entity": entity}, entity, self.project)
        self._load(store.save_report(entity, self.project, spec, self.id))
        return self

    def _saved_id(self) -> str:
        if self.id is None:
            raise UsageError("the report is not saved yet: call save() first")
        return self.id

    def delete(self) -> None:
        """Delete the report and every revision."""
        self._store().delete_report(self._saved_id())
        self.id, self.revision, self._record = None, None, {}

    def list_revisions(self) -> list[dict[str, Any]]:
        """``{revision, saved_by, saved_at, title}`` of every revision, oldest first."""
        return self._store().report_revisions(self._saved_id())

    def enable_share_link(self) -> str:
        """Turn on a read-only share link (a new token each time; any earlier one stops
        working) and return its token: it is shown only now (the store keeps a hash)."""
        record = self._store().set_report_share(self._saved_id(), True)
        self._record["share"] = record["share"]
        return str(record["share"]["token"])

    def disable_share_link(self) -> None:
        """Revoke the share link: its token stops working at once."""
        record = self._store().set_report_share(self._saved_id(), False)
        self._record["share"] = record["share"]


def _blocks_of(spec: dict[str, Any]) -> list[Any]:
    return [block_from_spec(b) for b in spec.get("blocks") or []]

"""``stemma.Api``: read (and edit) what was logged, from any process.

``Api().runs("entity/project")`` is lazy: it fetches a page of runs at a time and
``len()`` asks the store for a count without fetching runs.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from stemma.backend import get_backend
from stemma.backend.base import Backend
from stemma.errors import NotFound, UsageError
from stemma.sdk import capture
from stemma.settings import Settings
from stemma.wire.names import check_name
from stemma.wire.records import RunRecord, RunRef

if TYPE_CHECKING:
    import os

    import pandas as pd

_HISTORY_PAGE = 1000


class ReadOnlyDict(Mapping[str, Any]):
    """A stored run's config or summary: a mapping whose ``.get`` never raises."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        self._data = dict(data)

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __getattr__(self, key: str) -> Any:
        if key.startswith("_"):
            raise AttributeError(key)
        try:
            return self._data[key]
        except KeyError:
            raise AttributeError(f"no key {key!r}") from None

    def __repr__(self) -> str:
        return repr(self._data)

    def as_dict(self) -> dict[str, Any]:
        return dict(self._data)


class ApiRun:
    """A run as stored. Attributes mirror W&B's ``Run`` in the public API."""

    def __init__(self, backend: Backend, record: RunRecord) -> None:
        self._backend = backend
        self._load(record)

    def _load(self, record: RunRecord) -> None:
        self._record = record
        self.entity = record.entity
        self.project = record.project
        self.id = record.run_id
        self.name = record.name
        self.state = record.state
        self.job_type = record.job_type
        self.group = record.group
        self.tags = list(record.tags)
        self.notes = record.notes
        self.config = ReadOnlyDict(record.config)
        self.summary = ReadOnlyDict(record.summary)
        self.metadata = dict(record.metadata)
        self.user = record.user
        self.host = record.host
        self.created_at: dt.datetime = record.created_at
        self.heartbeat_at: dt.datetime = record.heartbeat_at
        self.finished_at = record.finished_at
        self.exit_code = record.exit_code
        self.last_step = record.last_step

    @property
    def display_name(self) -> str:
        return self.name

    @property
    def path(self) -> list[str]:
        """``[entity, project, id]`` as in W&B (``"/".join(run.path)`` is accepted back)."""
        return [self.entity, self.project, self.id]

    @property
    def ref(self) -> RunRef:
        return RunRef(self.entity, self.project, self.id)

    @property
    def url(self) -> str:
        return f"stemma://{self.entity}/{self.project}/runs/{self.id}"

    @property
    def summary_metrics(self) -> ReadOnlyDict:
        return self.summary

    def __repr__(self) -> str:
        return f"<ApiRun {'/'.join(self.path)} ({self.state})>"

    def history(
        self,
        keys: list[str] | None = None,
        samples: int | None = None,
        x_axis: str = "_step",
        pandas: bool = True,
        stream: str = "default",
    ) -> pd.DataFrame | list[dict[str, Any]]:
        """The run's logged rows: every row, unless ``samples`` asks for at most that many
        points per key (the minima and maxima of each stretch are kept).

        With ``keys``, only those columns and only rows where all of them were logged.
        ``stream="system"`` gives the ``system/*`` metrics.
        """
        from stemma.api.frames import iter_rows, to_frame

        if isinstance(keys, str):
            keys = [keys]
        fetch = None if keys is None else sorted({*keys, x_axis} - {"_step"})
        cols = self._backend.read_history(self.ref, fetch, stream=stream, samples=samples)
        if pandas:
            return to_frame(cols, keys, x_axis)
        return list(iter_rows(cols, keys))

    def scan_history(
        self,
        keys: list[str] | None = None,
        page_size: int = _HISTORY_PAGE,
        min_step: int | None = None,
        max_step: int | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Every row as a dict, fetched ``page_size`` steps at a time."""
        from stemma.api.frames import iter_rows

        if isinstance(keys, str):
            keys = [keys]
        if page_size <= 0:
            raise UsageError("page_size must be positive", page_size=page_size)
        fetch = None if keys is None else sorted(set(keys) - {"_step"})
        lo = 0 if min_step is None else min_step
        last = self._backend.get_run(self.ref)
        hi_limit = (last.last_step if last else self.last_step) if max_step is None else max_step
        while lo <= hi_limit:
            hi = min(lo + page_size - 1, hi_limit)
            cols = self._backend.read_history(self.ref, fetch, min_step=lo, max_step=hi)
            yield from iter_rows(cols, keys)
            lo = hi + 1

    def list_media(self, key: str | None = None) -> list[dict[str, Any]]:
        """The media the run logged (under ``key``), by key then step, from the store's
        index: dicts of key, step, kind, digest, size, caption and meta."""
        return self._backend.list_media(self.ref, key)

    def media(self, key: str, step: int | None = None) -> Any:
        """The media logged under ``key`` at ``step`` (the latest when None), read back
        as :func:`stemma.media.load` does: a PIL image, a list of them, a
        :class:`stemma.Table`, a plotly figure dict or a str of HTML."""
        from stemma.api.media import find_item, load

        return load(find_item(self._backend, self.ref, key, step), self)

    def media_bytes(self, key: str, step: int | None = None) -> bytes | list[bytes]:
        """The stored bytes of that media (one per image for a list of images)."""
        from stemma.api.media import find_item, load_bytes

        return load_bytes(find_item(self._backend, self.ref, key, step), self)

    def update(self) -> None:
        """Save edits made to ``name``, ``tags``, ``notes``, ``group``, ``job_type``
        and ``summary``."""
        self._backend.update_run(
            self.ref,
            {
                "name": self.name,
                "tags": list(self.tags),
                "notes": self.notes,
                "group": self.group,
                "job_type": self.job_type,
                "summary": dict(self.summary),
            },
        )
        self.refresh()

    def refresh(self) -> None:
        record = self._backend.get_run(self.ref)
        if record is None:
            raise NotFound(f"run {'/'.join(self.path)} no longer exists")
        self._load(record)

    def delete(self) -> None:
        self._backend.delete_run(self.ref)

    def used_artifacts(self) -> list[Any]:
        """Artifact versions this run used (its lineage inputs)."""
        return self._artifacts("input")

    def logged_artifacts(self) -> list[Any]:
        """Artifact versions this run logged (its lineage outputs)."""
        return self._artifacts("output")

    def _artifacts(self, direction: str) -> list[Any]:
        from stemma.sdk.artifact import Artifact

        settings = Settings.from_env()
        return [
            Artifact._from_record(self._backend, settings, r)
            for r in self._backend.run_artifacts(self.ref, direction)
        ]


class Runs:
    """A lazy, paginated sequence of runs of one project."""

    def __init__(
        self,
        backend: Backend,
        entity: str,
        project: str,
        order: str,
        per_page: int,
        filters: Mapping[str, Any] | None = None,
    ) -> None:
        self._backend = backend
        self.entity = entity
        self.project = project
        self.order = order
        self.per_page = per_page
        self.filters = dict(filters) if filters else None
        self._count: int | None = None

    def __len__(self) -> int:
        if self._count is None:
            self._count = self._backend.count_runs(self.entity, self.project, self.filters)
        return self._count

    def __iter__(self) -> Iterator[ApiRun]:
        offset = 0
        while True:
            page = self._backend.list_runs(
                self.entity,
                self.project,
                order=self.order,
                offset=offset,
                limit=self.per_page,
                filters=self.filters,
            )
            for record in page:
                yield ApiRun(self._backend, record)
            if len(page) < self.per_page:
                return
            offset += len(page)

    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            return self._slice(index)
        if index < 0:
            index += len(self)
        if index < 0:
            raise IndexError("run index out of range")
        page = self._backend.list_runs(
            self.entity, self.project, order=self.order, offset=index, limit=1, filters=self.filters
        )
        if not page:
            raise IndexError("run index out of range")
        return ApiRun(self._backend, page[0])

    def _slice(self, index: slice) -> list[ApiRun]:
        """Fetch only the runs a slice covers (``runs[:50]`` is one page, not the
        project); negative or open bounds and negative steps need the count first."""
        bounds = (index.start, index.stop)
        if (
            index.stop is None
            or (index.step or 1) < 0
            or any(b is not None and b < 0 for b in bounds)
        ):
            start, stop, step = index.indices(len(self))
        else:
            start, stop, step = index.start or 0, index.stop, index.step or 1
        wanted = range(start, stop, step)
        if not wanted:
            return []
        lo, hi = min(wanted), max(wanted) + 1
        got: list[ApiRun] = []
        while lo + len(got) < hi:
            limit = min(hi - lo - len(got), 1000)  # the server's page limit
            page = self._backend.list_runs(
                self.entity,
                self.project,
                order=self.order,
                offset=lo + len(got),
                limit=limit,
                filters=self.filters,
            )
            got.extend(ApiRun(self._backend, r) for r in page)
            if len(page) < limit:
                break
        return [got[i - lo] for i in wanted if i - lo < len(got)]

    def __repr__(self) -> str:
        return f"<Runs {self.entity}/{self.project}>"

    def histories(
        self,
        keys: list[str] | None = None,
        samples: int | None = None,
        format: str = "pandas",
        stream: str = "default",
    ) -> Any:
        """History of every run here in one table (a ``run_id`` column first), fetched a
        thousand runs per request; ``samples`` downsamples each key of each run."""
        from stemma.api.frames import stacked_frame

        if format not in ("pandas", "polars"):
            raise UsageError(f"format must be 'pandas' or 'polars', got {format!r}")
        if isinstance(keys, str):  # one key, as run.history() accepts
            keys = [keys]
        import pandas as pd

        runs: list[tuple[str, Any]] = []
        offset = 0
        while True:
            page = self._backend.list_runs(
                self.entity,
                self.project,
                order=self.order,
                offset=offset,
                limit=1000,
                filters=self.filters,
            )
            cols = self._backend.read_histories(
                self.entity,
                self.project,
                [r.run_id for r in page],
                keys,
                stream=stream,
                samples=samples,
            )
            runs.extend((r.run_id, cols.get(r.run_id, {})) for r in page)
            if len(page) < 1000:
                break
            offset += len(page)
        presence: dict[str, Any] | None = {} if format == "polars" else None
        table = (
            stacked_frame(runs, keys, presence)
            if runs
            else pd.DataFrame(columns=["run_id", "_step", *(keys or [])])
        )
        if format == "polars":
            try:
                import polars as pl
            except ImportError:
                raise UsageError("format='polars' needs polars: pip install polars") from None
            # Nulls where a key was not logged, NaN where NaN was logged.
            frame = pl.from_pandas(table, nan_to_null=False)
            masks = [
                pl.when(pl.Series(mask)).then(pl.col(k)).otherwise(None).alias(k)
                for k, mask in (presence or {}).items()
                if k in frame.columns and frame[k].dtype.is_numeric()
            ]
            return frame.with_columns(masks) if masks else frame
        return table

    def to_pandas(self) -> pd.DataFrame:
        """One row per run: its fields, then ``config.<key>`` (nested keys dotted) and
        ``summary.<key>`` columns. Fetched in pages of 1,000 runs."""
        import pandas as pd

        rows: list[dict[str, Any]] = []
        offset = 0
        while True:
            page = self._backend.list_runs(
                self.entity,
                self.project,
                order=self.order,
                offset=offset,
                limit=1000,
                filters=self.filters,
            )
            rows.extend(_run_row(r) for r in page)
            if len(page) < 1000:
                break
            offset += len(page)
        return pd.DataFrame(rows, columns=_columns(rows))


_RUN_FIELDS = (
    "id",
    "name",
    "state",
    "group",
    "job_type",
    "tags",
    "user",
    "created_at",
    "finished_at",
    "exit_code",
)


def _flatten(prefix: str, data: Mapping[str, Any], out: dict[str, Any]) -> None:
    for key, value in data.items():
        if isinstance(value, Mapping) and value:
            _flatten(f"{prefix}{key}.", value, out)
        else:
            out[f"{prefix}{key}"] = value


def _run_row(r: RunRecord) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": r.run_id,
        "name": r.name,
        "state": r.state,
        "group": r.group,
        "job_type": r.job_type,
        "tags": list(r.tags),
        "user": r.user,
        "created_at": r.created_at,
        "finished_at": r.finished_at,
        "exit_code": r.exit_code,
    }
    _flatten("config.", r.config, row)
    for key, value in r.summary.items():
        row[f"summary.{key}"] = value
    return row


def _columns(rows: list[dict[str, Any]]) -> list[str]:
    """Run fields first, then config and summary columns, each sorted."""
    seen: set[str] = set()
    for row in rows:
        seen.update(row)
    config = sorted(c for c in seen if c.startswith("config."))
    summary = sorted(c for c in seen if c.startswith("summary."))
    return [*_RUN_FIELDS, *config, *summary]


class Artifacts:
    """A lazy, paginated sequence of artifact versions: of one artifact, or of a project
    (of one type, matching a filter). ``len()`` asks the store for a count without
    fetching versions; iteration fetches ``per_page`` versions per request."""

    def __init__(
        self,
        backend: Backend,
        settings: Settings,
        entity: str,
        project: str,
        *,
        type_: str | None,
        name: str | None,
        filters: Mapping[str, Any] | None,
        order: str,
        per_page: int,
        include_deleted: bool,
    ) -> None:
        self._backend = backend
        self._settings = settings
        self.entity = entity
        self.project = project
        self.type = type_
        self.name = name
        self.filters = dict(filters) if filters else None
        self.order = order
        self.per_page = per_page
        self.include_deleted = include_deleted
        self._count: int | None = None

    def _page(self, offset: int, limit: int) -> list[Any]:
        from stemma.sdk.artifact import Artifact

        records = self._backend.query_artifact_versions(
            self.entity,
            self.project,
            type_=self.type,
            name=self.name,
            filters=self.filters,
            order=self.order,
            offset=offset,
            limit=limit,
            include_deleted=self.include_deleted,
        )
        return [Artifact._from_record(self._backend, self._settings, r) for r in records]

    def __len__(self) -> int:
        if self._count is None:
            self._count = self._backend.count_artifact_versions(
                self.entity,
                self.project,
                type_=self.type,
                name=self.name,
                filters=self.filters,
                include_deleted=self.include_deleted,
            )
        return self._count

    def __iter__(self) -> Iterator[Any]:
        offset = 0
        while True:
            page = self._page(offset, self.per_page)
            yield from page
            if len(page) < self.per_page:
                return
            offset += len(page)

    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            return list(self)[index]
        if index < 0:
            index += len(self)
        page = self._page(index, 1) if index >= 0 else []
        if not page:
            raise IndexError("artifact index out of range")
        return page[0]

    def __repr__(self) -> str:
        where = f"{self.entity}/{self.project}" + (f"/{self.name}" if self.name else "")
        return f"<Artifacts {where}{f' ({self.type})' if self.type else ''}>"


class Api:
    """Entry point of the read API: ``stemma.Api().runs("entity/project")``."""

    def __init__(
        self,
        overrides: Mapping[str, Any] | None = None,
        timeout: float | None = None,
        api_key: str | None = None,
    ) -> None:
        del timeout
        opts = dict(overrides or {})
        if api_key is not None:
            opts["api_key"] = api_key
        self.settings = Settings.from_env(**opts)
        self._backend_instance: Backend | None = None

    @property
    def _backend(self) -> Backend:
        if self._backend_instance is None:
            self._backend_instance = get_backend(self.settings)
        return self._backend_instance

    @property
    def default_entity(self) -> str:
        """The entity of paths given without one: STEMMA_ENTITY, else, with an API key for a
        server, the key owner's home (where `init` puts their runs), else the OS user."""
        if self.settings.entity:
            return self.settings.entity
        if self.settings.base_url and self.settings.api_key:
            return self._backend.default_entity()
        return capture.current_user()

    def _split(self, path: str | None, parts: int) -> list[str]:
        if path is None:
            path = self.settings.project or ""
        bits = [b for b in path.split("/") if b]
        if len(bits) == parts - 1:
            bits.insert(0, self.default_entity)
        if len(bits) != parts:
            shape = "entity/project" if parts == 2 else "entity/project/run_id"
            raise UsageError(f"expected a path like {shape!r}, got {path!r}", path=path)
        return bits

    def runs(
        self,
        path: str | None = None,
        filters: Mapping[str, Any] | None = None,
        order: str = "-created_at",
        per_page: int = 50,
    ) -> Runs:
        """The runs of ``entity/project`` (or ``project`` of the default entity).

        ``filters`` is a MongoDB-style document evaluated by the store, e.g.
        ``{"state": "finished", "config.lr": {"$gte": 0.01}}`` (operators and semantics:
        :mod:`stemma.wire.filters`); ``order`` is a run field or ``config.<key>`` /
        ``summary_metrics.<key>``, prefixed ``-`` for descending.
        """
        entity, project = self._split(path, 2)
        check_name(entity, "entity")
        check_name(project, "project")
        if filters is not None and not isinstance(filters, Mapping):
            raise UsageError(f"filters must be a dict, not {filters!r}"[:300])
        if filters:
            from stemma.wire.filters import parse

            parse(filters)  # a bad filter fails here, not at the first page
        if per_page <= 0:
            raise UsageError("per_page must be positive", per_page=per_page)
        return Runs(self._backend, entity, project, order, per_page, filters)

    def runs_df(
        self,
        path: str | None = None,
        filters: Mapping[str, Any] | None = None,
        order: str = "-created_at",
    ) -> pd.DataFrame:
        """``runs(path, filters, order).to_pandas()``: one row per run."""
        return self.runs(path, filters=filters, order=order).to_pandas()

    def export(
        self,
        path: str | None,
        dir: str | os.PathLike[str],
        filters: Mapping[str, Any] | None = None,
        keys: list[str] | None = None,
        samples: int | None = None,
        progress: bool = True,
        stream: str = "default",
        overwrite: bool = False,
    ) -> dict[str, Any]:
        """Write the runs of ``entity/project`` (matching ``filters``) and their histories
        to ``dir`` as Parquet (``runs.parquet``, ``history/``, ``manifest.json``), a page
        of runs at a time; returns ``{runs, rows, files, bytes, seconds, path}``.
        See :mod:`stemma.api.export`."""
        from stemma.api.export import export_project

        runs = self.runs(path, filters=filters)
        return export_project(
            self._backend,
            runs.entity,
            runs.project,
            dir,
            filters=runs.filters,
            keys=keys,
            samples=samples,
            stream=stream,
            overwrite=overwrite,
            progress=progress,
        )

    def run(self, path: str) -> ApiRun:
        """One run by ``entity/project/run_id`` (or ``project/run_id``)."""
        entity, project, run_id = self._split(path.replace("/runs/", "/"), 3)
        record = self._backend.get_run(RunRef(entity, project, run_id))
        if record is None:
            raise NotFound(
                f"run {entity}/{project}/{run_id} does not exist",
                path=f"{entity}/{project}/{run_id}",
            )
        return ApiRun(self._backend, record)

    # ------------------------------------------------------------------ artifacts
    def _artifact_path(self, path: str) -> tuple[str, str, str, str]:
        from stemma.sdk.artifact import parse_artifact_path

        entity = self.default_entity
        project = self.settings.project or ""
        entity, project, name, selector = parse_artifact_path(path, entity, project)
        if not project:
            raise UsageError(
                f"artifact path {path!r} names no project: use project/name:v "
                "or set STEMMA_PROJECT",
                path=path,
            )
        return entity, project, name, selector

    def artifact(self, name: str, type: str | None = None, at: dt.datetime | None = None) -> Any:
        """One version: ``[entity/]project/name[:vN|:alias]``. With ``at``, the version
        the alias pointed to at that time (from the alias history)."""
        from stemma.sdk.artifact import Artifact

        entity, project, coll, selector = self._artifact_path(name)
        if at is not None and at.tzinfo is None:
            at = at.replace(tzinfo=dt.UTC)
        record = self._backend.get_artifact(entity, project, coll, selector, at=at)
        if type is not None and record.type != type:
            raise UsageError(
                f"artifact {record.ref.path} has type {record.type!r}, not {type!r}",
                expected=type,
                got=record.type,
            )
        return Artifact._from_record(self._backend, self.settings, record)

    def artifact_exists(self, name: str) -> bool:
        try:
            self.artifact(name)
        except NotFound:
            return False
        return True

    def artifacts(
        self,
        type_name: str | None = None,
        name: str | None = None,
        per_page: int = 50,
        *,
        filters: Mapping[str, Any] | None = None,
        order: str | None = None,
        project: str | None = None,
        include_deleted: bool = False,
    ) -> Artifacts:
        """Artifact versions, lazily and a page at a time: those of one artifact
        ``name`` (``[entity/]project/name``, oldest first, as W&B's
        ``api.artifacts(type_name, name)``), or, with ``project="[entity/]project"`` (or
        neither, for the default project), those of every artifact of a project, newest
        first.

        ``type_name`` keeps one type. ``filters`` is a MongoDB-style document evaluated
        by the store, e.g. ``{"metadata.val_auc": {"$gt": 0.9}, "aliases": "prod"}``
        (fields and semantics: :mod:`stemma.wire.filters`); ``order`` is a field such as
        ``created_at``, ``version``, ``size`` or ``metadata.<key>``, ``-`` first for
        descending. Deleted versions are left out unless ``include_deleted``.
        """
        from stemma.wire.filters import ARTIFACT_VERSIONS, parse, parse_order

        if name is not None and project is not None:
            raise UsageError(
                "give an artifact name or a project, not both",
                name=name,
                project=project,
            )
        if name is not None:
            entity, proj, coll, _selector = self._artifact_path(name)
            one: str | None = coll
        else:
            entity, proj = self._split(project, 2)
            one = None
        check_name(entity, "entity")
        check_name(proj, "project")
        if order is None:
            order = "version" if one is not None else "-created_at"
        parse_order(order, ARTIFACT_VERSIONS)
        if filters is not None and not isinstance(filters, Mapping):
            raise UsageError(f"filters must be a dict, not {filters!r}"[:300])
        if filters:
            parse(filters, ARTIFACT_VERSIONS)  # a bad filter fails here, not at the first page
        if not isinstance(per_page, int) or per_page <= 0:
            raise UsageError("per_page must be a positive number", per_page=per_page)
        return Artifacts(
            self._backend,
            self.settings,
            entity,
            proj,
            type_=type_name,
            name=one,
            filters=filters,
            order=order,
            per_page=per_page,
            include_deleted=include_deleted,
        )

    def artifact_versions(self, type_name: str | None = None, name: str = "") -> list[Any]:
        """Every committed version of ``[entity/]project/name`` (of type ``type_name``
        when given), oldest first: :meth:`artifacts` as a list."""
        return list(self.artifacts(type_name, name, per_page=1000))

    def artifact_collections(
        self, project: str | None = None, type_name: str | None = None
    ) -> list[dict[str, Any]]:
        """The artifacts of a project: name, type, version count, latest version, size."""
        entity, proj = self._split(project, 2)
        return self._backend.list_artifact_collections(entity, proj, type_name)

    def artifact_types(self, project: str | None = None) -> list[dict[str, Any]]:
        """The artifact types of ``[entity/]project``: ``{type, collections, versions}``
        each (committed versions), by type."""
        entity, proj = self._split(project, 2)
        return self._backend.artifact_types(entity, proj)

    def alias_history(self, name: str, alias: str | None = None) -> list[dict[str, Any]]:
        """Who moved which alias of ``[entity/]project/name`` when, from and to which
        version (oldest first)."""
        entity, project, coll, selector = self._artifact_path(name)
        if alias is None and selector != "latest":
            alias = selector
        return self._backend.alias_history(entity, project, coll, alias)

    # ------------------------------------------------------------------ reports
    def reports(self, path: str | None = None) -> list[Any]:
        """The reports of ``entity/project`` (or ``project`` of the default entity), most
        recently saved first, as :class:`stemma.Report` objects (blocks load on first
        use)."""
        from stemma.report.report import Report

        entity, project = self._split(path, 2)
        check_name(entity, "entity")
        check_name(project, "project")
        return [
            Report._from_record(self._backend, self.settings, r)
            for r in self._backend.list_reports(entity, project)
        ]

    def report(self, report_id: str, revision: int | None = None) -> Any:
        """One report by id (as in its URL), at ``revision`` (default: the newest)."""
        from stemma.report.report import Report

        if "/reports/" in report_id:  # a report URL: its last part is the id
            report_id = report_id.rstrip("/").rsplit("/", 1)[-1]
        if revision is not None and (isinstance(revision, bool) or not isinstance(revision, int)):
            raise UsageError(f"revision must be a whole number, got {revision!r}"[:200])
        record = self._backend.get_report(report_id, revision)
        return Report._from_record(self._backend, self.settings, record)

    def projects(self, entity: str | None = None) -> list[dict[str, Any]]:
        """Projects (of ``entity``) with their run counts."""
        return [
            {"entity": e, "name": p, "runs": n} for e, p, n in self._backend.list_projects(entity)
        ]

"""Bulk export of a project's runs and histories to Parquet, streaming.

``Api().export(path, dir)`` and ``stemma export PROJECT -o DIR`` write::

    DIR/runs.parquet              one row per run: its fields, then config.<key>,
                                  summary.<key> and metadata.<key> (nested keys dotted)
    DIR/history/part-00000.parquet  run_id, _step, one column per history key
    DIR/manifest.json             what was exported, when, and how many rows per file

Runs are listed a page (:data:`PAGE_RUNS`) at a time; each page is one row group of
``runs.parquet`` and is split into batches of about :data:`POINTS_PER_BATCH` history
values, each read with one ``read_histories`` request and written as one row group of
the history, while the next batch is being read. Memory holds two batches, never the
project. Only the :class:`Backend` interface is used: the export works the same against
the embedded store and a server.

Column types are settled as pages arrive. Numeric history keys are float64 (NaN and
infinities kept; a key not logged at a step is null); a column whose values are all
strings, all booleans or (in ``runs.parquet``) all integers keeps that type; lists,
dicts and columns that mix types are JSON text, with a warning naming the mixed
columns. When a later page changes a column's type (or brings a new column), the
writer starts a new part; at the end, parts written with the older schema are
rewritten, a row group at a time, so that every file has the final schema.

Everything is written into a temporary directory beside ``DIR`` and renamed into
place at the end: a failed export leaves nothing behind.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import os
import secrets
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stemma.backend.base import MAX_HISTORY_RUNS, Backend
from stemma.errors import NotFound, UsageError
from stemma.wire.chunks import Column
from stemma.wire.history import PACKED
from stemma.wire.records import RunRecord

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

PAGE_RUNS = 200  # runs per list_runs request, one row group of runs.parquet
# History values per read_histories request and row group (~16 MB as float64): a page of
# runs is split into batches of about this many, estimated from each run's last step.
POINTS_PER_BATCH = 2_000_000
FORMAT = "stemma-export"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
STREAMS = ("default", "system")

_INT64 = (-(2**63), 2**63 - 1)
_EXACT_FLOAT_INT = 2**53  # larger integers lose digits as float64: kept as JSON instead


class ExportWarning(UserWarning):
    """Something about the export a user should know (a column coerced to JSON)."""


# ---------------------------------------------------------------------------- kinds
# A column's kind decides its Parquet type. Kinds only widen: int + float -> float;
# anything else that disagrees -> json (and a warning); "null" (no value yet) fits all.


def _arrow_type(kind: str) -> pa.DataType:
    import pyarrow as pa

    return {
        "null": pa.null(),
        "bool": pa.bool_(),
        "int": pa.int64(),
        "float": pa.float64(),
        "str": pa.string(),
        "json": pa.string(),
    }[kind]


def _value_kind(value: Any, ints_as_float: bool = False) -> str:
    t = type(value)
    if value is None:
        return "null"
    if t is bool:
        return "bool"
    if t is int:
        if ints_as_float:
            return "float" if abs(value) <= _EXACT_FLOAT_INT else "json"
        return "int" if _INT64[0] <= value <= _INT64[1] else "json"
    if t is float:
        return "float"
    if t is str:
        return "str"
    return "json"


def _merge(a: str, b: str) -> tuple[str, bool]:
    """(the kind holding both, whether that mixes types and so deserves a warning)."""
    if a == b or b == "null":
        return a, False
    if a == "null":
        return b, False
    if {a, b} == {"int", "float"}:
        return "float", False
    return "json", True


def _values_kind(values: list[Any], ints_as_float: bool = False) -> tuple[str, bool]:
    kind, mixed = "null", False
    seen: set[type] = set()
    for v in values:
        t = type(v)
        if t in seen and t is not int:  # ints differ in range; other types decide at once
            continue
        seen.add(t)
        kind, m = _merge(kind, _value_kind(v, ints_as_float))
        mixed = mixed or m
    return kind, mixed


def _json(value: Any) -> str:
    """JSON text of a value (NaN and infinities as ``NaN`` / ``Infinity``)."""
    return json.dumps(value, ensure_ascii=False, default=str)


def _py_array(values: list[Any], kind: str) -> pa.Array:
    """A list of Python values (None where missing) as an Arrow array of ``kind``."""
    import pyarrow as pa

    if kind == "null":
        return pa.nulls(len(values))
    if kind == "json":
        return pa.array([None if v is None else _json(v) for v in values], pa.string())
    return pa.array(values, _arrow_type(kind))


# ---------------------------------------------------------------------------- writer
def _parquet_writer(path: Path, schema: pa.Schema) -> Any:
    """zstd; dictionaries for strings (run ids, states...), byte-stream-split floats
    (smaller and faster to write than dictionaries of distinct floats)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    strings = [f.name for f in schema if pa.types.is_string(f.type)]
    floats = [f.name for f in schema if pa.types.is_floating(f.type)]
    return pq.ParquetWriter(
        path,
        schema,
        compression="zstd",
        use_dictionary=strings or False,
        use_byte_stream_split=floats or False,
    )


class _Part:
    __slots__ = ("kinds", "path", "rows")

    def __init__(self, path: Path, kinds: dict[str, str]) -> None:
        self.path = path
        self.kinds = kinds
        self.rows = 0


class _TableWriter:
    """Pages -> Parquet parts, one row group per page, the schema widened as pages come.

    ``fixed`` columns have a known type and come first; the others ("dynamic") have a
    kind settled from the data. :meth:`finish` rewrites parts written with an older
    schema so that every part (or, with ``single``, the one file) has the final one.
    """

    def __init__(
        self,
        folder: Path,
        stem: str,
        fixed: list[tuple[str, pa.DataType]],
        order: Callable[[str], Any] = lambda name: name,
    ) -> None:
        self.folder = folder
        self.stem = stem
        self.fixed = fixed
        self.order = order
        self.kinds: dict[str, str] = {}
        self.mixed: set[str] = set()
        self.parts: list[_Part] = []
        self._writer: Any = None

    @property
    def rows(self) -> int:
        return sum(p.rows for p in self.parts)

    def _schema(self, kinds: Mapping[str, str]) -> pa.Schema:
        import pyarrow as pa

        names = sorted(kinds, key=self.order)
        return pa.schema([*self.fixed, *((n, _arrow_type(kinds[n])) for n in names)])

    def _open(self, kinds: dict[str, str]) -> None:
        self.close()
        path = self.folder / f"{self.stem}-{len(self.parts):05d}.parquet"
        self._writer = _parquet_writer(path, self._schema(kinds))
        self.parts.append(_Part(path, dict(kinds)))

    def write(
        self,
        rows: int,
        fixed: list[pa.Array],
        columns: Mapping[str, tuple[str, Callable[[str], pa.Array]]],
    ) -> None:
        """One page: ``fixed`` arrays, and per dynamic column (its kind in this page, a
        function building its array as a given, possibly wider, kind)."""
        import pyarrow as pa

        if rows == 0 and self._writer is not None:
            return
        kinds = dict(self.kinds)
        for name, (kind, _build) in columns.items():
            kinds[name], mixed = _merge(kinds.get(name, "null"), kind)
            if mixed:
                self.mixed.add(name)
        if self._writer is None or kinds != self.kinds:
            self.kinds = kinds
            self._open(kinds)
        schema = self._writer.schema
        arrays = list(fixed)
        for name in schema.names[len(self.fixed) :]:
            if name in columns:
                arrays.append(columns[name][1](kinds[name]))
            else:
                arrays.append(pa.nulls(rows, _arrow_type(kinds[name])))
        if rows:
            table = pa.Table.from_arrays(arrays, schema=schema)
            self._writer.write_table(table, row_group_size=rows)
            self.parts[-1].rows += rows

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def _conform(self, table: pa.Table, kinds: Mapping[str, str]) -> pa.Table:
        """A row group written with ``kinds``, in the final schema."""
        import pyarrow as pa

        schema = self._schema(self.kinds)
        arrays: list[Any] = table.columns[: len(self.fixed)]
        for name in schema.names[len(self.fixed) :]:
            want, had = self.kinds[name], kinds.get(name, "null")
            if had == "null":
                arrays.append(pa.nulls(table.num_rows, _arrow_type(want)))
            elif had == want:
                arrays.append(table.column(name))
            elif want == "float":  # int -> float, as pa.array() converts them in a page
                arrays.append(table.column(name).cast(pa.float64(), safe=False))
            else:  # -> json
                arrays.append(_py_array(table.column(name).to_pylist(), "json"))
        return pa.Table.from_arrays(arrays, schema=schema)

    def _copy(self, part: _Part, writer: Any) -> None:
        import pyarrow.parquet as pq

        source = pq.ParquetFile(part.path)
        try:
            for i in range(source.num_row_groups):
                group = source.read_row_group(i)
                writer.write_table(self._conform(group, part.kinds), row_group_size=group.num_rows)
        finally:
            source.close()

    def finish(self, single: Path | None = None) -> list[tuple[Path, int]]:
        """Close, bring every part to the final schema; (path, rows) of each file.

        With ``single``, the parts become that one file."""
        self.close()
        if not self.parts:
            self._open({})
            self.close()
        final = self._schema(self.kinds)
        if single is not None and len(self.parts) > 1:
            with _parquet_writer(single, final) as writer:
                for part in self.parts:
                    self._copy(part, writer)
                    part.path.unlink()
            return [(single, self.rows)]
        out: list[tuple[Path, int]] = []
        for part in self.parts:
            if part.kinds != self.kinds:
                fresh = part.path.with_suffix(".rewrite")
                with _parquet_writer(fresh, final) as writer:
                    self._copy(part, writer)
                fresh.replace(part.path)
            if single is not None:
                part.path.replace(single)
                part.path = single
            out.append((part.path, part.rows))
        return out


# ---------------------------------------------------------------------------- runs
def _run_fields() -> list[tuple[str, pa.DataType]]:
    import pyarrow as pa

    ts = pa.timestamp("us", tz="UTC")
    return [
        ("id", pa.string()),
        ("name", pa.string()),
        ("display_name", pa.string()),
        ("state", pa.string()),
        ("group", pa.string()),
        ("job_type", pa.string()),
        ("tags", pa.list_(pa.string())),
        ("notes", pa.string()),
        ("user", pa.string()),
        ("host", pa.string()),
        ("created_at", ts),
        ("heartbeat_at", ts),
        ("finished_at", ts),
        ("runtime", pa.float64()),
        ("last_step", pa.int64()),
        ("exit_code", pa.int64()),
    ]


_PREFIXES = ("config.", "summary.", "metadata.")


def _run_column_order(name: str) -> tuple[int, str]:
    """config.* first, then summary.*, then metadata.*; each sorted."""
    for i, prefix in enumerate(_PREFIXES):
        if name.startswith(prefix):
            return i, name
    return len(_PREFIXES), name


def _flatten(prefix: str, data: Mapping[str, Any], out: dict[str, Any]) -> None:
    for key, value in data.items():
        if isinstance(value, Mapping) and value:
            _flatten(f"{prefix}{key}.", value, out)
        else:
            out[f"{prefix}{key}"] = value


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICROSECOND = dt.timedelta(microseconds=1)


def _micros(t: dt.datetime | None) -> int | None:
    """Microseconds since the epoch (pyarrow would import pandas to convert an aware
    datetime itself; a naive one is UTC, as the stores keep it)."""
    if t is None:
        return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    return (t - _EPOCH) // _MICROSECOND


def _write_runs(writer: _TableWriter, page: list[RunRecord]) -> None:
    import pyarrow as pa

    fields = dict(writer.fixed)
    values: dict[str, list[Any]] = {
        "id": [r.run_id for r in page],
        "name": [r.name for r in page],
        "display_name": [r.name for r in page],
        "state": [r.state for r in page],
        "group": [r.group for r in page],
        "job_type": [r.job_type for r in page],
        "tags": [list(r.tags) for r in page],
        "notes": [r.notes for r in page],
        "user": [r.user for r in page],
        "host": [r.host for r in page],
        "created_at": [_micros(r.created_at) for r in page],
        "heartbeat_at": [_micros(r.heartbeat_at) for r in page],
        "finished_at": [_micros(r.finished_at) for r in page],
        "runtime": [float(r.runtime) for r in page],
        "last_step": [r.last_step for r in page],
        "exit_code": [r.exit_code for r in page],
    }
    fixed = [pa.array(values[name], fields[name]) for name, _ in writer.fixed]
    rows: list[dict[str, Any]] = []
    for r in page:
        row: dict[str, Any] = {}
        _flatten("config.", r.config, row)
        _flatten("summary.", r.summary, row)
        _flatten("metadata.", r.metadata, row)
        rows.append(row)
    names = dict.fromkeys(n for row in rows for n in row)
    columns: dict[str, tuple[str, Callable[[str], pa.Array]]] = {}
    for name in names:
        col = [row.get(name) for row in rows]
        kind, mixed = _values_kind(col)
        if mixed:
            writer.mixed.add(name)
        columns[name] = (kind, functools.partial(_py_array, col))
    writer.write(len(page), fixed, columns)


# ---------------------------------------------------------------------------- history
# (a run's columns, per key its positions in the run's steps or None when it has them
# all, how many steps the run has)
_Aligned = tuple[Mapping[str, Column], dict[str, "np.ndarray | None"], int]


def _align(cols: Mapping[str, Column]) -> tuple[np.ndarray, dict[str, np.ndarray | None]]:
    """(union of the run's steps, per key the positions of its steps in it, or None
    when the key has every step)."""
    import numpy as np

    first = next(iter(cols.values())).steps
    if all(len(c.steps) == len(first) and np.array_equal(c.steps, first) for c in cols.values()):
        return np.asarray(first, dtype=np.int64), dict.fromkeys(cols)
    steps = np.unique(np.concatenate([np.asarray(c.steps, dtype=np.int64) for c in cols.values()]))
    return steps, {
        k: (None if len(c.steps) == len(steps) else np.searchsorted(steps, c.steps))
        for k, c in cols.items()
    }


def _column_kind(col: Column) -> tuple[str, bool]:
    if col.kind != PACKED:
        return "float", False
    return _values_kind(list(col.values), ints_as_float=True)


def _positions(where: np.ndarray | None, n: int) -> np.ndarray:
    import numpy as np

    return np.arange(n) if where is None else where


def _history_array(key: str, aligned: list[_Aligned], rows: int, kind: str) -> pa.Array:
    """One key's column over a page: each run's values scattered over its steps (the
    union of its keys' steps), null where the run did not log the key."""
    import numpy as np
    import pyarrow as pa

    if kind != "float":  # strings, booleans, JSON: rare, and Python objects anyway
        out: list[Any] = [None] * rows
        offset = 0
        for cols, where, n in aligned:
            col = cols.get(key)
            if col is not None:
                items = col.values.tolist() if hasattr(col.values, "tolist") else col.values
                for i, v in zip(_positions(where.get(key), n).tolist(), items, strict=True):
                    out[offset + i] = v
            offset += n
        return _py_array(out, kind)
    data = np.zeros(rows, dtype=np.float64)
    valid = np.ones(rows, dtype=bool)
    complete = True  # no mask needed: the key has every step of every run
    offset = 0
    for cols, where, n in aligned:
        col, pos = cols.get(key), where.get(key)
        if col is None or pos is not None or col.kind == PACKED:
            complete = False
            valid[offset : offset + n] = False
        if col is None:
            pass
        elif col.kind == PACKED:  # numbers and None, as a list
            at = offset + _positions(pos, n)
            present = [i for i, v in enumerate(col.values) if v is not None]
            data[at[present]] = [float(col.values[i]) for i in present]
            valid[at[present]] = True
        elif pos is None:
            data[offset : offset + n] = col.values
        else:
            data[offset + pos] = col.values
            valid[offset + pos] = True
        offset += n
    return pa.array(data, pa.float64(), mask=None if complete else ~valid)


def _write_history(
    writer: _TableWriter,
    page: list[RunRecord],
    by_run: Mapping[str, Mapping[str, Column]],
    keys: list[str] | None,
) -> int:
    """One page of runs' histories as one row group; returns its row count. Keys asked
    for are columns even when no run logged them (all null)."""
    import numpy as np
    import pyarrow as pa

    run_ids: list[str] = []
    lengths: list[int] = []
    step_parts: list[np.ndarray] = []
    aligned: list[_Aligned] = []
    kinds: dict[str, str] = dict.fromkeys(keys or (), "null")
    for record in page:
        cols = {k: c for k, c in by_run.get(record.run_id, {}).items() if len(c)}
        if not cols:
            continue
        steps, where = _align(cols)
        run_ids.append(record.run_id)
        lengths.append(len(steps))
        step_parts.append(steps)
        aligned.append((cols, where, len(steps)))
        for key, col in cols.items():
            kind, mixed = _column_kind(col)
            kinds[key], mixed2 = _merge(kinds.get(key, "null"), kind)
            if mixed or mixed2:
                writer.mixed.add(key)
    rows = sum(lengths)
    ids = pa.array(run_ids, pa.string()).take(
        pa.array(np.repeat(np.arange(len(run_ids), dtype=np.int32), lengths))
    )
    steps_all = np.concatenate(step_parts) if step_parts else np.empty(0, dtype=np.int64)
    fixed = [ids, pa.array(steps_all, pa.int64())]

    def build(key: str) -> Callable[[str], pa.Array]:
        return lambda kind: _history_array(key, aligned, rows, kind)

    writer.write(rows, fixed, {key: (kind, build(key)) for key, kind in kinds.items()})
    return rows


# ---------------------------------------------------------------------------- driver
def _is_export(path: Path) -> bool:
    try:
        manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and manifest.get("format") == FORMAT


def _check_target(out: Path, overwrite: bool) -> None:
    if not out.name:
        raise UsageError(f"cannot export into {str(out)!r}: name a directory", path=str(out))
    if not out.exists():
        return
    if not out.is_dir():
        raise UsageError(f"{out} exists and is not a directory", path=str(out))
    if not any(out.iterdir()):
        return
    if not overwrite:
        raise UsageError(
            f"{out} is not empty: pass --overwrite (overwrite=True) to replace it",
            path=str(out),
        )
    if not _is_export(out):
        raise UsageError(
            f"{out} is not empty and is not a Stemma export (it has no {MANIFEST}): "
            "refusing to replace it; choose another directory",
            path=str(out),
        )


def _swap_in(tmp: Path, out: Path, overwrite: bool) -> None:
    """Move the finished export to ``out`` (replacing an old export when allowed)."""
    if out.exists():
        if any(out.iterdir()):
            _check_target(out, overwrite)  # it may have changed while we worked
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
            out.replace(old / "export")
            try:
                tmp.replace(out)
            except BaseException:
                (old / "export").replace(out)  # put the earlier export back
                old.rmdir()
                raise
            shutil.rmtree(old, ignore_errors=True)
            return
        out.rmdir()
    tmp.replace(out)


def _progress(enabled: bool, total: int) -> tuple[Any, Any]:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from stemma.sdk.progress import is_tty

    prog = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("runs, {task.fields[rows]:,} rows"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        disable=not (enabled and is_tty()),
        transient=True,
    )
    task = prog.add_task("exporting", total=total, rows=0)
    return prog, task


def _pages(
    backend: Backend,
    entity: str,
    project: str,
    filters: Mapping[str, Any] | None,
    page_size: int,
) -> Iterator[list[RunRecord]]:
    """The runs, oldest first (runs created meanwhile come last), each once."""
    seen: set[str] = set()
    offset = 0
    while True:
        page = backend.list_runs(
            entity, project, order="+created_at", offset=offset, limit=page_size, filters=filters
        )
        fresh = [r for r in page if r.run_id not in seen]
        seen.update(r.run_id for r in fresh)
        if fresh:
            yield fresh
        if len(page) < page_size:
            return
        offset += len(page)


def _estimate_points(record: RunRecord, keys: list[str] | None, samples: int | None) -> int:
    """About how many values a run's history holds (its summary names its keys)."""
    steps = record.last_step + 1
    if samples is not None:
        steps = min(steps, samples)
    n_keys = len(keys) if keys is not None else len(record.summary)
    return max(1, steps) * max(1, n_keys)


def _batches(
    pages: Iterator[list[RunRecord]], keys: list[str] | None, samples: int | None
) -> Iterator[tuple[list[RunRecord] | None, list[RunRecord]]]:
    """(the page, when this is its first batch; a batch of its runs small enough for one
    history request and row group)."""
    for page in pages:
        first: list[RunRecord] | None = page
        batch: list[RunRecord] = []
        points = 0
        for record in page:
            estimate = _estimate_points(record, keys, samples)
            if batch and (points + estimate > POINTS_PER_BATCH or len(batch) >= MAX_HISTORY_RUNS):
                yield first, batch
                first, batch, points = None, [], 0
            batch.append(record)
            points += estimate
        if batch:
            yield first, batch


def _file_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def export_project(
    backend: Backend,
    entity: str,
    project: str,
    directory: str | os.PathLike[str],
    *,
    filters: Mapping[str, Any] | None = None,
    keys: list[str] | None = None,
    samples: int | None = None,
    stream: str = "default",
    overwrite: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Write the runs of ``entity/project`` (matching ``filters``) and their histories
    to ``directory`` as Parquet; returns ``{runs, rows, files, bytes, seconds, path}``.

    ``keys`` limits the history to those keys, ``samples`` downsamples each key of each
    run (minima and maxima kept), ``stream="system"`` exports the ``system/*`` metrics.
    """
    import pyarrow as pa

    from stemma import __version__

    started = time.perf_counter()
    if isinstance(keys, str):
        keys = [keys]
    if keys is not None:
        if not all(isinstance(k, str) for k in keys):
            raise UsageError(f"keys must be strings, got {keys!r}"[:300])
        keys = list(dict.fromkeys(k for k in keys if k != "_step"))
    if samples is not None and (isinstance(samples, bool) or not isinstance(samples, int)):
        raise UsageError(f"samples must be an integer, got {samples!r}")
    if samples is not None and samples < 1:
        raise UsageError("samples must be at least 1", samples=samples)
    if stream not in STREAMS:
        raise UsageError(f"stream must be one of {', '.join(STREAMS)}, got {stream!r}")
    out = Path(directory).absolute()
    _check_target(out, overwrite)
    total = backend.count_runs(entity, project, filters)
    if total == 0 and (entity, project) not in {(e, p) for e, p, _ in backend.list_projects()}:
        raise NotFound(f"no project {entity}/{project}", path=f"{entity}/{project}")

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.{secrets.token_hex(4)}.partial"
    tmp.mkdir()  # beside ``out`` (same filesystem, so the final rename is atomic)
    try:
        (tmp / "history").mkdir()
        runs_w = _TableWriter(tmp, "runs", _run_fields(), order=_run_column_order)
        wanted = {k: i for i, k in enumerate(keys or ())}  # asked-for keys in that order
        hist_w = _TableWriter(
            tmp / "history",
            "part",
            [("run_id", pa.string()), ("_step", pa.int64())],
            order=lambda name: (wanted.get(name, len(wanted)), name),
        )
        exported = rows = 0

        def read(batch: list[RunRecord]) -> dict[str, dict[str, Column]]:
            ids = [r.run_id for r in batch]
            return backend.read_histories(
                entity, project, ids, keys, stream=stream, samples=samples
            )

        def write(page: list[RunRecord] | None, batch: list[RunRecord], fetched: Any) -> None:
            nonlocal exported, rows
            if page is not None:
                _write_runs(runs_w, page)
            rows += _write_history(hist_w, batch, fetched.result(), keys)
            exported += len(batch)
            prog.update(task, advance=len(batch), rows=rows, total=max(total, exported))

        prog, task = _progress(progress, total)
        # The next batch is read while this one is encoded and written (two in memory).
        with prog, ThreadPoolExecutor(1, thread_name_prefix="stemma-export") as reader:
            pending: tuple[list[RunRecord] | None, list[RunRecord], Any] | None = None
            for page, batch in _batches(
                _pages(backend, entity, project, filters, max(1, PAGE_RUNS)), keys, samples
            ):
                fetched = reader.submit(read, batch)
                if pending is not None:
                    write(*pending)
                pending = (page, batch, fetched)
            if pending is not None:
                write(*pending)
        files = runs_w.finish(single=tmp / "runs.parquet") + hist_w.finish()
        mixed = sorted(runs_w.mixed | hist_w.mixed)
        manifest: dict[str, Any] = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "project": f"{entity}/{project}",
            "entity": entity,
            "exported_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "stemma_version": __version__,
            "filters": dict(filters) if filters else None,
            "stream": stream,
            "samples": samples,
            "keys": keys,
            "runs": exported,
            "rows": rows,
            "files": {p.relative_to(tmp).as_posix(): {"rows": n} for p, n in files},
            "run_columns": {k: runs_w.kinds[k] for k in sorted(runs_w.kinds)},
            "history_columns": {k: hist_w.kinds[k] for k in sorted(hist_w.kinds)},
            "json_columns": mixed,
        }
        for p, _n in files:
            manifest["files"][p.relative_to(tmp).as_posix()]["bytes"] = p.stat().st_size
        (tmp / MANIFEST).write_text(
            json.dumps(manifest, indent=2, default=str) + "\n", encoding="utf-8"
        )
        size = _file_bytes(tmp)
        _swap_in(tmp, out, overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if mixed:
        shown = ", ".join(mixed[:10]) + (f" and {len(mixed) - 10} more" if len(mixed) > 10 else "")
        warnings.warn(
            f"stemma export: {len(mixed)} column(s) mix value types across runs or steps and "
            f"were written as JSON text: {shown}",
            ExportWarning,
            stacklevel=3,
        )
    return {
        "runs": exported,
        "rows": rows,
        "files": len(files) + 1,
        "bytes": size,
        "seconds": round(time.perf_counter() - started, 3),
        "path": str(out),
    }


__all__ = ["FORMAT", "PAGE_RUNS", "POINTS_PER_BATCH", "ExportWarning", "export_project"]

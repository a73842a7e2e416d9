"""History as per-key chunks: ingest a columnar batch, read keys back, downsample.

One key of one run reads without touching any other key (each chunk row holds one
key), and a batch of N rows x K keys costs at most K row writes, so ingest is bounded
by encoding speed, not by per-point INSERTs.
"""

from __future__ import annotations

import itertools
import logging
from array import array
from typing import Any

from sqlalchemy import Connection, and_, insert, select, update

from stemma.storage.models import history_chunks
from stemma.wire import chunks
from stemma.wire.chunks import Column
from stemma.wire.history import PACKED, _unraw

log = logging.getLogger(__name__)

SYSTEM_PREFIX = "system/"


def _batch_columns(batch: dict[str, Any], stream: str) -> dict[str, Column]:
    steps = _unraw("q", batch["steps"])
    out: dict[str, Column] = {}
    for key, (kind, pos, payload) in batch["cols"].items():
        if stream == "system" and not key.startswith(SYSTEM_PREFIX):
            key = SYSTEM_PREFIX + key  # the stream's own _timestamp / _runtime
        key_steps = steps if pos is None else array("q", [steps[i] for i in _unraw("q", pos)])
        out[key] = Column(kind, key_steps, chunks.decode_values_array(kind, payload))
    return out


def _chunk_row(run_pk: int, key: str, col: Column) -> dict[str, Any]:
    vmin, vmax = chunks.value_range(col.kind, col.values)
    return {
        "run_pk": run_pk,
        "key": key,
        "first_step": col.steps[0],
        "last_step": col.steps[-1],
        "n": len(col),
        "kind": col.kind,
        "vmin": vmin,
        "vmax": vmax,
        "is_open": len(col) < chunks.CHUNK_POINTS,
        "steps": chunks.encode_steps(col.steps),
        "vals": chunks.encode_values(col.kind, col.values),
    }


def ingest_batch(
    conn: Connection, run_pk: int, batch: dict[str, Any], stream: str = "default"
) -> dict[str, Column]:
    """Append a columnar batch to a run's history; returns the batch's columns.

    Each key's points are appended to its open tail chunk (rewritten in place) until it
    holds CHUNK_POINTS, then further chunks are inserted. Steps must increase per key;
    points at or below a key's stored last step are dropped with a warning (the SDK
    never sends them; a misbehaving client must not corrupt the order). Uses only the
    standard library's ``array``: no numpy on the write path.
    """
    cols = _batch_columns(batch, stream)
    if not cols:
        return cols
    tails = {
        row.key: row
        for row in conn.execute(
            select(
                history_chunks.c.id,
                history_chunks.c.key,
                history_chunks.c.kind,
                history_chunks.c.last_step,
                history_chunks.c.steps,
                history_chunks.c.vals,
            ).where(and_(history_chunks.c.run_pk == run_pk, history_chunks.c.is_open))
        )
    }
    inserts: list[dict[str, Any]] = []
    for key, col in cols.items():
        tail = tails.get(key)
        if tail is not None and len(col) and col.steps[0] <= tail.last_step:
            keep = [i for i, s in enumerate(col.steps) if s > tail.last_step]
            log.warning(
                "history key %r: dropped %d points at or below step %d",
                key,
                len(col) - len(keep),
                tail.last_step,
            )
            col = Column(
                col.kind,
                array("q", [col.steps[i] for i in keep]),
                type(col.values)(col.kind, [col.values[i] for i in keep])
                if isinstance(col.values, array)
                else [col.values[i] for i in keep],
            )
        if not len(col):
            continue
        if tail is not None:
            kind, values = chunks.concat_values(
                tail.kind,
                chunks.decode_values_array(tail.kind, tail.vals),
                col.kind,
                col.values,
            )
            col = Column(kind, chunks.decode_steps_array(tail.steps) + col.steps, values)
        pieces = [
            col.slice(lo, lo + chunks.CHUNK_POINTS)
            for lo in range(0, len(col), chunks.CHUNK_POINTS)
        ]
        if tail is not None:
            first = _chunk_row(run_pk, key, pieces.pop(0))
            conn.execute(
                update(history_chunks).where(history_chunks.c.id == tail.id).values(**first)
            )
        inserts.extend(_chunk_row(run_pk, key, p) for p in pieces)
    if inserts:
        conn.execute(insert(history_chunks), inserts)
    return cols


def list_keys(conn: Connection, run_pk: int) -> list[str]:
    """Every history key of a run, sorted."""
    q = select(history_chunks.c.key).where(history_chunks.c.run_pk == run_pk).distinct()
    return sorted(conn.execute(q).scalars())


def _chunk_query(
    keys: list[str] | None, stream: str, min_step: int | None, max_step: int | None
) -> Any:
    c = history_chunks.c
    q = select(c.run_pk, c.key, c.kind, c.steps, c.vals)
    if keys is not None:
        q = q.where(c.key.in_(keys))
    elif stream == "system":
        q = q.where(c.key.startswith(SYSTEM_PREFIX))
    else:
        q = q.where(~c.key.startswith(SYSTEM_PREFIX))
    if min_step is not None:
        q = q.where(c.last_step >= min_step)
    if max_step is not None:
        q = q.where(c.first_step <= max_step)
    return q


def _assemble(
    rows: Any, min_step: int | None, max_step: int | None
) -> dict[int, dict[str, Column]]:
    """Chunk rows (ordered by run, key, first step) -> {run_pk: {key: Column}}."""
    import numpy as np

    parts: dict[int, dict[str, list[tuple[str, Any, Any]]]] = {}
    for run_pk, key, kind, steps_blob, vals_blob in rows:
        parts.setdefault(run_pk, {}).setdefault(key, []).append(
            (kind, chunks.decode_steps(steps_blob), chunks.decode_values(kind, vals_blob))
        )
    out: dict[int, dict[str, Column]] = {}
    for run_pk, per_key in parts.items():
        cols: dict[str, Column] = {}
        for key, pieces in per_key.items():
            kind, steps, values = pieces[0]
            if len(pieces) > 1:
                steps = np.concatenate([p[1] for p in pieces])
                for k2, _s, v2 in pieces[1:]:
                    kind, values = chunks.concat_values(kind, values, k2, v2)
            col = Column(kind, steps, values)
            if min_step is not None or max_step is not None:
                lo = 0 if min_step is None else int(np.searchsorted(steps, min_step, "left"))
                hi = (
                    len(steps)
                    if max_step is None
                    else int(np.searchsorted(steps, max_step, "right"))
                )
                col = col.slice(lo, hi)
            cols[key] = col
        out[run_pk] = cols
    return out


def read_columns(
    conn: Connection,
    run_pk: int,
    keys: list[str] | None = None,
    *,
    stream: str = "default",
    min_step: int | None = None,
    max_step: int | None = None,
) -> dict[str, Column]:
    """Read whole keys (or a step window of them) of one run.

    Without ``keys``: every key of the stream (``default`` excludes ``system/*``).
    """
    c = history_chunks.c
    q = _chunk_query(keys, stream, min_step, max_step).where(c.run_pk == run_pk)
    rows = conn.execute(q.order_by(c.key, c.first_step))
    return _assemble(rows, min_step, max_step).get(run_pk, {})


def read_columns_many(
    conn: Connection,
    run_pks: list[int],
    keys: list[str] | None = None,
    *,
    stream: str = "default",
) -> dict[int, dict[str, Column]]:
    """The same keys of many runs in one query per 500 runs (charts, reports, exports)."""
    c = history_chunks.c
    out: dict[int, dict[str, Column]] = {}
    for i in range(0, len(run_pks), 500):
        q = _chunk_query(keys, stream, None, None).where(c.run_pk.in_(run_pks[i : i + 500]))
        out.update(_assemble(conn.execute(q.order_by(c.run_pk, c.key, c.first_step)), None, None))
    return out


def downsample(col: Column, samples: int) -> Column:
    """At most ``samples`` points that keep the shape: per bucket, its min and its max.

    The first and last points are always kept; non-numeric keys are sampled evenly.
    """
    import numpy as np

    n = len(col)
    if samples <= 0 or n <= samples:
        return col
    if col.kind == PACKED or samples < 4:
        idx = np.unique(np.linspace(0, n - 1, samples).round().astype(np.int64))
    else:
        vals = np.asarray(col.values, dtype="f8")
        buckets = max(1, (samples - 2) // 2)
        edges = np.linspace(1, n - 1, buckets + 1).astype(np.int64)
        picks = [0, n - 1]
        for lo, hi in itertools.pairwise(edges):
            if hi <= lo:
                continue
            seg = vals[lo:hi]
            if np.isnan(seg).all():
                picks.append(int(lo))
                continue
            picks.append(int(lo + np.nanargmin(seg)))
            picks.append(int(lo + np.nanargmax(seg)))
        idx = np.unique(np.asarray(picks, dtype=np.int64))
    values = [col.values[i] for i in idx] if col.kind == PACKED else col.values[idx]
    return Column(col.kind, col.steps[idx], values)

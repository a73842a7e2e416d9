"""History as per-key chunks: ingest a columnar batch, read keys back, downsample.

One key of one run reads without touching any other key (each chunk row holds one
key), and a batch of N rows x K keys costs at most K row writes, so ingest is bounded
by encoding speed, not by per-point INSERTs.
"""

from __future__ import annotations

import logging
from array import array
from typing import Any

from sqlalchemy import Connection, and_, case, insert, select, update

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


SUMMARY_BUCKETS = 64


def chunk_summary(col: Column) -> bytes | None:
    """The extremes of a full numeric chunk (see ``history_chunks.summary``).

    Computed once, when the chunk fills; numpy is imported then, not on every batch.
    """
    if col.kind == PACKED or len(col) < chunks.CHUNK_POINTS:
        return None
    import numpy as np

    dtype = "<f8" if col.kind == chunks.FLOAT64 else "<i8"
    vals = np.frombuffer(chunks.encode_values(col.kind, col.values), dtype=dtype)
    steps = np.asarray(col.steps, dtype="<i8")
    picks = _min_max_picks(vals.astype("f8", copy=False), SUMMARY_BUCKETS)
    return steps[picks].tobytes() + vals[picks].tobytes()


def _decode_summary(kind: str, blob: bytes) -> tuple[Any, Any]:
    import numpy as np

    half = len(blob) // 2
    dtype = "<f8" if kind == chunks.FLOAT64 else "<i8"
    return np.frombuffer(blob[:half], dtype="<i8"), np.frombuffer(blob[half:], dtype=dtype)


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
        "summary": chunk_summary(col),
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
                kinds = {p[0] for p in pieces}
                if len(kinds) == 1 and kind != chunks.PACKED:  # one copy, not one per chunk
                    values = np.concatenate([p[2] for p in pieces])
                elif kinds == {chunks.FLOAT64, chunks.INT64}:
                    kind = chunks.FLOAT64
                    values = np.concatenate([np.asarray(p[2], dtype="f8") for p in pieces])
                else:
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


def read_sampled_many(
    conn: Connection,
    run_pks: list[int],
    keys: list[str] | None,
    samples: int,
    *,
    stream: str = "default",
) -> dict[int, dict[str, Column]]:
    """Keys of runs downsampled to ``samples`` points each, reading the summaries of
    full chunks instead of their points where that is enough (a key much longer than
    the sample); other keys are read whole and downsampled as usual."""
    import numpy as np

    c = history_chunks.c
    meta_q = select(c.id, c.run_pk, c.key, c.kind, c.n, c.summary.is_not(None).label("has"))
    if keys is not None:
        meta_q = meta_q.where(c.key.in_(keys))
    elif stream == "system":
        meta_q = meta_q.where(c.key.startswith(SYSTEM_PREFIX))
    else:
        meta_q = meta_q.where(~c.key.startswith(SYSTEM_PREFIX))
    out: dict[int, dict[str, Column]] = {}
    for i in range(0, len(run_pks), 500):
        group = run_pks[i : i + 500]
        meta = conn.execute(
            meta_q.where(c.run_pk.in_(group)).order_by(c.run_pk, c.key, c.first_step)
        ).all()
        per_key: dict[tuple[int, str], list[Any]] = {}
        for m in meta:
            per_key.setdefault((m.run_pk, m.key), []).append(m)
        summarized: list[tuple[int, str]] = []
        whole: list[tuple[int, str]] = []
        for ident, parts in per_key.items():
            total = sum(p.n for p in parts)
            candidates = sum(2 * SUMMARY_BUCKETS + 2 if p.has else p.n for p in parts)
            use = (
                all(p.kind != PACKED for p in parts)
                and candidates >= 2 * samples
                and total > 4 * candidates
            )
            (summarized if use else whole).append(ident)
        batch: list[int] = []
        for n, ident in enumerate(whole):  # whole keys, a few thousand chunks per query
            batch.extend(p.id for p in per_key[ident])
            if len(batch) < 5000 and n + 1 < len(whole):
                continue
            q = select(c.run_pk, c.key, c.kind, c.steps, c.vals).where(c.id.in_(batch))
            got = _assemble(conn.execute(q.order_by(c.run_pk, c.key, c.first_step)), None, None)
            for run_pk, cols in got.items():
                for key, col in cols.items():
                    out.setdefault(run_pk, {})[key] = downsample(col, samples)
            batch = []
        if summarized:
            wanted = {p.id for ident in summarized for p in per_key[ident]}
            rows = conn.execute(
                select(
                    c.id,
                    c.run_pk,
                    c.key,
                    c.kind,
                    c.summary,
                    case((c.summary.is_(None), c.steps), else_=None).label("steps"),
                    case((c.summary.is_(None), c.vals), else_=None).label("vals"),
                )
                .where(c.id.in_(wanted))
                .order_by(c.run_pk, c.key, c.first_step)
            )
            pieces: dict[tuple[int, str], list[tuple[str, Any, Any]]] = {}
            for r in rows:
                if r.summary is not None:
                    steps, values = _decode_summary(r.kind, r.summary)
                else:
                    steps = chunks.decode_steps(r.steps)
                    values = chunks.decode_values(r.kind, r.vals)
                pieces.setdefault((r.run_pk, r.key), []).append((r.kind, steps, values))
            for (run_pk, key), parts_ in pieces.items():
                kinds = {p[0] for p in parts_}
                kind = parts_[0][0] if len(kinds) == 1 else chunks.FLOAT64
                dtype = "f8" if kind == chunks.FLOAT64 else "i8"
                col = Column(
                    kind,
                    np.concatenate([p[1] for p in parts_]),
                    np.concatenate([np.asarray(p[2], dtype=dtype) for p in parts_]),
                )
                out.setdefault(run_pk, {})[key] = downsample(col, samples)
    return out


def _min_max_picks(vals: Any, buckets: int) -> Any:
    """Indices of the first and last points and of each bucket's (first) min and max.

    Buckets differ in size by one at most, so they are laid out as the rows of one
    padded matrix and reduced with one ``argmin`` and one ``argmax``: no Python loop per
    bucket, which matters when a chart asks for a thousand runs at once. NaNs never
    win; an all-NaN bucket keeps its first point.
    """
    import numpy as np

    n = len(vals)
    edges = np.linspace(1, n - 1, buckets + 1).astype(np.int64)
    starts, ends = edges[:-1], edges[1:]
    keep = ends > starts
    starts, ends = starts[keep], ends[keep]
    sizes = ends - starts
    if n > 256 * len(starts):  # big buckets: numpy per bucket is cheaper than a matrix
        return _min_max_picks_by_bucket(vals, starts, ends)
    rows = np.repeat(np.arange(len(starts)), sizes)
    cols = np.arange(n - 2) - (starts - 1)[rows]
    body = vals[1 : n - 1]
    nan = np.isnan(body)
    grid = np.full((len(starts), int(sizes.max())), np.inf)
    picks = [np.asarray([0, n - 1], dtype=np.int64)]
    for pad, reduce in ((np.inf, np.argmin), (-np.inf, np.argmax)):
        grid.fill(pad)
        grid[rows, cols] = np.where(nan, pad, body)
        best = reduce(grid, axis=1)
        chosen = starts + best
        # A NaN (stored as the padding) tied with a real +-inf: pick the real one.
        for r in np.flatnonzero(np.isnan(vals[chosen]))[:1000]:
            seg = vals[starts[r] : ends[r]]
            if not np.isnan(seg).all():
                chosen[r] = starts[r] + (np.nanargmin(seg) if pad > 0 else np.nanargmax(seg))
        picks.append(chosen)
    return np.unique(np.concatenate(picks))


def _min_max_picks_by_bucket(vals: Any, starts: Any, ends: Any) -> Any:
    import numpy as np

    picks = [0, len(vals) - 1]
    for lo, hi in zip(starts.tolist(), ends.tolist(), strict=True):
        seg = vals[lo:hi]
        if np.isnan(seg).all():
            picks.append(lo)
            continue
        picks.append(lo + int(np.nanargmin(seg)))
        picks.append(lo + int(np.nanargmax(seg)))
    return np.unique(np.asarray(picks, dtype=np.int64))


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
        idx = _min_max_picks(np.asarray(col.values, dtype="f8"), max(1, (samples - 2) // 2))
    values = [col.values[i] for i in idx] if col.kind == PACKED else col.values[idx]
    return Column(col.kind, col.steps[idx], values)

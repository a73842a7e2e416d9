"""History columns -> rows or a pandas DataFrame, aligned on ``_step``.

Columns of a run usually share one step array (a training loop logs the same keys
every step); then the frame is built without any join. Otherwise the union of steps
is computed once and each column scattered into it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from stemma.wire.chunks import Column
from stemma.wire.history import PACKED

if TYPE_CHECKING:
    import pandas as pd


def _aligned(cols: dict[str, Column]) -> tuple[np.ndarray, dict[str, Any]]:
    """(union of steps, {key: values aligned to it, NaN/None where missing})."""
    if not cols:
        return np.empty(0, dtype=np.int64), {}
    first = next(iter(cols.values())).steps
    if all(len(c.steps) == len(first) and np.array_equal(c.steps, first) for c in cols.values()):
        return first, {
            k: (c.values if c.kind != PACKED else list(c.values)) for k, c in cols.items()
        }
    steps = np.unique(np.concatenate([c.steps for c in cols.values()]))
    out: dict[str, Any] = {}
    for key, col in cols.items():
        idx = np.searchsorted(steps, col.steps)
        if col.kind == PACKED:
            arr: Any = np.full(len(steps), None, dtype=object)
            arr[idx] = np.asarray(col.values, dtype=object) if col.values else []
        else:
            arr = np.full(len(steps), np.nan, dtype="f8")
            arr[idx] = col.values
        out[key] = arr
    return steps, out


def _present_mask(cols: dict[str, Column], steps: np.ndarray, keys: list[str]) -> np.ndarray:
    mask = np.ones(len(steps), dtype=bool)
    for key in keys:
        col = cols.get(key)
        if col is None:
            return np.zeros(len(steps), dtype=bool)
        present = np.zeros(len(steps), dtype=bool)
        present[np.searchsorted(steps, col.steps)] = True
        mask &= present
    return mask


def to_frame(
    cols: dict[str, Column], keys: list[str] | None = None, x_axis: str = "_step"
) -> pd.DataFrame:
    """A DataFrame with ``_step`` first; with ``keys``, only rows having all of them."""
    import pandas as pd

    steps, values = _aligned(cols)
    data: dict[str, Any] = {"_step": steps}
    order = sorted(values) if keys is None else [k for k in keys if k != "_step"]
    for key in order:
        data[key] = values.get(key, np.full(len(steps), np.nan))
    if keys is not None and x_axis != "_step" and x_axis in values and x_axis not in data:
        data[x_axis] = values[x_axis]
    frame = pd.DataFrame(data)
    if keys is not None:
        wanted = [k for k in keys if k != "_step"]
        if wanted:
            frame = frame[_present_mask(cols, steps, wanted)].reset_index(drop=True)
    return frame


def stacked_frame(
    runs: list[tuple[str, dict[str, Column]]],
    keys: list[str] | None,
    presence: dict[str, np.ndarray] | None = None,
) -> pd.DataFrame:
    """Many runs' histories as one DataFrame (``run_id`` first), built from concatenated
    arrays: one DataFrame, not one per run and a concat, which costs more than the
    reading when a chart asks for a thousand runs. ``presence``, when given, receives
    per key the mask of rows where the key was logged (a logged NaN is present, a step
    where the key was not logged is not), for formats that tell null from NaN.
    """
    import pandas as pd

    parts: list[tuple[np.ndarray, dict[str, Any], dict[str, np.ndarray]]] = []
    run_ids: list[str] = []
    names: list[str] = []
    for run_id, cols in runs:
        steps, values = _aligned(cols)
        logged: dict[str, np.ndarray] = {}
        if presence is not None:
            for k, col in cols.items():
                m = np.zeros(len(steps), dtype=bool)
                m[np.searchsorted(steps, col.steps)] = True
                logged[k] = m
        wanted = [] if keys is None else [k for k in keys if k != "_step"]
        if wanted:
            mask = _present_mask(cols, steps, wanted)
            steps = steps[mask]
            values = {
                k: (np.asarray(v, dtype=object) if isinstance(v, list) else v)[mask]
                for k, v in values.items()
            }
            logged = {k: m[mask] for k, m in logged.items()}
        parts.append((steps, values, logged))
        run_ids.append(run_id)
        names.extend(k for k in values if k not in names)
    order = sorted(names) if keys is None else [k for k in keys if k != "_step"]
    data: dict[str, Any] = {
        "run_id": np.repeat(np.asarray(run_ids, dtype=object), [len(p[0]) for p in parts]),
        "_step": np.concatenate([p[0] for p in parts]) if parts else np.empty(0, np.int64),
    }
    for key in order:
        pieces = [
            np.full(len(steps), np.nan) if values.get(key) is None else np.asarray(values[key])
            for steps, values, _ in parts
        ]
        if not pieces:
            data[key] = np.empty(0)
        elif all(p.dtype.kind in "fiub" for p in pieces):
            data[key] = np.concatenate([p.astype("f8", copy=False) for p in pieces])
        else:
            data[key] = np.concatenate([p.astype(object) for p in pieces])
        if presence is not None and parts:
            presence[key] = np.concatenate(
                [logged.get(key, np.zeros(len(steps), dtype=bool)) for steps, _, logged in parts]
            )
    return pd.DataFrame(data)


def iter_rows(cols: dict[str, Column], keys: list[str] | None = None) -> Iterator[dict[str, Any]]:
    """Rows as dicts (missing keys left out), optionally only rows having all ``keys``."""
    steps, values = _aligned(cols)
    names = list(values)
    lists = [v.tolist() if isinstance(v, np.ndarray) else list(v) for v in values.values()]
    present = {k: np.zeros(len(steps), dtype=bool) for k in names}
    for k, col in cols.items():
        present[k][np.searchsorted(steps, col.steps)] = True
    pres_lists = [present[k].tolist() for k in names]
    wanted = [k for k in (keys or []) if k != "_step"]
    mask = _present_mask(cols, steps, wanted).tolist() if wanted else None
    for i, step in enumerate(steps.tolist()):
        if mask is not None and not mask[i]:
            continue
        row: dict[str, Any] = {"_step": step}
        for name, vals, pres in zip(names, lists, pres_lists, strict=True):
            if pres[i]:
                row[name] = vals[i]
        yield row

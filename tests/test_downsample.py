"""Downsampling keeps each bucket's min and max: the matrix path (many small series, as
charts of a thousand runs ask for) and the per-bucket path (one long series) agree with
a plain per-bucket reference, NaN and infinities included."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from stemma.service.history import _min_max_picks, downsample
from stemma.wire.chunks import Column
from stemma.wire.history import FLOAT64


def reference(vals: np.ndarray, buckets: int) -> np.ndarray:
    n = len(vals)
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
    return np.unique(np.asarray(picks, dtype=np.int64))


@pytest.mark.sqlite_only  # pure computation: once is enough
@pytest.mark.parametrize("seed", range(8))
def test_min_max_picks_match_the_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for _ in range(60):
        n = int(rng.integers(3, 40_000))
        buckets = int(rng.integers(1, 700))
        vals = rng.normal(size=n)
        vals[rng.random(n) < rng.random() * 0.5] = np.nan
        if n > 50:
            vals[10:45] = np.nan  # whole buckets of NaN
        vals[rng.random(n) < 0.03] = np.inf
        vals[rng.random(n) < 0.03] = -np.inf
        assert np.array_equal(_min_max_picks(vals, buckets), reference(vals, buckets)), (
            n,
            buckets,
        )


@pytest.mark.sqlite_only
def test_downsample_keeps_extremes_and_ends() -> None:
    steps = np.arange(10_000, dtype=np.int64) * 3
    values = np.sin(np.arange(10_000) / 50.0)
    values[7_777] = 5.0
    values[1_234] = -5.0
    col = downsample(Column(FLOAT64, steps, values), 200)
    assert len(col) <= 200
    assert col.steps[0] == 0 and col.steps[-1] == steps[-1]
    assert 5.0 in col.values and -5.0 in col.values
    assert np.all(np.diff(col.steps) > 0)


def test_long_histories_downsample_from_chunk_summaries() -> None:
    """A key many chunks long is downsampled from the full chunks' stored extremes: the
    sample keeps both ends and the global extremes, and every point is a real one."""
    import stemma

    n = 120_000
    values = np.sin(np.arange(n) / 700.0) + np.cos(np.arange(n) / 13.0) * 0.1
    values[33_333] = 9.0
    values[98_765] = -9.0
    with stemma.init(project="long") as run:
        for i in range(n):
            run.log({"loss": float(values[i]), "acc": i})
    api_run = stemma.Api().run(f"{run.entity}/long/{run.id}")
    full = api_run.history(keys=["loss"])
    assert len(full) == n
    sample = api_run.history(keys=["loss"], samples=400)
    assert 200 <= len(sample) <= 400
    steps = sample["_step"].to_numpy()
    assert steps[0] == 0 and steps[-1] == n - 1 and np.all(np.diff(steps) > 0)
    assert sample["loss"].max() == 9.0 and sample["loss"].min() == -9.0
    assert np.array_equal(sample["loss"].to_numpy(), values[steps])
    ints = api_run.history(keys=["acc"], samples=100)["acc"].to_numpy()
    assert ints[0] == 0 and ints[-1] == n - 1

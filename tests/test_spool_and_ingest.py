"""The spool format and the exactly-once apply protocol, directly."""

from __future__ import annotations

import struct
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import stemma
from stemma.backend import get_backend
from stemma.errors import Conflict, NotFound, SpoolError
from stemma.sdk.spool import SpoolReader, SpoolWriter
from stemma.settings import Settings
from stemma.wire.history import decode_rows, encode_rows
from stemma.wire.records import RunRef

REF = RunRef("ent", "proj", "r1")


def _run_event() -> dict:
    return {
        "t": "run",
        "entity": "ent",
        "project": "proj",
        "run_id": "r1",
        "name": "n",
        "config": {},
        "tags": [],
        "created_at": 1.0e9,
    }


def _hist(start: int, n: int) -> dict:
    batch = encode_rows([(s, 1.0e9 + s, float(s), {"x": s}) for s in range(start, start + n)])
    return batch | {"t": "history"}


def test_encode_rows_round_trip() -> None:
    rows = [
        (0, 1.0, 0.0, {"a": 1, "b": "s"}),
        (1, 2.0, 1.0, {"a": 2.5}),
        (5, 3.0, 2.0, {"c": None, "a": 3}),
    ]
    out = decode_rows(encode_rows(rows))
    assert [r["_step"] for r in out] == [0, 1, 5]
    assert out[0]["b"] == "s" and "b" not in out[1]
    assert [r["a"] for r in out] == [1, 2.5, 3]
    assert out[2]["c"] is None


def test_spool_frames_round_trip_and_torn_tail(tmp_path: Path) -> None:
    path = tmp_path / "s.stspool"
    w = SpoolWriter(path, REF, "sid", 1.0)
    r1 = w.append([{"t": "config", "data": {"a": 1}}])
    r2 = w.append([{"t": "summary", "set": {"b": 2}}])
    w.close()
    assert r1[0] == 0 and r2[0] == r1[1]
    reader = SpoolReader(path)
    assert reader.ref == REF and reader.spool_id == "sid"
    frames = list(reader.frames())
    assert [(s, e) for s, e, _ in frames] == [r1, r2]
    assert next(iter(reader.frames(r1[1])))[2] == [{"t": "summary", "set": {"b": 2}}]
    # a torn final frame (a write cut short by SIGKILL) is ignored, not an error
    with open(path, "ab") as fh:
        fh.write(struct.pack("<II", 1000, 0) + b"partial")
    reader = SpoolReader(path)
    assert len(list(reader.frames())) == 2 and reader.torn_tail


def test_spool_corruption_in_the_middle_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "s.stspool"
    w = SpoolWriter(path, REF, "sid", 1.0)
    w.append([{"t": "config", "data": {"a": 1}}])
    w.append([{"t": "config", "data": {"a": 2}}])
    w.close()
    reader = SpoolReader(path)
    data = bytearray(path.read_bytes())
    data[reader.data_start + 10] ^= 0xFF  # flip a byte inside the first frame's payload
    path.write_bytes(bytes(data))
    with pytest.raises(SpoolError, match="corrupt"):
        list(SpoolReader(path).frames())


def test_not_a_spool(tmp_path: Path) -> None:
    path = tmp_path / "x.stspool"
    path.write_bytes(b"hello")
    with pytest.raises(SpoolError, match="not a Stemma spool"):
        SpoolReader(path)


def test_apply_is_exactly_once_and_refuses_gaps() -> None:
    backend = get_backend(Settings.from_env())
    assert backend.apply(REF, "s1", 0, 10, [_run_event(), _hist(0, 5)]).applied
    dup = backend.apply(REF, "s1", 0, 10, [_run_event(), _hist(0, 5)])
    assert not dup.applied and dup.committed_offset == 10
    with pytest.raises(Conflict, match="earlier frames are missing"):
        backend.apply(REF, "s1", 20, 30, [_hist(5, 5)])
    assert backend.apply(REF, "s1", 10, 20, [_hist(5, 5)]).applied
    assert backend.committed_offset(REF, "s1") == 20
    cols = backend.read_history(REF, ["x"])
    assert cols["x"].steps.tolist() == list(range(10))
    # a frame for a run that does not exist (and does not create it) is refused
    with pytest.raises(NotFound):
        backend.apply(RunRef("ent", "proj", "nope"), "s9", 0, 5, [_hist(0, 1)])
    # points at or below a key's last step never reorder the history
    backend.apply(REF, "s1", 20, 30, [_hist(8, 4)])
    assert backend.read_history(REF, ["x"])["x"].steps.tolist() == list(range(12))


def test_a_failed_frame_changes_nothing() -> None:
    backend = get_backend(Settings.from_env())
    backend.apply(REF, "s1", 0, 10, [_run_event(), _hist(0, 3)])
    with pytest.raises(stemma.errors.UsageError, match="unknown event"):
        backend.apply(REF, "s1", 10, 20, [_hist(3, 3), {"t": "bogus"}])
    assert backend.committed_offset(REF, "s1") == 10
    assert backend.read_history(REF, ["x"])["x"].steps.tolist() == [0, 1, 2]


def test_concurrent_frames_of_one_run_lose_nothing() -> None:
    """Frames of several spools of one run (resumed elsewhere, or `stemma sync` racing
    the writer) applied at once: each read-modify-write of the run (its summary, a key's
    open history chunk) sees the previous one, as under SQLite's write lock."""
    backend = get_backend(Settings.from_env())
    backend.apply(REF, "s0", 0, 10, [_run_event()])
    spools, frames = 6, 8

    def writer(i: int) -> None:
        for f in range(frames):
            summary = {"t": "summary", "set": {f"k{i}_{f}": f}}
            backend.apply(REF, f"w{i}", f * 10, f * 10 + 10, [summary, _hist(i * 100 + f, 1)])

    with ThreadPoolExecutor(spools) as pool:
        list(pool.map(writer, range(spools)))
    stored = backend.get_run(REF)
    assert stored is not None
    assert {k for k in stored.summary if k.startswith("k")} == {
        f"k{i}_{f}" for i in range(spools) for f in range(frames)
    }


def test_concurrent_first_frames_create_the_run_once() -> None:
    """The first frame of a new run applied twice at once (`stemma sync` racing the
    run's own writer): the run is created once, the other apply is a no-op."""
    backend = get_backend(Settings.from_env())
    barrier = threading.Barrier(4)

    def apply(_i: int) -> bool:
        barrier.wait()
        return backend.apply(REF, "s1", 0, 10, [_run_event(), _hist(0, 5)]).applied

    with ThreadPoolExecutor(4) as pool:
        applied = list(pool.map(apply, range(4)))
    assert sorted(applied) == [False, False, False, True]
    assert backend.read_history(REF, ["x"])["x"].steps.tolist() == list(range(5))

"""Columnar encoding of a batch of history rows.

The writer thread turns the rows that ``run.log`` queued into one *batch*: the step of
every row, then one column per key holding that key's values (and, for a key that is
not in every row, the positions of the rows it is in). The same batch is appended to
the spool, sent to the backend and cut into per-key chunks by the service layer, so it
is encoded once. Numbers travel as raw little-endian int64/float64 arrays (NaN and
infinities kept bit-exact); anything else (strings, bools, None, media references) as
a msgpack list.

Only the standard library and msgpack are used here: this runs in the SDK.
"""

from __future__ import annotations

import sys
from array import array
from typing import Any

import msgpack

FLOAT64 = "d"
INT64 = "q"
PACKED = "m"

_SWAP = sys.byteorder != "little"

# A row as the SDK queues it: (step, unix timestamp, runtime seconds, {key: value}).
Row = tuple[int, float, float, dict[str, Any]]


def _raw(arr: array) -> bytes:
    if _SWAP:
        arr = array(arr.typecode, arr)
        arr.byteswap()
    return arr.tobytes()


def _unraw(typecode: str, data: bytes) -> array:
    arr = array(typecode)
    arr.frombytes(data)
    if _SWAP:
        arr.byteswap()
    return arr


def pack_values(values: list[Any]) -> tuple[str, bytes]:
    """Pick the densest exact encoding for one column's values."""
    types = set(map(type, values))
    if types == {float} or types == {float, int}:
        return FLOAT64, _raw(array("d", values))
    if types == {int}:
        try:
            return INT64, _raw(array("q", values))
        except OverflowError:
            pass
    return PACKED, msgpack.packb(values, use_bin_type=True)


def unpack_values(kind: str, data: bytes) -> list[Any]:
    """Inverse of :func:`pack_values`, as a plain list (the service layer uses numpy)."""
    if kind == PACKED:
        return list(msgpack.unpackb(data, raw=False))
    return list(_unraw(kind, data))


def encode_rows(rows: list[Row]) -> dict[str, Any]:
    """Encode queued rows as one columnar batch.

    Consecutive rows with the same keys in the same order (the usual training loop)
    are transposed in one ``zip``, which keeps the per-row cost at a few hundred ns.
    ``_timestamp`` and ``_runtime`` become ordinary dense columns.
    """
    n = len(rows)
    steps = [r[0] for r in rows]
    values: dict[str, list[Any]] = {
        "_timestamp": [r[1] for r in rows],
        "_runtime": [r[2] for r in rows],
    }
    positions: dict[str, list[int]] = {}
    i = 0
    while i < n:
        keys = tuple(rows[i][3])
        j = i + 1
        while j < n and tuple(rows[j][3]) == keys:
            j += 1
        if keys:
            block = zip(*[tuple(r[3].values()) for r in rows[i:j]], strict=True)
            span = range(i, j)
            for key, col in zip(keys, block, strict=True):
                if key in values:
                    values[key].extend(col)
                    positions[key].extend(span)
                else:
                    values[key] = list(col)
                    positions[key] = list(span)
        i = j
    cols: dict[str, list[Any]] = {}
    for key, column in values.items():
        pos = positions.get(key)
        kind, payload = pack_values(column)
        pos_bytes = None if pos is None or len(pos) == n else _raw(array("q", pos))
        cols[key] = [kind, pos_bytes, payload]
    return {"steps": _raw(array("q", steps)), "cols": cols}


def decode_steps(batch: dict[str, Any]) -> list[int]:
    """The step of every row of the batch."""
    return list(_unraw("q", batch["steps"]))


def decode_column(batch: dict[str, Any], key: str) -> tuple[list[int] | None, list[Any]]:
    """(row positions or None when dense, values) of one key of a batch."""
    kind, pos, payload = batch["cols"][key]
    return (None if pos is None else list(_unraw("q", pos))), unpack_values(kind, payload)


def decode_rows(batch: dict[str, Any]) -> list[dict[str, Any]]:
    """Rebuild rows as dicts (``_step`` included): for sync tools and tests, not hot paths."""
    steps = decode_steps(batch)
    rows: list[dict[str, Any]] = [{"_step": s} for s in steps]
    for key in batch["cols"]:
        pos, vals = decode_column(batch, key)
        for p, v in zip(range(len(steps)) if pos is None else pos, vals, strict=True):
            rows[p][key] = v
    return rows

"""Per-key history chunks: how a key's steps and values are packed into two blobs.

Shared by the service layer (which writes and reads chunks) and by the HTTP client
(which will receive chunk blobs and decode them itself). numpy is imported inside the
functions, so importing this module costs nothing on the SDK's import path.

Steps blob: ``b"A"`` + (start, stride, count) as three int64 when the steps form an
arithmetic progression (the usual case: nearly free), else ``b"R"`` + raw int64.
Values blob: raw little-endian float64 / int64 (kinds ``d`` / ``q``), or a msgpack
list (kind ``m``) for strings, bools, None and media references.
"""

from __future__ import annotations

import math
import struct
from array import array
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgpack

from stemma.wire.history import FLOAT64, INT64, PACKED, _raw, _unraw

if TYPE_CHECKING:
    import numpy as np

_ARITH = struct.Struct("<qqq")

# A chunk is sealed once it holds this many points; the open tail grows up to it.
CHUNK_POINTS = 16384


def encode_steps(steps: array) -> bytes:
    """Pack an int64 step array, as three numbers when it is evenly spaced.

    Works on ``array('q')`` so that ingest never needs numpy (importing it would add a
    tenth of a second to every short run's finish).
    """
    n = len(steps)
    if n == 1:
        return b"A" + _ARITH.pack(steps[0], 1, 1)
    if n > 1:
        start, stride = steps[0], steps[1] - steps[0]
        if stride > 0 and steps == array("q", range(start, start + stride * n, stride)):
            return b"A" + _ARITH.pack(start, stride, n)
    return b"R" + _raw(array("q", steps))


def decode_steps_array(blob: bytes) -> array:
    """Inverse of :func:`encode_steps`, as ``array('q')`` (ingest path)."""
    if blob[:1] == b"A":
        start, stride, n = _ARITH.unpack(blob[1:])
        return array("q", range(start, start + stride * n, stride))
    return _unraw("q", blob[1:])


def decode_steps(blob: bytes) -> np.ndarray:
    """Inverse of :func:`encode_steps`, as a numpy array (read path)."""
    import numpy as np

    if blob[:1] == b"A":
        start, stride, n = _ARITH.unpack(blob[1:])
        return np.arange(start, start + stride * n, stride, dtype=np.int64)
    return np.frombuffer(blob, dtype="<i8", offset=1).astype(np.int64, copy=False)


def encode_values(kind: str, values: Any) -> bytes:
    """Pack a column of ``kind`` (an ``array`` for numeric kinds, a list for PACKED)."""
    if kind in (FLOAT64, INT64):
        return _raw(
            values if isinstance(values, array) and values.typecode == kind else array(kind, values)
        )
    return msgpack.packb(list(values), use_bin_type=True)


def encode_steps_any(steps: Any) -> bytes:
    """:func:`encode_steps` for a numpy array (the read path) or an ``array``."""
    if isinstance(steps, array):
        return encode_steps(steps)
    import numpy as np

    arr = np.asarray(steps, dtype="<i8")
    n = len(arr)
    if n >= 2:
        stride = int(arr[1] - arr[0])
        if stride > 0 and bool((np.diff(arr) == stride).all()):
            return b"A" + _ARITH.pack(int(arr[0]), stride, n)
    elif n == 1:
        return b"A" + _ARITH.pack(int(arr[0]), 1, 1)
    return b"R" + arr.tobytes()


def encode_values_any(kind: str, values: Any) -> bytes:
    """:func:`encode_values` for numpy arrays as well as ``array`` / lists."""
    if kind in (FLOAT64, INT64) and not isinstance(values, array):
        import numpy as np

        return np.asarray(values, dtype="<f8" if kind == FLOAT64 else "<i8").tobytes()
    return encode_values(kind, values)


def decode_values_array(kind: str, blob: bytes) -> Any:
    """Inverse of :func:`encode_values` as ``array`` / list (ingest path)."""
    if kind == PACKED:
        return msgpack.unpackb(blob, raw=False)
    return _unraw(kind, blob)


def decode_values(kind: str, blob: bytes) -> Any:
    """numpy array for numeric kinds, list for PACKED."""
    import numpy as np

    if kind == FLOAT64:
        return np.frombuffer(blob, dtype="<f8")
    if kind == INT64:
        return np.frombuffer(blob, dtype="<i8")
    return msgpack.unpackb(blob, raw=False)


def concat_values(kind_a: str, a: Any, kind_b: str, b: Any) -> tuple[str, Any]:
    """Concatenate two columns, widening the kind when they differ (int + float = float).

    Numeric columns are ``array`` (ingest) or numpy arrays (reads); both concatenate.
    """
    if kind_a == kind_b and kind_a != PACKED:
        if isinstance(a, array):
            return kind_a, a + (b if isinstance(b, array) else array(kind_a, b))
        import numpy as np

        return kind_a, np.concatenate([a, b])
    if {kind_a, kind_b} == {FLOAT64, INT64}:
        if isinstance(a, array):
            return FLOAT64, array("d", a) + array("d", b)
        import numpy as np

        return FLOAT64, np.concatenate([np.asarray(a, dtype="f8"), np.asarray(b, dtype="f8")])
    return PACKED, _as_list(kind_a, a) + _as_list(kind_b, b)


def _as_list(kind: str, values: Any) -> list[Any]:
    if kind == PACKED or isinstance(values, array):
        return list(values)
    return values.tolist()


def value_range(kind: str, values: Any) -> tuple[float | None, float | None]:
    """(min, max) of a numeric column ignoring NaN; (None, None) when there is none."""
    if kind == PACKED or len(values) == 0:
        return None, None
    total = sum(values) if kind == FLOAT64 else 0.0  # a cheap NaN probe
    if math.isnan(total) or (kind == FLOAT64 and math.isinf(total)):
        values = [v for v in values if v == v]  # drop NaN (min/max would be poisoned)
        if not values:
            return None, None
    return float(min(values)), float(max(values))


@dataclass(slots=True)
class Column:
    """One key's points: increasing steps and the values at those steps."""

    kind: str
    steps: Any  # int64 steps: numpy array when read, array('q') when ingested
    values: Any  # numpy array / array('d' or 'q') for numeric kinds, list for PACKED

    def __len__(self) -> int:
        return len(self.steps)

    def last(self) -> Any:
        v = self.values[-1]
        return v.item() if hasattr(v, "item") else v

    def slice(self, lo: int, hi: int) -> Column:
        return Column(self.kind, self.steps[lo:hi], self.values[lo:hi])

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

import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgpack

from stemma.wire.history import FLOAT64, INT64, PACKED

if TYPE_CHECKING:
    import numpy as np

_ARITH = struct.Struct("<qqq")

# A chunk is sealed once it holds this many points; the open tail grows up to it.
CHUNK_POINTS = 16384


def encode_steps(steps: np.ndarray) -> bytes:
    """Pack an int64 step array, as three numbers when it is evenly spaced."""
    import numpy as np

    n = len(steps)
    if n == 1:
        return b"A" + _ARITH.pack(int(steps[0]), 1, 1)
    if n > 1:
        stride = int(steps[1] - steps[0])
        if stride > 0 and np.array_equal(np.diff(steps), np.full(n - 1, stride)):
            return b"A" + _ARITH.pack(int(steps[0]), stride, n)
    return b"R" + steps.astype("<i8", copy=False).tobytes()


def decode_steps(blob: bytes) -> np.ndarray:
    """Inverse of :func:`encode_steps`."""
    import numpy as np

    if blob[:1] == b"A":
        start, stride, n = _ARITH.unpack(blob[1:])
        return np.arange(start, start + stride * n, stride, dtype=np.int64)
    return np.frombuffer(blob, dtype="<i8", offset=1).astype(np.int64, copy=False)


def encode_values(kind: str, values: Any) -> bytes:
    """Pack a column of ``kind`` (numpy array for numeric kinds, list for PACKED)."""
    import numpy as np

    if kind == FLOAT64:
        return np.asarray(values, dtype="<f8").tobytes()
    if kind == INT64:
        return np.asarray(values, dtype="<i8").tobytes()
    return msgpack.packb(list(values), use_bin_type=True)


def decode_values(kind: str, blob: bytes) -> Any:
    """numpy array for numeric kinds, list for PACKED."""
    import numpy as np

    if kind == FLOAT64:
        return np.frombuffer(blob, dtype="<f8")
    if kind == INT64:
        return np.frombuffer(blob, dtype="<i8")
    return msgpack.unpackb(blob, raw=False)


def concat_values(kind_a: str, a: Any, kind_b: str, b: Any) -> tuple[str, Any]:
    """Concatenate two columns, widening the kind when they differ (int + float = float)."""
    import numpy as np

    if kind_a == kind_b and kind_a != PACKED:
        return kind_a, np.concatenate([a, b])
    if {kind_a, kind_b} == {FLOAT64, INT64}:
        return FLOAT64, np.concatenate([np.asarray(a, dtype="f8"), np.asarray(b, dtype="f8")])
    return PACKED, _as_list(kind_a, a) + _as_list(kind_b, b)


def _as_list(kind: str, values: Any) -> list[Any]:
    return list(values) if kind == PACKED else values.tolist()


def value_range(kind: str, values: Any) -> tuple[float | None, float | None]:
    """(min, max) of a numeric column ignoring NaN; (None, None) when there is none."""
    import numpy as np

    if kind == PACKED or len(values) == 0:
        return None, None
    arr = np.asarray(values, dtype="f8")
    finite = arr[~np.isnan(arr)]
    if finite.size == 0:
        return None, None
    return float(finite.min()), float(finite.max())


@dataclass(slots=True)
class Column:
    """One key's points: increasing steps and the values at those steps."""

    kind: str
    steps: np.ndarray
    values: Any  # numpy array for numeric kinds, list for PACKED

    def __len__(self) -> int:
        return len(self.steps)

    def last(self) -> Any:
        v = self.values[-1]
        return v.item() if hasattr(v, "item") else v

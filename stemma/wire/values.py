"""Turning user values (config, summary) into storable JSON, and back, exactly.

JSON has no NaN or infinities and PostgreSQL's jsonb refuses them, yet a logged NaN
must read back as NaN. Non-finite floats are therefore stored as ``{"$float": "nan"}``
(or ``"inf"`` / ``"-inf"``) and decoded on the way out.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import enum
import math
import os
from collections.abc import Mapping
from typing import Any

from stemma.errors import InvalidValueError

_NONFINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}

# Durations users give (TTLs, key lifetimes, retention ages): at most a century, so
# every date computed from them stays representable.
MAX_SECONDS = 100 * 365 * 86400


def _float_tag(x: float) -> dict[str, str]:
    if math.isnan(x):
        return {"$float": "nan"}
    return {"$float": "inf" if x > 0 else "-inf"}


def to_storable(value: Any, key: str = "") -> Any:
    """Convert a config/summary value to plain JSON types, or raise naming ``key``.

    numpy scalars and arrays, paths, dataclasses, enums, dates, tuples and sets are
    converted as W&B does; anything else is refused rather than silently stringified.
    """
    t = type(value)
    if t is str and "\x00" in value:
        raise InvalidValueError(
            f"value of {key!r} contains a NUL character, which the store cannot keep "
            "(PostgreSQL text and jsonb refuse it)",
            key=key,
        )
    if value is None or t is bool or t is int or t is str:
        return value
    if t is float:
        return value if math.isfinite(value) else _float_tag(value)
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str) or "\x00" in k:
                raise InvalidValueError(
                    f"config key {key + '.' if key else ''}{k!r} is not a string",
                    key=f"{key}.{k!r}" if key else repr(k),
                )
            out[k] = to_storable(v, f"{key}.{k}" if key else k)
        return out
    if isinstance(value, list | tuple):
        return [to_storable(v, f"{key}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, set | frozenset):
        items = [to_storable(v, f"{key}[]") for v in value]
        try:
            return sorted(items)
        except TypeError:
            return items
    if isinstance(value, enum.Enum):
        return to_storable(value.value, key)
    for base in (bool, int, float, str):  # subclasses such as numpy.float64 or str mixins
        if isinstance(value, base):
            return to_storable(base(value), key)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, _dt.datetime | _dt.date | _dt.time):
        return value.isoformat()
    if isinstance(value, _dt.timedelta):
        return value.total_seconds()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_storable(dataclasses.asdict(value), key)
    module = t.__module__
    if (module == "numpy" or module.startswith("numpy.")) and hasattr(value, "tolist"):
        return to_storable(value.tolist(), key)
    if module.startswith("torch") and hasattr(value, "tolist"):
        return to_storable(value.tolist(), key)
    raise InvalidValueError(
        f"config value for {key!r} cannot be stored: {t.__name__} is not a number, string, "
        "bool, None, list, dict, path, dataclass, enum, date or numpy value",
        key=key,
        type=t.__name__,
    )


def from_storable(value: Any) -> Any:
    """Undo :func:`to_storable`'s tagging of non-finite floats."""
    if isinstance(value, dict):
        if len(value) == 1 and "$float" in value:
            tag = value["$float"]
            if tag in _NONFINITE:
                return _NONFINITE[tag]
        return {k: from_storable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_storable(v) for v in value]
    return value

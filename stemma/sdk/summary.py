"""``run.summary``: the last logged value of each key, overridable by the user."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from stemma.sdk.attrdict import AttrMapping
from stemma.wire.values import to_storable


class Summary(AttrMapping):
    """Last value per key. ``run.log`` keeps it current; assignments override it."""

    _what = "summary"
    __slots__ = ("_data", "_on_set")

    def __init__(
        self,
        data: Mapping[str, Any] | None = None,
        on_set: Callable[[dict[str, Any], list[str]], None] | None = None,
    ) -> None:
        object.__setattr__(self, "_data", dict(data or {}))
        object.__setattr__(self, "_on_set", on_set)

    def __setitem__(self, key: str, value: Any) -> None:
        self.update({key: value})

    def __delitem__(self, key: str) -> None:
        del self._data[key]
        if self._on_set is not None:
            self._on_set({}, [key])

    def __setattr__(self, key: str, value: Any) -> None:
        self.update({key: value})

    def update(self, data: Mapping[str, Any]) -> None:
        """Override several keys; values are checked before anything changes."""
        stored = {}
        for key, value in data.items():
            if not isinstance(key, str) or not key:
                raise TypeError(f"summary keys must be non-empty strings, got {key!r}")
            stored[key] = to_storable(value, key)
        self._data.update(data)
        if self._on_set is not None:
            self._on_set(stored, [])

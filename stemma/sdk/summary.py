"""``run.summary``: the last logged value of each key, overridable by the user."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from stemma.wire.values import to_storable


class Summary:
    """Last value per key. ``run.log`` keeps it current; assignments override it."""

    __slots__ = ("_data", "_on_set")

    def __init__(
        self,
        data: Mapping[str, Any] | None = None,
        on_set: Callable[[dict[str, Any], list[str]], None] | None = None,
    ) -> None:
        object.__setattr__(self, "_data", dict(data or {}))
        object.__setattr__(self, "_on_set", on_set)

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.update({key: value})

    def __delitem__(self, key: str) -> None:
        del self._data[key]
        if self._on_set is not None:
            self._on_set({}, [key])

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"Summary({self._data!r})"

    def __getattr__(self, key: str) -> Any:
        try:
            return self._data[key]
        except KeyError:
            raise AttributeError(f"summary has no key {key!r}") from None

    def __setattr__(self, key: str, value: Any) -> None:
        self.update({key: value})

    def get(self, key: str, default: Any = None) -> Any:
        """The value of ``key``, or ``default``; never raises."""
        return self._data.get(key, default)

    def keys(self):
        return self._data.keys()

    def values(self):
        return self._data.values()

    def items(self):
        return self._data.items()

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

    def as_dict(self) -> dict[str, Any]:
        return dict(self._data)

    def _from_log(self, row: dict[str, Any]) -> None:
        """Hot path: ``run.log`` refreshes last values without queueing an override."""
        self._data.update(row)

"""The read side ``run.config`` and ``run.summary`` share: a mapping with attribute access
whose ``.get`` never raises. Writes differ (converted and queued) and stay in each class."""

from __future__ import annotations

from collections.abc import ItemsView, Iterator, KeysView, ValuesView
from typing import Any


class AttrMapping:
    """Mapping protocol and attribute reads over ``self._data``."""

    __slots__ = ()
    _data: dict[str, Any]
    _what = "mapping"

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._data!r})"

    def __getattr__(self, key: str) -> Any:
        if key.startswith("__"):
            raise AttributeError(key)
        try:
            return self._data[key]
        except KeyError:
            raise AttributeError(f"{self._what} has no key {key!r}") from None

    def get(self, key: str, default: Any = None) -> Any:
        """The value of ``key``, or ``default``; never raises."""
        return self._data.get(key, default)

    def keys(self) -> KeysView[str]:
        return self._data.keys()

    def values(self) -> ValuesView[Any]:
        return self._data.values()

    def items(self) -> ItemsView[str, Any]:
        return self._data.items()

    def as_dict(self) -> dict[str, Any]:
        """A plain copy."""
        return dict(self._data)

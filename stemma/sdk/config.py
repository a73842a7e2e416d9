"""``run.config``: a dict that also answers attribute access and ``.get`` with a default.

Values are converted on assignment (numpy, paths, dataclasses, enums...) and refused
there with an error naming the key, so a bad value never reaches the store. Every
change queues the whole converted config for the writer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from stemma.wire.values import to_storable


class Config:
    """Hyper-parameters of a run. ``config.lr``, ``config["lr"]``, ``config.get("lr", 0.1)``."""

    __slots__ = ("_data", "_on_change")

    def __init__(
        self,
        data: Mapping[str, Any] | None = None,
        on_change: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        object.__setattr__(self, "_on_change", None)
        object.__setattr__(self, "_data", {})
        if data:
            self.update(data)
        object.__setattr__(self, "_on_change", on_change)

    # -- mapping protocol
    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.update({key: value})

    def __delitem__(self, key: str) -> None:
        del self._data[key]
        self._changed()

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Config):
            return self._data == other._data
        if isinstance(other, Mapping):
            return self._data == dict(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Config({self._data!r})"

    # -- attribute access
    def __getattr__(self, key: str) -> Any:
        try:
            return self._data[key]
        except KeyError:
            raise AttributeError(f"config has no key {key!r}") from None

    def __setattr__(self, key: str, value: Any) -> None:
        self.update({key: value})

    def __delattr__(self, key: str) -> None:
        try:
            self.__delitem__(key)
        except KeyError:
            raise AttributeError(f"config has no key {key!r}") from None

    # -- dict API
    def get(self, key: str, default: Any = None) -> Any:
        """The value of ``key``, or ``default``; never raises."""
        return self._data.get(key, default)

    def keys(self):
        return self._data.keys()

    def values(self):
        return self._data.values()

    def items(self):
        return self._data.items()

    def update(self, data: Mapping[str, Any] | Any = None, /, **kwargs: Any) -> None:
        """Set several keys at once; each value is converted or refused naming its key.

        Accepts a mapping, an object with attributes such as ``argparse.Namespace``,
        or keyword arguments. Nothing is changed when any value is refused.
        """
        items: dict[str, Any] = {}
        if data is not None:
            if isinstance(data, Mapping):
                items.update(data)
            elif hasattr(data, "__dict__"):
                items.update(vars(data))
            else:
                raise TypeError(f"config.update() takes a mapping, not {type(data).__name__}")
        items.update(kwargs)
        converted = {}
        for key, value in items.items():
            if not isinstance(key, str) or not key:
                raise TypeError(f"config keys must be non-empty strings, got {key!r}")
            converted[key] = to_storable(value, key)
        self._data.update(converted)
        self._changed()

    def setdefaults(self, data: Mapping[str, Any]) -> None:
        """Set only the keys not set yet."""
        self.update({k: v for k, v in data.items() if k not in self._data})

    def as_dict(self) -> dict[str, Any]:
        """A plain copy of the config."""
        return dict(self._data)

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change(dict(self._data))

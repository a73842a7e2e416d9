"""``run.config``: a dict that also answers attribute access and ``.get`` with a default.

Values are converted on assignment (numpy, paths, dataclasses, enums...) and refused
there with an error naming the key, so a bad value never reaches the store. Every
change queues the whole converted config for the writer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from stemma.sdk.attrdict import AttrMapping
from stemma.wire.values import to_storable


class Config(AttrMapping):
    """Hyper-parameters of a run. ``config.lr``, ``config["lr"]``, ``config.get("lr", 0.1)``."""

    _what = "config"
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

    # -- writes (reads come from AttrMapping)
    def __setitem__(self, key: str, value: Any) -> None:
        self.update({key: value})

    def __delitem__(self, key: str) -> None:
        del self._data[key]
        self._changed()

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Config):
            return self._data == other._data
        if isinstance(other, Mapping):
            return self._data == dict(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    # -- attribute access

    def __setattr__(self, key: str, value: Any) -> None:
        self.update({key: value})

    def __delattr__(self, key: str) -> None:
        try:
            self.__delitem__(key)
        except KeyError:
            raise AttributeError(f"config has no key {key!r}") from None

    # -- dict API

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

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change(dict(self._data))

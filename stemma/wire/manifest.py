"""Artifact manifests: which bytes (by SHA-256) sit at which path of a version.

The format is versioned (``MANIFEST_VERSION``) so that a later release can give a
large file's entry a list of chunks while versions written before keep reading.
An artifact's *digest* is the SHA-256 of the canonical JSON of its sorted entries: two
versions with the same files (names, bytes, references) have the same digest, which
is how logging identical contents again is recognised.

Stored form: zlib-compressed msgpack rows with binary digests, or a *delta* (entries
set and paths removed) against an earlier version's manifest when that is smaller.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import posixpath
import re
import zlib
from collections.abc import Iterable, Iterator
from typing import Any

import msgpack

from stemma.errors import InvalidValueError

MANIFEST_VERSION = 1


@dataclasses.dataclass(frozen=True, slots=True)
class Entry:
    """One file of an artifact: stored bytes (``digest``) or a tracked reference."""

    path: str
    digest: str | None  # SHA-256 hex of the contents; None for an unchecksummed reference
    size: int | None
    ref: str | None = None  # the URI of a reference (file://, s3://, http(s)://)
    extra: dict[str, Any] | None = None  # etag, version id, ... of a reference

    def row(self) -> list[Any]:
        return [self.path, self.digest, self.size, self.ref, self.extra]


# Names that are certainly clean (no leading '/', no '.' or '..' segment, no empty
# segment, no backslash, colon or NUL); anything else takes the careful path below.
_CLEAN = re.compile(r"(?!\.{1,2}(?:/|$))[^/\\\x00:]+(?:/(?!\.{1,2}(?:/|$))[^/\\\x00:]+)*")


def check_entry_path(name: str) -> str:
    """A safe relative POSIX path inside an artifact, or InvalidValueError."""
    if type(name) is str and _CLEAN.fullmatch(name):
        return name  # already clean: the common case, called once per file
    if not isinstance(name, str) or not name or "\x00" in name:
        raise InvalidValueError(f"invalid artifact entry name {name!r}", name=repr(name))
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise InvalidValueError(
            f"artifact entry name {name!r} is absolute; entry names are relative paths",
            name=name,
        )
    parts = name.replace("\\", "/").split("/")
    if ".." in parts:
        raise InvalidValueError(
            f"artifact entry name {name!r} contains '..'; entries cannot point outside "
            "the artifact",
            name=name,
        )
    clean = posixpath.normpath("/".join(p for p in parts if p not in ("", ".")))
    if clean in ("", "."):
        raise InvalidValueError(f"invalid artifact entry name {name!r}", name=name)
    return clean


class Manifest:
    """The entries of one artifact version, keyed by path."""

    def __init__(self, entries: Iterable[Entry] = ()) -> None:
        self.entries: dict[str, Entry] = {}
        for e in entries:
            self.entries[e.path] = e

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self) -> Iterator[Entry]:
        return iter(sorted(self.entries.values(), key=lambda e: e.path))

    def __contains__(self, path: object) -> bool:
        return path in self.entries

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Manifest) and self.entries == other.entries

    def get(self, path: str) -> Entry | None:
        return self.entries.get(path)

    def add(self, entry: Entry) -> None:
        self.entries[entry.path] = entry

    @property
    def size(self) -> int:
        return sum(e.size or 0 for e in self.entries.values())

    def digest(self) -> str:
        canonical = json.dumps(
            [MANIFEST_VERSION, [e.row() for e in self]],
            separators=(",", ":"),
            sort_keys=True,
            ensure_ascii=False,
        ).encode()
        return hashlib.sha256(canonical).hexdigest()

    def blob_digests(self) -> set[str]:
        """Digests of the bytes the store holds for this manifest (not references)."""
        return {e.digest for e in self.entries.values() if e.digest and e.ref is None}

    def to_json(self) -> dict[str, Any]:
        """The user-facing form (``artifact.manifest``)."""
        contents: dict[str, Any] = {}
        for e in self:
            item: dict[str, Any] = {"digest": e.digest, "size": e.size}
            if e.ref is not None:
                item["ref"] = e.ref
            if e.extra:
                item["extra"] = e.extra
            contents[e.path] = item
        return {"version": MANIFEST_VERSION, "contents": contents}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Manifest:
        if data.get("version") != MANIFEST_VERSION:
            raise InvalidValueError(f"unsupported manifest version {data.get('version')!r}")
        return cls(
            Entry(check_entry_path(p), v.get("digest"), v.get("size"), v.get("ref"), v.get("extra"))
            for p, v in data["contents"].items()
        )

    # ------------------------------------------------------------- stored form
    @staticmethod
    def _pack_rows(entries: Iterable[Entry]) -> list[list[Any]]:
        return [
            [e.path, bytes.fromhex(e.digest) if e.digest else None, e.size, e.ref, e.extra]
            for e in entries
        ]

    @staticmethod
    def _unpack_row(row: list[Any]) -> Entry:
        path, digest, size, ref, extra = row
        return Entry(path, digest.hex() if digest else None, size, ref, extra)

    def encode(self) -> bytes:
        """Full stored form."""
        payload = {"v": MANIFEST_VERSION, "rows": self._pack_rows(self)}
        return zlib.compress(msgpack.packb(payload, use_bin_type=True), 6)

    def encode_delta(self, base: Manifest) -> bytes:
        """Stored form as changes against ``base``."""
        changed = [e for e in self if base.entries.get(e.path) != e]
        removed = sorted(p for p in base.entries if p not in self.entries)
        payload = {"v": MANIFEST_VERSION, "set": self._pack_rows(changed), "del": removed}
        return zlib.compress(msgpack.packb(payload, use_bin_type=True), 6)

    @classmethod
    def decode(cls, blob: bytes, base: Manifest | None = None) -> Manifest:
        payload = msgpack.unpackb(zlib.decompress(blob), raw=False)
        if payload.get("v") != MANIFEST_VERSION:
            raise InvalidValueError(f"unsupported manifest version {payload.get('v')!r}")
        if "rows" in payload:
            return cls(cls._unpack_row(r) for r in payload["rows"])
        if base is None:
            raise InvalidValueError("a delta manifest needs its base")
        out = Manifest(base.entries.values())
        for path in payload["del"]:
            out.entries.pop(path, None)
        for row in payload["set"]:
            out.add(cls._unpack_row(row))
        return out

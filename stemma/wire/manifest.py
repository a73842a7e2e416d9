"""Artifact manifests: which bytes (by SHA-256) sit at which path of a version.

The format is versioned (``MANIFEST_VERSION``). Version 2 gives a large file's entry its
ordered list of content-defined chunks (``chunks``: (SHA-256, size) pairs) next to the
file's own SHA-256; version 1 manifests, written before chunking existed, keep reading.
The chunk list is a storage detail: it takes no part in equality or in the artifact's
digest, so the same files logged chunked or whole are the same version.
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

MANIFEST_VERSION = 2
READABLE_VERSIONS = (1, 2)

ChunkList = tuple[tuple[str, int], ...]


@dataclasses.dataclass(frozen=True, slots=True)
class Entry:
    """One file of an artifact: stored bytes (``digest``) or a tracked reference."""

    path: str
    digest: str | None  # SHA-256 hex of the contents; None for an unchecksummed reference
    size: int | None
    ref: str | None = None  # the URI of a reference (file://, s3://, http(s)://)
    extra: dict[str, Any] | None = None  # etag, version id, ... of a reference
    # (chunk SHA-256, size) in file order, for a file stored as chunks; None when whole
    chunks: ChunkList | None = dataclasses.field(default=None, compare=False)

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

    def chunked(self) -> list[Entry]:
        """Entries stored as chunks."""
        return [e for e in self.entries.values() if e.chunks is not None]

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
            if e.chunks is not None:
                item["chunks"] = [list(c) for c in e.chunks]
            contents[e.path] = item
        return {"version": MANIFEST_VERSION, "contents": contents}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Manifest:
        if data.get("version") not in READABLE_VERSIONS:
            raise InvalidValueError(f"unsupported manifest version {data.get('version')!r}")
        return cls(
            Entry(
                check_entry_path(p),
                v.get("digest"),
                v.get("size"),
                v.get("ref"),
                v.get("extra"),
                _chunk_list(v.get("chunks")),
            )
            for p, v in data["contents"].items()
        )

    # ------------------------------------------------------------- stored form
    @staticmethod
    def _pack_rows(entries: Iterable[Entry]) -> list[list[Any]]:
        rows = []
        for e in entries:
            row: list[Any] = [
                e.path,
                bytes.fromhex(e.digest) if e.digest else None,
                e.size,
                e.ref,
                e.extra,
            ]
            if e.chunks is not None:  # binary digests, one string; sizes beside
                row.append(
                    [b"".join(bytes.fromhex(d) for d, _ in e.chunks), [n for _, n in e.chunks]]
                )
            rows.append(row)
        return rows

    @staticmethod
    def _unpack_row(row: list[Any]) -> Entry:
        path, digest, size, ref, extra = row[:5]
        chunks: ChunkList | None = None
        if len(row) > 5 and row[5] is not None:
            packed, sizes = row[5]
            chunks = tuple((packed[32 * i : 32 * i + 32].hex(), n) for i, n in enumerate(sizes))
        return Entry(path, digest.hex() if digest else None, size, ref, extra, chunks)

    def encode(self) -> bytes:
        """Full stored form."""
        payload = {"v": MANIFEST_VERSION, "rows": self._pack_rows(self)}
        return zlib.compress(msgpack.packb(payload, use_bin_type=True), 6)

    def encode_delta(self, base: Manifest) -> bytes:
        """Stored form as changes against ``base``."""
        changed = [
            e
            for e in self
            if (b := base.entries.get(e.path)) != e or (b is not None and b.chunks != e.chunks)
        ]
        removed = sorted(p for p in base.entries if p not in self.entries)
        payload = {"v": MANIFEST_VERSION, "set": self._pack_rows(changed), "del": removed}
        return zlib.compress(msgpack.packb(payload, use_bin_type=True), 6)

    @classmethod
    def decode(cls, blob: bytes, base: Manifest | None = None) -> Manifest:
        payload = msgpack.unpackb(zlib.decompress(blob), raw=False)
        if payload.get("v") not in READABLE_VERSIONS:
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


def _chunk_list(value: Any) -> ChunkList | None:
    """A manifest's JSON chunk list, checked: [[sha256 hex, size], ...]."""
    if value is None:
        return None
    try:
        out = tuple((str(d), int(n)) for d, n in value)
    except (TypeError, ValueError):
        raise InvalidValueError("a manifest entry's chunks must be [[sha256, size], ...]") from None
    for d, n in out:
        if len(d) != 64 or n < 0:
            raise InvalidValueError(f"invalid chunk {d!r} of size {n} in a manifest entry")
    return out

"""The blob store interface. Identity is the SHA-256 of the raw bytes, never an etag."""

from __future__ import annotations

import abc
import os
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO


class BlobStore(abc.ABC):
    """Content-addressed bytes: put once, read many, delete only through gc."""

    @abc.abstractmethod
    def has(self, digest: str) -> bool:
        """Whether the blob is stored."""

    @abc.abstractmethod
    def size(self, digest: str) -> int | None:
        """The blob's size in bytes, or None when absent."""

    @abc.abstractmethod
    def put_file(
        self, src: str | os.PathLike[str], known_digest: str | None = None
    ) -> tuple[str, int]:
        """Store a file's bytes, reading it once; returns (sha256 hex, size).

        With ``known_digest`` (from a stat cache) an already stored blob is not read at
        all. Raises :class:`~stemma.errors.InvalidValueError` when the file changes
        while it is read, leaving nothing under the blob's name.
        """

    @abc.abstractmethod
    def put_bytes(self, data: bytes) -> str:
        """Store bytes; returns their digest."""

    @abc.abstractmethod
    def open(self, digest: str) -> BinaryIO:
        """Read a blob (NotFound when absent)."""

    def read_range(self, digest: str, offset: int, length: int) -> bytes:
        """``length`` bytes of a blob from ``offset`` (packfiles are read a range at a time).

        Stores override this with a positional read or an HTTP range request.
        """
        with self.open(digest) as fh:
            fh.seek(offset)
            data = fh.read(length)
        return bytes(data)

    @abc.abstractmethod
    def copy_to(self, digest: str, dest: Path) -> None:
        """Write the blob to ``dest`` (replacing it atomically)."""

    @abc.abstractmethod
    def delete(self, digest: str) -> None:
        """Remove a blob (gc only)."""

    @abc.abstractmethod
    def digests(self) -> Iterator[str]:
        """Every stored digest."""

    @abc.abstractmethod
    def verify(self, digest: str) -> bool:
        """Re-hash the stored bytes: True when they still match their name."""

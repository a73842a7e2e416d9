"""Blob stores: bytes by SHA-256, stored once whatever refers to them."""

from stemma.storage.blobs.base import BlobStore
from stemma.storage.blobs.local import LocalBlobStore

__all__ = ["BlobStore", "LocalBlobStore"]

"""Blob stores: bytes by SHA-256, stored once whatever refers to them."""

from stemma.storage.blobs.base import BlobStore
from stemma.storage.blobs.local import LocalBlobStore
from stemma.storage.blobs.s3 import S3BlobStore  # imports boto3 only when one is created

__all__ = ["BlobStore", "LocalBlobStore", "S3BlobStore"]

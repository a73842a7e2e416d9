"""Artifact references: files tracked where they live (file://, s3://, http(s)://).

A reference records the location plus what identifies the bytes there (size, and the
SHA-256 when ``checksum=True``; the ETag and version id for S3 and HTTP), and is not
copied into the store. ``download()`` fetches it back and checks the recorded SHA-256,
so a source that changed is reported rather than silently used.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from stemma.errors import InvalidValueError, NotFound, UsageError
from stemma.hashing import hash_path
from stemma.sdk.cache import BlobCache
from stemma.wire.manifest import Entry, check_entry_path

SCHEMES = ("file", "s3", "http", "https")


def _file_entries(
    uri: str, name: str | None, checksum: bool, max_objects: int | None
) -> list[Entry]:
    path = Path(unquote(urlparse(uri).path))
    if not path.exists():
        raise NotFound(f"reference {uri} does not exist", uri=uri)
    if path.is_file():
        files = [(path, name or path.name)]
    else:
        files = []
        for root, _dirs, names in os.walk(path):
            for fname in sorted(names):
                full = Path(root) / fname
                rel = full.relative_to(path).as_posix()
                files.append((full, f"{name}/{rel}" if name else rel))
        if max_objects is not None and len(files) > max_objects:
            raise UsageError(
                f"reference {uri} has {len(files)} files, more than max_objects={max_objects}",
                uri=uri,
            )
    out = []
    for full, entry_name in files:
        st = full.stat()
        out.append(
            Entry(
                check_entry_path(entry_name),
                hash_path(full) if checksum else None,
                st.st_size,
                full.resolve().as_uri(),
                {"mtime_ns": st.st_mtime_ns},
            )
        )
    return out


def _http_entries(uri: str, name: str | None, checksum: bool, cache: BlobCache) -> list[Entry]:
    import httpx

    entry_name = name or (Path(urlparse(uri).path).name or "index.html")
    try:
        with httpx.Client(follow_redirects=True, timeout=60) as client:
            head = client.head(uri)
            if head.status_code >= 400:
                raise NotFound(f"reference {uri} answered HTTP {head.status_code}", uri=uri)
            extra: dict[str, Any] = {}
            if head.headers.get("etag"):
                extra["etag"] = head.headers["etag"]
            size = int(head.headers["content-length"]) if "content-length" in head.headers else None
            digest = None
            if checksum:
                with client.stream("GET", uri) as resp:
                    if resp.status_code >= 400:
                        raise NotFound(f"reference {uri} answered HTTP {resp.status_code}", uri=uri)
                    digest, size = cache.put_chunks(resp.iter_bytes(1 << 20))
    except httpx.HTTPError as exc:
        raise NotFound(f"cannot reach reference {uri}: {exc}", uri=uri) from exc
    return [Entry(check_entry_path(entry_name), digest, size, uri, extra or None)]


def _s3_client() -> Any:
    try:
        import boto3
    except ImportError:
        raise UsageError("s3:// references need boto3: pip install boto3") from None
    return boto3.client("s3", endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None)


def _s3_entries(uri: str, name: str | None, max_objects: int | None) -> list[Entry]:
    parsed = urlparse(uri)
    bucket, key = parsed.netloc, parsed.path.lstrip("/")
    client = _s3_client()
    out = []
    try:
        head = client.head_object(Bucket=bucket, Key=key)
        objects: Iterator[tuple[str, dict[str, Any]]] = iter([(key, head)])
        single = True
    except Exception:
        single = False
        prefix = key if key.endswith("/") or not key else key + "/"
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        objects = ((o["Key"], o) for page in pages for o in page.get("Contents", []))
    for count, (obj_key, meta) in enumerate(objects, 1):
        if max_objects is not None and count > max_objects:
            raise UsageError(f"reference {uri} has more than max_objects={max_objects} objects")
        size = meta.get("ContentLength", meta.get("Size"))
        rel = Path(obj_key).name if single else obj_key[len(key) :].lstrip("/")
        entry_name = (name or rel) if single else (f"{name}/{rel}" if name else rel)
        extra = {"etag": str(meta.get("ETag", "")).strip('"')}
        if meta.get("VersionId"):
            extra["version_id"] = meta["VersionId"]
        out.append(
            Entry(check_entry_path(entry_name), None, size, f"s3://{bucket}/{obj_key}", extra)
        )
    if not out:
        raise NotFound(f"reference {uri} matches no object", uri=uri)
    return out


def reference_entries(
    uri: str, name: str | None, checksum: bool, max_objects: int | None, cache: BlobCache
) -> list[Entry]:
    """Manifest entries for a reference URI (a directory or prefix gives several)."""
    if not isinstance(uri, str) or "://" not in uri:
        raise InvalidValueError(
            f"reference {uri!r} is not a URI: use file://, s3://, http:// or https://",
            uri=repr(uri),
        )
    scheme = urlparse(uri).scheme.lower()
    if scheme == "file":
        return _file_entries(uri, name, checksum, max_objects)
    if scheme in ("http", "https"):
        return _http_entries(uri, name, checksum, cache)
    if scheme == "s3":
        return _s3_entries(uri, name, max_objects)
    raise InvalidValueError(
        f"unsupported reference scheme {scheme!r} in {uri!r}: use file://, s3://, http:// or "
        "https://",
        uri=uri,
        scheme=scheme,
    )


def fetch_reference(entry: Entry, dest: Path, cache: BlobCache) -> None:
    """Write a referenced file to ``dest``, checking its recorded SHA-256."""
    assert entry.ref is not None
    scheme = urlparse(entry.ref).scheme
    if entry.digest and cache.has(entry.digest):
        cache.copy_out(entry.digest, dest)
        return
    if scheme == "file":
        src = Path(unquote(urlparse(entry.ref).path))
        if not src.is_file():
            raise NotFound(f"referenced file {src} no longer exists", uri=entry.ref)
        digest, _ = cache.put_file(src)
    elif scheme in ("http", "https"):
        import httpx

        with (
            httpx.Client(follow_redirects=True, timeout=60) as client,
            client.stream("GET", entry.ref) as resp,
        ):
            if resp.status_code >= 400:
                raise NotFound(
                    f"reference {entry.ref} answered HTTP {resp.status_code}", uri=entry.ref
                )
            digest, _ = cache.put_chunks(resp.iter_bytes(1 << 20), entry.digest)
    elif scheme == "s3":
        parsed = urlparse(entry.ref)
        kwargs: dict[str, Any] = {"Bucket": parsed.netloc, "Key": parsed.path.lstrip("/")}
        if entry.extra and entry.extra.get("version_id"):
            kwargs["VersionId"] = entry.extra["version_id"]
        body = _s3_client().get_object(**kwargs)["Body"]
        digest, _ = cache.put_chunks(iter(lambda: body.read(1 << 20), b""), entry.digest)
    else:  # pragma: no cover - refused when the reference was added
        raise InvalidValueError(f"unsupported reference {entry.ref}")
    if entry.digest and digest != entry.digest:
        raise InvalidValueError(
            f"referenced file {entry.ref} changed since it was logged (SHA-256 {digest}, "
            f"recorded {entry.digest})",
            uri=entry.ref,
        )
    cache.copy_out(digest, dest)

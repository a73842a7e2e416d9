"""A content-addressed blob store in an S3-compatible bucket (AWS S3, MinIO, Ceph, R2...).

Objects live at ``PREFIX/ab/cdef…`` (the SHA-256 hex split after two characters, as in
the local store). Identity is always the SHA-256 of the raw bytes, never the ETag.

Nothing partial or unverified ever appears under a real key:

- Files up to ``multipart_threshold`` (default 64 MiB) are read once into memory, hashed,
  checked unchanged (stat before/after), and only then sent with one ``PutObject`` to
  the final key, carrying ``x-amz-checksum-sha256`` (S3 verifies the bytes against it)
  and ``If-None-Match: *`` (an existing blob is not rewritten).
- Larger files are read once: each part is hashed and streamed into a multipart upload
  to a *temporary* key (``PREFIX/tmp/<ms>-<uuid>.part``), because the final key is not
  known until the last byte is hashed. If the file changed while it was read, the
  upload is aborted and nothing exists anywhere. Otherwise, if the blob is already
  stored the upload is aborted; if not, it is completed and copied server-side into
  place (no bytes go through the client twice), and the temporary object is deleted.
  Uploads and temporaries left by a killed process are removed by :meth:`clear_temp`.
- Presigned single-part uploads (:meth:`presign_put`) sign ``x-amz-checksum-sha256``
  so S3 refuses bytes that do not hash to the digest. Presigned multipart uploads go to
  the final key (parts are invisible until completion) and complete with
  ``If-None-Match: *``; S3 does not check a whole-object SHA-256 for multipart uploads,
  so per-part SHA-256 checksums can be signed (``part_checksums``) and
  ``complete_multipart(verify=True)`` re-hashes the object.

boto3 is imported when a store is created, never when ``stemma`` is imported.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import hashlib
import io
import os
import re
import time
import uuid
from collections.abc import Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any, BinaryIO, cast
from urllib.parse import urlsplit

from stemma.errors import InvalidValueError, NotFound, UsageError
from stemma.storage.blobs.base import BlobStore

MiB = 1 << 20
GiB = 1 << 30
DEFAULT_PART_SIZE = 64 * MiB
MIN_PART_SIZE = 5 * MiB  # S3: every part but the last
MAX_PART_SIZE = 5 * GiB
MAX_PARTS = 10_000
MAX_OBJECT_SIZE = 5 * (1 << 40)
MAX_SINGLE_PUT = 5 * GiB  # PutObject and CopyObject limits
_READ_CHUNK = 8 * MiB

_BLOB_RE = re.compile(r"^[0-9a-f]{2}/[0-9a-f]{62}$")
_TEMP_RE = re.compile(r"^tmp/(\d+)-[0-9a-f]{32}\.part$")

ENV_ENDPOINT = "STEMMA_S3_ENDPOINT_URL"
ENV_ADDRESSING = "STEMMA_S3_ADDRESSING_STYLE"
ENV_MAX_CONNECTIONS = "STEMMA_S3_MAX_CONNECTIONS"


def _hex_ok(digest: str) -> bool:
    return len(digest) == 64 and all(c in "0123456789abcdef" for c in digest)


def sha256_b64(digest: str) -> str:
    """The base64 form of a hex SHA-256, as ``x-amz-checksum-sha256`` carries it."""
    return base64.b64encode(bytes.fromhex(digest)).decode("ascii")


def plan_part_size(size: int, part_size: int = DEFAULT_PART_SIZE) -> int:
    """A part size within S3's limits for an object of ``size`` bytes.

    At least ``part_size`` and 5 MiB, large enough for at most 10,000 parts, rounded up
    to a whole MiB.
    """
    if size < 0 or size > MAX_OBJECT_SIZE:
        raise UsageError(f"an S3 object holds 0 to 5 TiB, not {size} bytes", size=size)
    ps = max(part_size, MIN_PART_SIZE, -(-size // MAX_PARTS))
    ps = -(-ps // MiB) * MiB
    if ps > MAX_PART_SIZE:
        raise UsageError(f"part size {ps} exceeds S3's 5 GiB limit", part_size=ps)
    return ps


def _pread(fd: int, n: int, offset: int) -> bytes:
    """Up to ``n`` bytes at ``offset`` (short only at end of file)."""
    chunks: list[bytes] = []
    got = 0
    while got < n:
        buf = os.pread(fd, n - got, offset + got)
        if not buf:
            break
        chunks.append(buf)
        got += len(buf)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _changed(before: os.stat_result, after: os.stat_result) -> bool:
    return (before.st_size, before.st_mtime_ns, before.st_ino) != (
        after.st_size,
        after.st_mtime_ns,
        after.st_ino,
    )


def _error_code(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return ""
    code = response.get("Error", {}).get("Code")
    if code:
        return str(code)
    return str(response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))


_MISSING = {"404", "NoSuchKey", "NotFound"}
_EXISTS = {"412", "PreconditionFailed"}
_UNSUPPORTED = {"501", "NotImplemented"}


class _Body(io.RawIOBase):
    """A raw stream over a botocore response body."""

    def __init__(self, body: Any) -> None:
        self._body = body

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        view = memoryview(b).cast("B")
        data = self._body.read(len(view))
        view[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            with contextlib.suppress(Exception):
                self._body.close()
        super().close()


class S3BlobStore(BlobStore):
    """Blobs in ``s3://bucket/prefix``; safe for several processes and threads at once.

    Settings not given as arguments come from the environment:
    ``STEMMA_S3_ENDPOINT_URL`` (else ``AWS_ENDPOINT_URL_S3``, ``AWS_ENDPOINT_URL``),
    ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``/``AWS_SESSION_TOKEN`` (or any other
    source of boto3's credential chain: profiles, instance roles...),
    ``AWS_REGION``/``AWS_DEFAULT_REGION``, ``STEMMA_S3_ADDRESSING_STYLE``
    (``path``/``virtual``/``auto``; ``path`` when an endpoint is set) and
    ``STEMMA_S3_MAX_CONNECTIONS`` (the connection pool, default 32).
    """

    def __init__(
        self,
        url: str,
        *,
        endpoint_url: str | None = None,
        access_key: str | None = None,
        secret_key: str | None = None,
        session_token: str | None = None,
        region: str | None = None,
        addressing_style: str | None = None,
        part_size: int = DEFAULT_PART_SIZE,
        multipart_threshold: int | None = None,
        max_concurrency: int = 4,
        max_pool_connections: int | None = None,
        max_attempts: int = 5,
        env: Mapping[str, str] | None = None,
    ) -> None:
        env = os.environ if env is None else env
        parts = urlsplit(url)
        if parts.scheme != "s3" or not parts.netloc:
            raise UsageError(f"not an s3://bucket/prefix URL: {url!r}", url=url)
        self.url = url
        self.bucket = parts.netloc
        self.prefix = parts.path.strip("/")
        self._base = f"{self.prefix}/" if self.prefix else ""
        self.endpoint_url = (
            endpoint_url
            or env.get(ENV_ENDPOINT)
            or env.get("AWS_ENDPOINT_URL_S3")
            or env.get("AWS_ENDPOINT_URL")
            or None
        )
        self.region = (
            region
            or env.get("AWS_REGION")
            or env.get("AWS_DEFAULT_REGION")
            or ("us-east-1" if self.endpoint_url else None)
        )
        style = addressing_style or env.get(ENV_ADDRESSING)
        if style is None:
            style = "path" if self.endpoint_url else "virtual"
        if style not in ("path", "virtual", "auto"):
            raise UsageError(f"{ENV_ADDRESSING}={style!r}: use path, virtual or auto")
        pool = max_pool_connections or int(env.get(ENV_MAX_CONNECTIONS) or 0) or 32
        self.part_size = plan_part_size(0, part_size)
        self.multipart_threshold = (
            self.part_size if multipart_threshold is None else multipart_threshold
        )
        if self.multipart_threshold > MAX_SINGLE_PUT:
            raise UsageError("multipart_threshold cannot exceed 5 GiB")
        self.max_concurrency = max(1, max_concurrency)
        self.max_single_copy = MAX_SINGLE_PUT  # larger objects are copied part by part
        self._conditional = True  # cleared when the store refuses If-None-Match

        try:
            import boto3
            from botocore.config import Config
        except ImportError:
            raise UsageError("s3:// storage needs boto3: pip install boto3") from None
        # A session of our own: never the process-wide default session, never shared.
        session = boto3.session.Session(
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            aws_session_token=session_token,
            region_name=self.region,
        )
        config = Config(
            signature_version="s3v4",  # presigned URLs sign the checksum header
            retries={"max_attempts": max_attempts, "mode": "standard"},
            max_pool_connections=pool,
            connect_timeout=10,
            read_timeout=120,
            s3={"addressing_style": style},
            user_agent_extra="stemma",
        )
        self._client: Any = session.client("s3", endpoint_url=self.endpoint_url, config=config)

    def __repr__(self) -> str:
        return f"S3BlobStore({self.url!r}, endpoint_url={self.endpoint_url!r})"

    # -- keys ---------------------------------------------------------------------------

    def key(self, digest: str) -> str:
        """The object key of a blob."""
        if not _hex_ok(digest):
            raise InvalidValueError(f"not a SHA-256 hex digest: {digest!r}", digest=digest)
        return f"{self._base}{digest[:2]}/{digest[2:]}"

    def _temp_key(self) -> str:
        return f"{self._base}tmp/{int(time.time() * 1000)}-{uuid.uuid4().hex}.part"

    def _digest_of(self, key: str) -> str | None:
        if not key.startswith(self._base):
            return None
        rest = key[len(self._base) :]
        return rest[:2] + rest[3:] if _BLOB_RE.match(rest) else None

    def _temp_started(self, key: str) -> float | None:
        """When a temporary key was made (epoch seconds), from its name."""
        m = _TEMP_RE.match(key[len(self._base) :]) if key.startswith(self._base) else None
        return int(m.group(1)) / 1000 if m else None

    def _list(self, sub: str = "") -> Iterator[dict[str, Any]]:
        paginator = self._client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self._base + sub):
            yield from page.get("Contents", ())

    # -- reads --------------------------------------------------------------------------

    def _head(self, digest: str) -> dict[str, Any] | None:
        try:
            head = self._client.head_object(Bucket=self.bucket, Key=self.key(digest))
        except Exception as exc:
            if _error_code(exc) in _MISSING:
                return None
            raise
        return cast(dict[str, Any], head)

    def has(self, digest: str) -> bool:
        return self._head(digest) is not None

    def size(self, digest: str) -> int | None:
        head = self._head(digest)
        return None if head is None else int(head["ContentLength"])

    def _get(self, digest: str) -> Any:
        try:
            return self._client.get_object(Bucket=self.bucket, Key=self.key(digest))["Body"]
        except Exception as exc:
            if _error_code(exc) in _MISSING:
                raise NotFound(f"blob {digest} is not in the store", digest=digest) from None
            raise

    def open(self, digest: str) -> BinaryIO:
        return cast(BinaryIO, io.BufferedReader(_Body(self._get(digest)), buffer_size=MiB))

    def read_range(self, digest: str, offset: int, length: int) -> bytes:
        """One ranged GET (how chunks are read out of a packfile)."""
        if length <= 0:
            return b""
        try:
            body = self._client.get_object(
                Bucket=self.bucket,
                Key=self.key(digest),
                Range=f"bytes={offset}-{offset + length - 1}",
            )["Body"]
        except Exception as exc:
            if _error_code(exc) in _MISSING:
                raise NotFound(f"blob {digest} is not in the store", digest=digest) from None
            raise
        try:
            return bytes(body.read())
        finally:
            body.close()

    def copy_to(self, digest: str, dest: Path) -> None:
        from boto3.s3.transfer import TransferConfig

        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:8]}.part")
        config = TransferConfig(
            multipart_threshold=self.part_size,
            multipart_chunksize=self.part_size,
            max_concurrency=self.max_concurrency,
        )
        try:
            with open(tmp, "wb") as fh:
                try:
                    self._client.download_fileobj(self.bucket, self.key(digest), fh, Config=config)
                except Exception as exc:
                    if _error_code(exc) in _MISSING:
                        raise NotFound(
                            f"blob {digest} is not in the store", digest=digest
                        ) from None
                    raise
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)

    def digests(self) -> Iterator[str]:
        for obj in self._list():
            digest = self._digest_of(obj["Key"])
            if digest is not None:
                yield digest

    def verify(self, digest: str) -> bool:
        try:
            body = self._get(digest)
        except NotFound:
            return False
        h = hashlib.sha256()
        try:
            for chunk in iter(lambda: body.read(_READ_CHUNK), b""):
                h.update(chunk)
        finally:
            body.close()
        return h.hexdigest() == digest

    # -- writes -------------------------------------------------------------------------

    def _conditional_call(self, method: Any, **kwargs: Any) -> bool:
        """Call a create-if-absent S3 method; False when the key already existed."""
        attempt = 0
        while self._conditional:
            try:
                method(IfNoneMatch="*", **kwargs)
                return True
            except Exception as exc:
                code = _error_code(exc)
                if code in _EXISTS:
                    return False
                if code in ("409", "ConditionalRequestConflict") and attempt < 3:
                    # Another write of this key is in flight: once it ends, ours either
                    # finds the blob (412) or, if that write failed, goes through.
                    attempt += 1
                    time.sleep(0.2 * attempt)
                    continue
                if code not in _UNSUPPORTED:
                    raise
                self._conditional = False  # an S3-compatible store without the header
        method(**kwargs)  # an unconditional overwrite, with identical bytes
        return True

    def put_bytes(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        if len(data) > MAX_SINGLE_PUT:
            raise UsageError("put_bytes takes at most 5 GiB; use put_file")
        self._conditional_call(
            self._client.put_object,
            Bucket=self.bucket,
            Key=self.key(digest),
            Body=data,
            ChecksumSHA256=sha256_b64(digest),
        )
        return digest

    def put_file(
        self, src: str | os.PathLike[str], known_digest: str | None = None
    ) -> tuple[str, int]:
        if known_digest is not None:
            size = self.size(known_digest)
            if size is not None:
                return known_digest, size
        fd = os.open(src, os.O_RDONLY)
        try:
            before = os.fstat(fd)
            size = before.st_size
            if size <= self.multipart_threshold:
                data = _pread(fd, size + 1, 0)
                if len(data) != size or self._moved(fd, src, before):
                    raise InvalidValueError(
                        f"{src} changed while it was being read; nothing was stored",
                        path=str(src),
                    )
                return self.put_bytes(data), size
            return self._put_large(fd, Path(src), before), size
        finally:
            os.close(fd)

    @staticmethod
    def _moved(fd: int, src: str | os.PathLike[str], before: os.stat_result) -> bool:
        try:
            now = os.stat(src)
        except FileNotFoundError:
            return True
        return _changed(before, os.fstat(fd)) or _changed(before, now)

    def _upload_part(self, key: str, upload_id: str, number: int, data: bytes) -> dict[str, Any]:
        resp = self._client.upload_part(
            Bucket=self.bucket,
            Key=key,
            UploadId=upload_id,
            PartNumber=number,
            Body=data,
            ChecksumAlgorithm="CRC32",
        )
        part = {"PartNumber": number, "ETag": resp["ETag"]}
        if resp.get("ChecksumCRC32"):
            part["ChecksumCRC32"] = resp["ChecksumCRC32"]
        return part

    def _abort(self, key: str, upload_id: str) -> None:
        with contextlib.suppress(Exception):
            self._client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)

    def _put_large(self, fd: int, src: Path, before: os.stat_result) -> str:
        size = before.st_size
        part_size = plan_part_size(size, self.part_size)
        tmp_key = self._temp_key()
        upload_id = self._client.create_multipart_upload(
            Bucket=self.bucket, Key=tmp_key, ChecksumAlgorithm="CRC32", ChecksumType="FULL_OBJECT"
        )["UploadId"]
        completed = False
        try:
            h = hashlib.sha256()
            parts: list[dict[str, Any]] = []
            pending: set[Future[dict[str, Any]]] = set()
            with ThreadPoolExecutor(self.max_concurrency, "stemma-s3-part") as pool:
                offset, number = 0, 1
                while offset < size:
                    want = min(part_size, size - offset)
                    data = _pread(fd, want, offset)
                    if len(data) != want:
                        raise InvalidValueError(
                            f"{src} changed while it was being read; nothing was stored",
                            path=str(src),
                        )
                    h.update(data)
                    pending.add(pool.submit(self._upload_part, tmp_key, upload_id, number, data))
                    del data
                    # Memory stays bounded: at most max_concurrency parts in flight.
                    if len(pending) >= self.max_concurrency:
                        done, pending = wait(pending, return_when=FIRST_COMPLETED)
                        parts.extend(f.result() for f in done)  # a failed part raises
                    offset += want
                    number += 1
                parts.extend(f.result() for f in wait(pending).done)
            parts.sort(key=lambda p: int(p["PartNumber"]))
            if _pread(fd, 1, size) or self._moved(fd, src, before):
                raise InvalidValueError(
                    f"{src} changed while it was being read; nothing was stored", path=str(src)
                )
            digest = h.hexdigest()
            if self.has(digest):
                return digest  # the temporary upload is aborted below
            self._client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=tmp_key,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
            )
            completed = True
            try:
                self._copy_into_place(tmp_key, digest, size)
            finally:
                with contextlib.suppress(Exception):
                    self._client.delete_object(Bucket=self.bucket, Key=tmp_key)
            return digest
        finally:
            if not completed:
                self._abort(tmp_key, upload_id)

    def _copy_into_place(self, src_key: str, digest: str, size: int) -> None:
        """Server-side copy of a verified temporary object to the blob's key."""
        dest = self.key(digest)
        source = {"Bucket": self.bucket, "Key": src_key}
        if size <= self.max_single_copy:
            self._conditional_call(
                self._client.copy_object,
                Bucket=self.bucket,
                Key=dest,
                CopySource=source,
            )
            return
        part_size = plan_part_size(size, max(self.part_size, -(-size // MAX_PARTS)))
        upload_id = self._client.create_multipart_upload(Bucket=self.bucket, Key=dest)["UploadId"]
        try:

            def copy_part(number: int) -> dict[str, Any]:
                start = (number - 1) * part_size
                end = min(size, start + part_size) - 1
                resp = self._client.upload_part_copy(
                    Bucket=self.bucket,
                    Key=dest,
                    UploadId=upload_id,
                    PartNumber=number,
                    CopySource=source,
                    CopySourceRange=f"bytes={start}-{end}",
                )
                return {"PartNumber": number, "ETag": resp["CopyPartResult"]["ETag"]}

            count = -(-size // part_size)
            with ThreadPoolExecutor(self.max_concurrency, "stemma-s3-copy") as pool:
                parts = list(pool.map(copy_part, range(1, count + 1)))
            self._conditional_call(
                self._client.complete_multipart_upload,
                Bucket=self.bucket,
                Key=dest,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
            )
        finally:
            # After a completion this is a no-op; otherwise it drops the copied parts.
            self._abort(dest, upload_id)

    def delete(self, digest: str) -> None:
        self._client.delete_object(Bucket=self.bucket, Key=self.key(digest))

    # -- presigned data path (the server hands out URLs; bytes never pass through it) ---

    def presign_put(self, digest: str, size: int, expires: int = 3600) -> dict[str, Any]:
        """A single-part upload URL and the exact headers the client must send.

        ``x-amz-checksum-sha256`` and ``content-length`` are signed: S3 refuses a body
        that does not hash to ``digest``. Up to 5 GiB; beyond, use :meth:`create_multipart`.
        """
        if size < 0 or size > MAX_SINGLE_PUT:
            raise UsageError(f"a single PUT takes 0 to 5 GiB, not {size} bytes", size=size)
        checksum = sha256_b64(digest)
        url = self._client.generate_presigned_url(
            "put_object",
            Params={
                "Bucket": self.bucket,
                "Key": self.key(digest),
                "ChecksumSHA256": checksum,
                "ContentLength": size,
            },
            ExpiresIn=expires,
        )
        return {
            "method": "PUT",
            "url": url,
            "headers": {"x-amz-checksum-sha256": checksum, "content-length": str(size)},
            "key": self.key(digest),
            "expires_in": expires,
        }

    def presign_get(self, digest: str, expires: int = 3600) -> str:
        """A download URL for a blob (it is not checked to exist)."""
        return cast(
            str,
            self._client.generate_presigned_url(
                "get_object",
                Params={"Bucket": self.bucket, "Key": self.key(digest)},
                ExpiresIn=expires,
            ),
        )

    def _presign_parts(
        self,
        digest: str,
        upload_id: str,
        size: int,
        part_size: int,
        numbers: list[int],
        checksums: list[str] | None,
        expires: int,
    ) -> list[dict[str, Any]]:
        out = []
        for n in numbers:
            offset = (n - 1) * part_size
            length = min(part_size, size - offset)
            params: dict[str, Any] = {
                "Bucket": self.bucket,
                "Key": self.key(digest),
                "UploadId": upload_id,
                "PartNumber": n,
                "ContentLength": length,
            }
            headers = {"content-length": str(length)}
            if checksums is not None:
                params["ChecksumSHA256"] = checksums[n - 1]
                headers["x-amz-checksum-sha256"] = checksums[n - 1]
            url = self._client.generate_presigned_url(
                "upload_part", Params=params, ExpiresIn=expires
            )
            out.append(
                {
                    "part_number": n,
                    "offset": offset,
                    "size": length,
                    "method": "PUT",
                    "url": url,
                    "headers": headers,
                }
            )
        return out

    def create_multipart(
        self,
        digest: str,
        size: int,
        part_size: int = DEFAULT_PART_SIZE,
        expires: int = 3600,
        part_checksums: list[str] | None = None,
    ) -> dict[str, Any]:
        """Start a multipart upload to the blob's key; a presigned URL per part.

        ``part_size`` is raised as needed to stay within S3's limits (parts of at least
        5 MiB but the last, at most 10,000 parts); the answer says which size was used.
        ``part_checksums`` (the SHA-256 of each part, hex or base64) are signed into
        each part's URL so S3 verifies every part. The client sends each part with the
        listed headers and passes ``{"PartNumber", "ETag"}`` of every part (plus
        ``"ChecksumSHA256"`` when checksums were given) to :meth:`complete_multipart`.
        """
        if size <= 0:
            raise UsageError("a multipart upload needs at least one byte; use presign_put")
        part_size = plan_part_size(size, part_size)
        count = -(-size // part_size)
        checksums = None
        if part_checksums is not None:
            if len(part_checksums) != count:
                raise UsageError(
                    f"{count} parts of {part_size} bytes, but {len(part_checksums)} checksums"
                )
            checksums = [sha256_b64(c) if _hex_ok(c) else c for c in part_checksums]
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": self.key(digest)}
        if checksums is not None:
            kwargs["ChecksumAlgorithm"] = "SHA256"
        upload_id = self._client.create_multipart_upload(**kwargs)["UploadId"]
        return {
            "upload_id": upload_id,
            "key": self.key(digest),
            "part_size": part_size,
            "parts": self._presign_parts(
                digest, upload_id, size, part_size, list(range(1, count + 1)), checksums, expires
            ),
        }

    def resume_multipart(
        self, digest: str, upload_id: str, size: int, part_size: int, expires: int = 3600
    ) -> dict[str, Any]:
        """Fresh URLs for the parts an interrupted upload still lacks, and those it has.

        ``part_size`` is what :meth:`create_multipart` answered. Parts uploaded with a
        checksum come back with it, so they can be passed to :meth:`complete_multipart`.
        """
        count = -(-size // part_size)
        done: list[dict[str, Any]] = []
        try:
            paginator = self._client.get_paginator("list_parts")
            for page in paginator.paginate(
                Bucket=self.bucket, Key=self.key(digest), UploadId=upload_id
            ):
                for p in page.get("Parts", ()):
                    part = {"PartNumber": p["PartNumber"], "ETag": p["ETag"], "Size": p["Size"]}
                    if p.get("ChecksumSHA256"):
                        part["ChecksumSHA256"] = p["ChecksumSHA256"]
                    done.append(part)
        except Exception as exc:
            if _error_code(exc) in ("404", "NoSuchUpload"):
                raise NotFound(f"no multipart upload {upload_id} for blob {digest}") from None
            raise
        have = {p["PartNumber"] for p in done}
        missing = [n for n in range(1, count + 1) if n not in have]
        return {
            "upload_id": upload_id,
            "key": self.key(digest),
            "part_size": part_size,
            "done": done,
            "parts": self._presign_parts(
                digest, upload_id, size, part_size, missing, None, expires
            ),
        }

    def complete_multipart(
        self,
        digest: str,
        upload_id: str,
        parts: list[dict[str, Any]],
        *,
        size: int | None = None,
        verify: bool = False,
    ) -> bool:
        """Complete a presigned multipart upload; False when the blob already existed.

        Completion is conditional (``If-None-Match: *``): a stored blob is never
        replaced, and the redundant upload is aborted. With ``size``, S3 checks the
        object's total size. With ``verify``, the object is re-hashed and deleted (with
        :class:`InvalidValueError`) when its bytes do not match ``digest``.
        """
        norm = []
        for p in parts:
            number = int(p.get("PartNumber", p.get("part_number", 0)))
            etag = p.get("ETag", p.get("etag"))
            if number < 1 or not etag:
                raise UsageError(f"a part needs a PartNumber and an ETag: {p!r}")
            item: dict[str, Any] = {"PartNumber": number, "ETag": etag}
            checksum = p.get("ChecksumSHA256", p.get("checksum_sha256"))
            if checksum:
                item["ChecksumSHA256"] = checksum
            norm.append(item)
        norm.sort(key=lambda p: p["PartNumber"])
        kwargs: dict[str, Any] = {
            "Bucket": self.bucket,
            "Key": self.key(digest),
            "UploadId": upload_id,
            "MultipartUpload": {"Parts": norm},
        }
        if size is not None:
            kwargs["MpuObjectSize"] = size
        created = self._conditional_call(self._client.complete_multipart_upload, **kwargs)
        if not created:
            self._abort(self.key(digest), upload_id)
            return False
        if verify and not self.verify(digest):
            self.delete(digest)
            raise InvalidValueError(
                f"the uploaded bytes do not hash to {digest}; the object was removed",
                digest=digest,
            )
        return True

    def abort_multipart(self, digest: str, upload_id: str) -> None:
        """Abandon a multipart upload and free its parts (idempotent)."""
        try:
            self._client.abort_multipart_upload(
                Bucket=self.bucket, Key=self.key(digest), UploadId=upload_id
            )
        except Exception as exc:
            if _error_code(exc) not in ("404", "NoSuchUpload"):
                raise

    def list_multipart_uploads(self) -> list[dict[str, Any]]:
        """Unfinished multipart uploads under the prefix, oldest first.

        Each has ``key``, ``upload_id``, ``initiated`` (a datetime), ``digest`` (for an
        upload to a blob's key, else None) and ``temp`` (an upload of :meth:`put_file`).
        """
        out = []
        paginator = self._client.get_paginator("list_multipart_uploads")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self._base):
            for u in page.get("Uploads", ()):
                key = u["Key"]
                out.append(
                    {
                        "key": key,
                        "upload_id": u["UploadId"],
                        "initiated": u.get("Initiated"),
                        "digest": self._digest_of(key),
                        "temp": self._temp_started(key) is not None,
                    }
                )
        out.sort(key=lambda u: u["initiated"] or dt.datetime.min.replace(tzinfo=dt.UTC))
        return out

    def _last_activity(self, upload: dict[str, Any]) -> float:
        """When an upload last made progress: its start, or its newest part."""
        started = self._temp_started(upload["key"])
        if started is None:
            initiated = upload.get("initiated")
            started = initiated.timestamp() if initiated is not None else 0.0
        latest = started
        with contextlib.suppress(Exception):
            paginator = self._client.get_paginator("list_parts")
            for page in paginator.paginate(
                Bucket=self.bucket, Key=upload["key"], UploadId=upload["upload_id"]
            ):
                for p in page.get("Parts", ()):
                    latest = max(latest, p["LastModified"].timestamp())
        return latest

    def abort_stale_uploads(self, older_than: float, *, temp_only: bool = False) -> int:
        """Abort uploads with no progress for ``older_than`` seconds; returns how many.

        Progress is the upload's start (from the key of a :meth:`put_file` upload, else
        S3's ``Initiated``) or its newest part, so a long upload still sending parts is
        kept.
        """
        cutoff = time.time() - older_than
        aborted = 0
        for upload in self.list_multipart_uploads():
            if temp_only and not upload["temp"]:
                continue
            if self._last_activity(upload) <= cutoff:
                try:
                    self._client.abort_multipart_upload(
                        Bucket=self.bucket, Key=upload["key"], UploadId=upload["upload_id"]
                    )
                    aborted += 1
                except Exception as exc:
                    if _error_code(exc) not in ("404", "NoSuchUpload"):
                        raise
        return aborted

    # -- gc and storage stats (as LocalBlobStore) ---------------------------------------

    def clear_temp(self, older_than: float = 3600.0) -> int:
        """Remove what interrupted :meth:`put_file` calls left; returns how many.

        Temporary objects and temporary multipart uploads idle for ``older_than``
        seconds. Presigned uploads to blob keys are left to :meth:`abort_stale_uploads`
        (a client may take longer than gc's grace period to send a large file).
        """
        cutoff = time.time() - older_than
        removed = 0
        for obj in self._list("tmp/"):
            if obj["LastModified"].timestamp() <= cutoff:
                with contextlib.suppress(Exception):
                    self._client.delete_object(Bucket=self.bucket, Key=obj["Key"])
                    removed += 1
        return removed + self.abort_stale_uploads(older_than, temp_only=True)

    def orphans(self, known: set[str], older_than: float) -> Iterator[tuple[str, int]]:
        """(digest, size) of stored blobs not in ``known``, last written over
        ``older_than`` seconds ago."""
        cutoff = time.time() - older_than
        for obj in self._list():
            digest = self._digest_of(obj["Key"])
            if digest is None or digest in known:
                continue
            if obj["LastModified"].timestamp() <= cutoff:
                yield digest, int(obj["Size"])

    def physical_bytes(self) -> int:
        """Bytes of stored blobs (what the bucket holds for them, temporaries excluded)."""
        return sum(
            int(obj["Size"]) for obj in self._list() if self._digest_of(obj["Key"]) is not None
        )


__all__ = ["DEFAULT_PART_SIZE", "S3BlobStore", "plan_part_size", "sha256_b64"]

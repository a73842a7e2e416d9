"""S3BlobStore against a real S3-protocol server (moto's, in a subprocess), and the same
round trips against LocalBlobStore to show the two behave alike."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from stemma.errors import InvalidValueError, NotFound, UsageError
from stemma.storage.blobs import BlobStore, LocalBlobStore, S3BlobStore
from stemma.storage.blobs import s3 as s3mod
from tests.fixtures.s3 import S3Server, s3_server  # noqa: F401 (a fixture)

# Blob stores never touch the metadata database: one run is enough.
pytestmark = pytest.mark.sqlite_only

MiB = 1 << 20


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def b64(digest: str) -> str:
    return base64.b64encode(bytes.fromhex(digest)).decode()


def make_store(server: S3Server, prefix: str = "blobs", **kwargs: Any) -> S3BlobStore:
    bucket = server.make_bucket()
    return S3BlobStore(f"s3://{bucket}/{prefix}", **server.store_kwargs(), **kwargs)


@pytest.fixture
def s3_store(s3_server: S3Server) -> S3BlobStore:  # noqa: F811
    return make_store(s3_server)


@pytest.fixture(params=["local", "s3"])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    if request.param == "local":
        return LocalBlobStore(tmp_path / "blobs")
    return make_store(request.getfixturevalue("s3_server"))


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def temp_objects(store: S3BlobStore) -> list[str]:
    return [o["Key"] for o in store._list("tmp/")]


# -- the shared contract ------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 5 * MiB + 1])
def test_round_trip(any_store: BlobStore, tmp_path: Path, size: int) -> None:
    data = os.urandom(size)
    src = write(tmp_path / "src.bin", data)
    digest, stored = any_store.put_file(src)
    assert (digest, stored) == (sha(data), size)
    assert any_store.has(digest)
    assert any_store.size(digest) == size
    assert any_store.verify(digest)
    assert list(any_store.digests()) == [digest]
    with any_store.open(digest) as fh:
        assert fh.read() == data
    dest = tmp_path / "out" / "copy.bin"
    any_store.copy_to(digest, dest)
    assert dest.read_bytes() == data
    assert [p.name for p in dest.parent.iterdir()] == ["copy.bin"]  # no temp left over
    # Storing the same bytes again is a no-op that answers the same.
    assert any_store.put_file(src) == (digest, size)
    assert any_store.put_bytes(data) == digest
    assert list(any_store.digests()) == [digest]
    any_store.delete(digest)
    any_store.delete(digest)  # idempotent
    assert not any_store.has(digest)
    assert any_store.size(digest) is None
    assert not any_store.verify(digest)
    assert list(any_store.digests()) == []


def test_missing_blob(any_store: BlobStore, tmp_path: Path) -> None:
    digest = sha(b"never stored")
    assert not any_store.has(digest)
    assert any_store.size(digest) is None
    with pytest.raises(NotFound):
        any_store.open(digest)
    with pytest.raises(NotFound):
        any_store.copy_to(digest, tmp_path / "x")
    assert not (tmp_path / "x").exists()
    with pytest.raises(InvalidValueError):
        any_store.has("not-a-digest")


def test_known_digest_skips_reading(any_store: BlobStore, tmp_path: Path) -> None:
    data = b"checkpoint" * 1000
    digest = any_store.put_bytes(data)
    # The path does not even exist: a stored blob is answered without opening the file.
    assert any_store.put_file(tmp_path / "gone.bin", known_digest=digest) == (digest, len(data))
    # A known digest that is not stored: the file is read and stored.
    other = write(tmp_path / "other.bin", b"other bytes")
    assert any_store.put_file(other, known_digest=sha(b"other bytes")) == (sha(b"other bytes"), 11)
    assert any_store.has(sha(b"other bytes"))


def test_changed_file_is_refused(
    any_store: BlobStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file that grows after its stat (small-file path) is refused, nothing stored."""
    src = write(tmp_path / "src.bin", b"a" * 1000)
    real_stat = os.stat

    def stat_then_grow(path: Any, *args: Any, **kwargs: Any) -> os.stat_result:
        if Path(path) == src:
            with open(src, "ab") as fh:
                fh.write(b"more")
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(os, "stat", stat_then_grow)
    with pytest.raises(InvalidValueError, match="changed"):
        any_store.put_file(src)
    monkeypatch.undo()
    assert list(any_store.digests()) == []


# -- S3 specifics -------------------------------------------------------------------------


def test_multipart_round_trip_70mib(s3_store: S3BlobStore, tmp_path: Path) -> None:
    data = os.urandom(70 * MiB)
    src = write(tmp_path / "big.bin", data)
    digest, size = s3_store.put_file(src)
    assert (digest, size) == (sha(data), len(data))
    assert s3_store.size(digest) == len(data)
    assert s3_store.verify(digest)
    # Nothing of the upload is left: no temporary object, no open multipart upload.
    assert temp_objects(s3_store) == []
    assert s3_store.list_multipart_uploads() == []
    dest = tmp_path / "back.bin"
    s3_store.copy_to(digest, dest)
    assert sha(dest.read_bytes()) == digest
    with s3_store.open(digest) as fh:
        h = hashlib.sha256()
        while chunk := fh.read(3 * MiB):
            h.update(chunk)
    assert h.hexdigest() == digest
    # Stored again: the hash is found stored, the temporary upload is aborted.
    assert s3_store.put_file(src) == (digest, size)
    assert s3_store.list_multipart_uploads() == []
    assert list(s3_store.digests()) == [digest]


def test_multipart_with_part_copy(s3_server: S3Server, tmp_path: Path) -> None:  # noqa: F811
    """Objects above the single-copy limit (5 GiB on S3) are moved into place part by part."""
    store = make_store(s3_server, part_size=5 * MiB, multipart_threshold=5 * MiB)
    store.max_single_copy = 6 * MiB
    data = os.urandom(12 * MiB + 3)
    digest, _ = store.put_file(write(tmp_path / "f.bin", data))
    assert digest == sha(data)
    assert store.verify(digest)
    assert store.list_multipart_uploads() == []
    assert temp_objects(store) == []


def test_file_changing_during_multipart_upload(
    s3_server: S3Server,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = make_store(s3_server, part_size=5 * MiB, multipart_threshold=5 * MiB)
    original = os.urandom(12 * MiB)
    src = write(tmp_path / "f.bin", original)
    real_upload = store._upload_part
    calls = []

    def upload_then_modify(key: str, upload_id: str, number: int, data: bytes) -> Any:
        result = real_upload(key, upload_id, number, data)
        calls.append(number)
        if number == 1:  # someone rewrites the file while its second part is being read
            with open(src, "r+b") as fh:
                fh.seek(6 * MiB)
                fh.write(b"X" * 100)
            st = os.stat(src)
            os.utime(src, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
        return result

    monkeypatch.setattr(store, "_upload_part", upload_then_modify)
    with pytest.raises(InvalidValueError, match="changed while it was being read"):
        store.put_file(src)
    assert calls  # the upload had started
    changed = src.read_bytes()
    assert not store.has(sha(original))
    assert not store.has(sha(changed))
    assert list(store.digests()) == []
    assert temp_objects(store) == []
    assert store.list_multipart_uploads() == []  # aborted, parts freed


def test_failed_part_leaves_nothing(
    s3_server: S3Server,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = make_store(s3_server, part_size=5 * MiB, multipart_threshold=5 * MiB)
    src = write(tmp_path / "f.bin", os.urandom(16 * MiB))
    real_upload = store._upload_part

    def flaky(key: str, upload_id: str, number: int, data: bytes) -> Any:
        if number == 2:
            raise ConnectionError("network gone")
        return real_upload(key, upload_id, number, data)

    monkeypatch.setattr(store, "_upload_part", flaky)
    with pytest.raises(ConnectionError):
        store.put_file(src)
    assert list(store.digests()) == []
    assert temp_objects(store) == []
    assert store.list_multipart_uploads() == []


def test_file_growing_after_read_small_path(
    s3_store: S3BlobStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = write(tmp_path / "f.bin", b"x" * 4096)
    real = s3mod._pread

    def read_then_append(fd: int, n: int, offset: int) -> bytes:
        data = real(fd, n, offset)
        with open(src, "ab") as fh:
            fh.write(b"appended")
        return data

    monkeypatch.setattr(s3mod, "_pread", read_then_append)
    with pytest.raises(InvalidValueError):
        s3_store.put_file(src)
    assert list(s3_store.digests()) == []


def test_verify_detects_corruption(s3_server: S3Server, s3_store: S3BlobStore) -> None:  # noqa: F811
    data = b"model weights" * 100
    digest = s3_store.put_bytes(data)
    assert s3_store.verify(digest)
    s3_server.client().put_object(Bucket=s3_store.bucket, Key=s3_store.key(digest), Body=b"evil")
    assert s3_store.has(digest)
    assert not s3_store.verify(digest)
    assert list(s3_store.digests()) == [digest]


def test_layout_and_prefix(s3_server: S3Server) -> None:  # noqa: F811
    store = make_store(s3_server, prefix="team/blobs/")
    digest = store.put_bytes(b"abc")
    assert store.key(digest) == f"team/blobs/{digest[:2]}/{digest[2:]}"
    keys = [o["Key"] for o in s3_server.client().list_objects_v2(Bucket=store.bucket)["Contents"]]
    assert keys == [store.key(digest)]
    # Foreign objects under the prefix are not blobs.
    s3_server.client().put_object(Bucket=store.bucket, Key="team/blobs/README", Body=b"x")
    s3_server.client().put_object(Bucket=store.bucket, Key="team/blobs/ab/short", Body=b"x")
    assert list(store.digests()) == [digest]
    assert store.physical_bytes() == 3
    bare = S3BlobStore(f"s3://{store.bucket}", **s3_server.store_kwargs())
    assert bare.key(digest) == f"{digest[:2]}/{digest[2:]}"


@pytest.mark.parametrize("size", [0, 300_000])
def test_presigned_put_with_httpx(s3_store: S3BlobStore, size: int) -> None:
    data = os.urandom(size)
    digest = sha(data)
    info = s3_store.presign_put(digest, len(data))
    assert info["headers"]["x-amz-checksum-sha256"] == b64(digest)
    # The checksum and the length are signed: a client cannot drop or change them.
    signed = parse_qs(urlsplit(info["url"]).query)["X-Amz-SignedHeaders"][0].split(";")
    assert {"x-amz-checksum-sha256", "content-length", "host"} <= set(signed)
    r = httpx.put(info["url"], content=data, headers=info["headers"])
    assert r.status_code == 200, r.text
    assert s3_store.has(digest)
    assert s3_store.verify(digest)
    assert s3_store.size(digest) == len(data)


def test_presigned_put_with_wrong_bytes(s3_store: S3BlobStore) -> None:
    """Real S3 answers 400 BadDigest. moto 5 does not check x-amz-checksum-sha256 (its
    PutObject stores the header unverified), so here verify() is what catches it."""
    data = b"the real bytes"
    digest = sha(data)
    info = s3_store.presign_put(digest, len(data))
    r = httpx.put(info["url"], content=b"the fake bytes", headers=info["headers"])
    if r.status_code >= 400:  # an S3 that enforces the checksum
        assert not s3_store.has(digest)
    else:  # moto: accepted; the store's own re-hash refuses the object
        assert s3_store.has(digest)
        assert not s3_store.verify(digest)


def test_presigned_get_with_httpx(s3_store: S3BlobStore) -> None:
    data = os.urandom(100_000)
    digest = s3_store.put_bytes(data)
    r = httpx.get(s3_store.presign_get(digest, expires=60))
    assert r.status_code == 200
    assert r.content == data
    missing = httpx.get(s3_store.presign_get(sha(b"nope")))
    assert missing.status_code == 404


def upload_parts(info: dict[str, Any], data: bytes) -> list[dict[str, Any]]:
    parts = []
    with httpx.Client() as client:
        for part in info["parts"]:
            body = data[part["offset"] : part["offset"] + part["size"]]
            r = client.put(part["url"], content=body, headers=part["headers"])
            assert r.status_code == 200, r.text
            parts.append({"PartNumber": part["part_number"], "ETag": r.headers["etag"]})
    return parts


def test_presigned_multipart_with_httpx(s3_store: S3BlobStore) -> None:
    data = os.urandom(11 * MiB)
    digest = sha(data)
    info = s3_store.create_multipart(digest, len(data), part_size=5 * MiB)
    assert info["part_size"] == 5 * MiB
    assert [p["size"] for p in info["parts"]] == [5 * MiB, 5 * MiB, MiB]
    assert not s3_store.has(digest)  # parts are invisible until completion
    parts = upload_parts(info, data)
    assert not s3_store.has(digest)
    assert s3_store.complete_multipart(digest, info["upload_id"], parts, size=len(data))
    assert s3_store.verify(digest)
    assert s3_store.list_multipart_uploads() == []
    # A second upload of a stored blob completes as "already there" and is cleaned up.
    again = s3_store.create_multipart(digest, len(data), part_size=5 * MiB)
    assert not s3_store.complete_multipart(digest, again["upload_id"], upload_parts(again, data))
    assert s3_store.list_multipart_uploads() == []
    assert s3_store.verify(digest)


def test_presigned_multipart_with_part_checksums(s3_store: S3BlobStore) -> None:
    data = os.urandom(6 * MiB)
    digest = sha(data)
    chunks = [data[: 5 * MiB], data[5 * MiB :]]
    info = s3_store.create_multipart(
        digest, len(data), part_size=5 * MiB, part_checksums=[sha(c) for c in chunks]
    )
    for part, chunk in zip(info["parts"], chunks, strict=True):
        assert part["headers"]["x-amz-checksum-sha256"] == b64(sha(chunk))
        signed = parse_qs(urlsplit(part["url"]).query)["X-Amz-SignedHeaders"][0]
        assert "x-amz-checksum-sha256" in signed.split(";")
    parts = upload_parts(info, data)
    for p, chunk in zip(parts, chunks, strict=True):
        p["ChecksumSHA256"] = b64(sha(chunk))
    assert s3_store.complete_multipart(digest, info["upload_id"], parts, verify=True)
    assert s3_store.verify(digest)
    with pytest.raises(UsageError):
        s3_store.create_multipart(digest, len(data), part_size=5 * MiB, part_checksums=["x"])


def test_complete_multipart_verify_removes_wrong_bytes(s3_store: S3BlobStore) -> None:
    data = os.urandom(6 * MiB)
    claimed = sha(b"something else")
    info = s3_store.create_multipart(claimed, len(data), part_size=5 * MiB)
    parts = upload_parts(info, data)
    with pytest.raises(InvalidValueError):
        s3_store.complete_multipart(claimed, info["upload_id"], parts, verify=True)
    assert not s3_store.has(claimed)


def test_resume_multipart(s3_store: S3BlobStore) -> None:
    data = os.urandom(11 * MiB)
    digest = sha(data)
    info = s3_store.create_multipart(digest, len(data), part_size=5 * MiB)
    first = {**info, "parts": info["parts"][:1]}
    upload_parts(first, data)  # then the client is interrupted
    [listed] = s3_store.list_multipart_uploads()
    assert (listed["digest"], listed["upload_id"], listed["temp"]) == (
        digest,
        info["upload_id"],
        False,
    )
    resumed = s3_store.resume_multipart(digest, info["upload_id"], len(data), info["part_size"])
    assert [p["PartNumber"] for p in resumed["done"]] == [1]
    assert [p["part_number"] for p in resumed["parts"]] == [2, 3]
    rest = upload_parts(resumed, data)
    parts = [{"PartNumber": p["PartNumber"], "ETag": p["ETag"]} for p in resumed["done"]]
    assert s3_store.complete_multipart(digest, info["upload_id"], parts + rest)
    assert s3_store.verify(digest)
    s3_store.abort_multipart(digest, info["upload_id"])  # already finished: harmless
    with pytest.raises(NotFound):
        s3_store.resume_multipart(digest, "no-such-upload", len(data), info["part_size"])


def test_abort_stale_uploads(s3_store: S3BlobStore) -> None:
    data = os.urandom(6 * MiB)
    digest = sha(data)
    info = s3_store.create_multipart(digest, len(data), part_size=5 * MiB)
    upload_parts({**info, "parts": info["parts"][:1]}, data)
    # A part arrived just now: the upload is making progress and is kept.
    assert s3_store.abort_stale_uploads(older_than=3600) == 0
    assert len(s3_store.list_multipart_uploads()) == 1
    assert s3_store.abort_stale_uploads(older_than=0) == 1
    assert s3_store.list_multipart_uploads() == []
    s3_store.abort_multipart(digest, info["upload_id"])  # already gone: harmless


def test_clear_temp(s3_server: S3Server, s3_store: S3BlobStore) -> None:  # noqa: F811
    """What a killed put_file leaves: a temporary upload and a temporary object."""
    client = s3_server.client()
    two_hours_ago = int((time.time() - 7200) * 1000)
    old_key = f"blobs/tmp/{two_hours_ago}-{uuid.uuid4().hex}.part"
    client.create_multipart_upload(Bucket=s3_store.bucket, Key=old_key)
    fresh_key = s3_store._temp_key()
    client.create_multipart_upload(Bucket=s3_store.bucket, Key=fresh_key)
    client.put_object(Bucket=s3_store.bucket, Key=s3_store._temp_key(), Body=b"partial")
    digest = s3_store.put_bytes(b"a real blob")
    assert {u["temp"] for u in s3_store.list_multipart_uploads()} == {True}
    assert s3_store.clear_temp(older_than=3600) == 1  # the old upload only
    assert [u["key"] for u in s3_store.list_multipart_uploads()] == [fresh_key]
    assert len(temp_objects(s3_store)) == 1
    assert s3_store.clear_temp(older_than=0) == 2
    assert temp_objects(s3_store) == []
    assert s3_store.list_multipart_uploads() == []
    assert list(s3_store.digests()) == [digest]  # blobs are never touched


def test_orphans_and_physical_bytes(s3_store: S3BlobStore) -> None:
    kept = s3_store.put_bytes(b"referenced")
    orphan = s3_store.put_bytes(b"nobody refers to me")
    assert s3_store.physical_bytes() == len(b"referenced") + len(b"nobody refers to me")
    assert list(s3_store.orphans({kept}, older_than=0)) == [(orphan, 19)]
    assert list(s3_store.orphans(set(), older_than=3600)) == []  # too recent
    assert list(s3_store.orphans({kept, orphan}, older_than=0)) == []


def test_config_from_env(
    s3_server: S3Server,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bucket = s3_server.make_bucket()
    monkeypatch.setenv("STEMMA_S3_ENDPOINT_URL", s3_server.endpoint_url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.secret_key)
    monkeypatch.setenv("AWS_REGION", s3_server.region)
    store = S3BlobStore(f"s3://{bucket}/p")
    assert (store.endpoint_url, store.region, store.prefix) == (
        s3_server.endpoint_url,
        s3_server.region,
        "p",
    )
    digest = store.put_bytes(b"from env")
    assert store.verify(digest)
    for bad in ("file:///tmp/x", "s3:///prefix", "bucket/prefix"):
        with pytest.raises(UsageError):
            S3BlobStore(bad)
    with pytest.raises(UsageError):
        S3BlobStore(f"s3://{bucket}", addressing_style="sideways")


@pytest.mark.parametrize(
    ("size", "requested"),
    [(0, 64 * MiB), (70 * MiB, 64 * MiB), (10 * (1 << 30), MiB), (5 * (1 << 40), 64 * MiB)],
)
def test_part_size_within_s3_limits(size: int, requested: int) -> None:
    ps = s3mod.plan_part_size(size, requested)
    assert ps >= max(requested, 5 * MiB)
    assert ps % MiB == 0
    assert ps <= 5 * (1 << 30)
    assert -(-size // ps) <= 10_000


def test_part_size_refuses_oversize() -> None:
    with pytest.raises(UsageError):
        s3mod.plan_part_size(5 * (1 << 40) + 1)


def test_import_stemma_does_not_import_boto3() -> None:
    code = (
        "import sys, json, stemma, stemma.storage.blobs; "
        "print(json.dumps([m for m in ('boto3', 'botocore') if m in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []

"""A server over an S3 store (a real moto server): bytes go client <-> bucket, never
through the API server."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import stemma
from stemma.backend import reset_backends
from tests.conftest import run_python
from tests.fixtures.s3 import S3Server, s3_server  # noqa: F401 - the fixture
from tests.fixtures.server import ServerProcess

pytestmark = pytest.mark.slow


def test_artifact_bytes_bypass_the_api_server(
    s3_server: S3Server,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bucket = s3_server.make_bucket()
    env = {
        "STEMMA_STORAGE_URL": f"s3://{bucket}/blobs",
        "STEMMA_S3_ENDPOINT_URL": s3_server.endpoint_url,
        "AWS_ACCESS_KEY_ID": s3_server.access_key,
        "AWS_SECRET_ACCESS_KEY": s3_server.secret_key,
        "AWS_REGION": s3_server.region,
        # the API server refuses any body over 64 KiB, and any blob body at all: if the
        # client sent artifact bytes through it, the upload would fail
        "STEMMA_MAX_BODY_BYTES": str(64 << 10),
        "STEMMA_MAX_BLOB_BYTES": "0",
        "STEMMA_MULTIPART_THRESHOLD": str(8 << 20),  # so the 12 MiB file goes in parts
    }
    server = ServerProcess(
        tmp_path / "server",
        database_url=os.environ.get("STEMMA_DATABASE_URL"),
        extra_env=env,
        log_level="info",
    )
    server.start()
    try:
        data = tmp_path / "data"
        data.mkdir()
        (data / "small.bin").write_bytes(os.urandom(3 << 20))
        (data / "big.bin").write_bytes(os.urandom(12 << 20))
        client = {
            "STEMMA_BASE_URL": server.url,
            "STEMMA_DIR": str(tmp_path / "client"),
            "STEMMA_DATABASE_URL": "",
            "STEMMA_CACHE_DIR": str(tmp_path / "cache"),
            "STEMMA_CHUNKING": "off",  # whole files here; chunked uploads are tested below
        }
        run_python(
            f"""
            import stemma
            with stemma.init(project="s3", id="up") as run:
                art = stemma.Artifact("weights", type="model")
                art.add_dir({str(data)!r})
                run.log_artifact(art, aliases=["production"])
        """,
            env=client,
        )
        objects = {
            o["Key"]: o["Size"]
            for o in s3_server.client().list_objects_v2(Bucket=bucket).get("Contents", [])
        }
        assert sorted(objects.values()) == [3 << 20, 12 << 20]  # in the bucket, whole
        monkeypatch.setenv("STEMMA_BASE_URL", server.url)
        monkeypatch.setenv("STEMMA_CACHE_DIR", str(tmp_path / "cache2"))
        monkeypatch.delenv("STEMMA_DATABASE_URL", raising=False)
        reset_backends()
        art = stemma.Api().artifact("s3/weights:production")
        root = Path(art.download(tmp_path / "dl"))
        for name in ("small.bin", "big.bin"):
            assert (root / name).read_bytes() == (data / name).read_bytes()
        art.verify(root)
        log = server.log_path.read_text()
        assert "PUT /api/v1/blobs/" not in log  # never uploaded through the API server
        assert '"GET /api/v1/blobs/' in log and " 307" in log  # downloads were redirects
        assert " 200" not in "\n".join(
            line for line in log.splitlines() if "GET /api/v1/blobs/" in line
        )
    finally:
        server.stop()


@pytest.mark.postgresql_only  # the production setup: PostgreSQL, S3 and a server
def test_chunked_versions_bypass_the_api_server(
    s3_server: S3Server,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Large files go to the bucket as packfiles through presigned URLs, a second version
    uploads only its new chunks, and downloads are ranged reads of the packs."""
    bucket = s3_server.make_bucket("chunks")
    env = {
        "STEMMA_STORAGE_URL": f"s3://{bucket}/blobs",
        "STEMMA_S3_ENDPOINT_URL": s3_server.endpoint_url,
        "AWS_ACCESS_KEY_ID": s3_server.access_key,
        "AWS_SECRET_ACCESS_KEY": s3_server.secret_key,
        "AWS_REGION": s3_server.region,
        "STEMMA_MAX_BLOB_BYTES": "0",  # no blob body may pass through the API server
    }
    server = ServerProcess(
        tmp_path / "server",
        database_url=os.environ.get("STEMMA_DATABASE_URL"),
        extra_env=env,
        log_level="info",
    )
    server.start()
    try:
        base = os.urandom(12 << 20)
        second = base[: 5 << 20] + os.urandom(300_000) + base[5 << 20 :]
        client = {
            "STEMMA_BASE_URL": server.url,
            "STEMMA_DIR": str(tmp_path / "client"),
            "STEMMA_DATABASE_URL": "",
            "STEMMA_CACHE_DIR": str(tmp_path / "cache"),
        }

        def bucket_bytes() -> int:
            listed = s3_server.client().list_objects_v2(Bucket=bucket).get("Contents", [])
            return sum(o["Size"] for o in listed)

        sizes = []
        for i, data in enumerate((base, second)):
            (tmp_path / "model.bin").write_bytes(data)
            run_python(
                f"""
                import stemma
                with stemma.init(project="s3c", id="up{i}") as run:
                    art = stemma.Artifact("weights", type="model")
                    art.add_file({str(tmp_path / "model.bin")!r})
                    run.log_artifact(art)
            """,
                env=client,
            )
            sizes.append(bucket_bytes())
        assert (12 << 20) <= sizes[0] < (13 << 20)  # packs of v0 (random: not compressed)
        assert sizes[1] - sizes[0] < 300_000 + 4 * (256 << 10)  # v1: the insert, a few chunks
        monkeypatch.setenv("STEMMA_BASE_URL", server.url)
        monkeypatch.setenv("STEMMA_CACHE_DIR", str(tmp_path / "cache2"))
        monkeypatch.delenv("STEMMA_DATABASE_URL", raising=False)
        reset_backends()
        for version, data in (("v0", base), ("v1", second)):
            art = stemma.Api().artifact(f"s3c/weights:{version}")
            assert art.get_entry("model.bin").chunks is not None
            root = Path(art.download(tmp_path / version))
            assert (root / "model.bin").read_bytes() == data
        log = server.log_path.read_text()
        assert "PUT /api/v1/blobs/" not in log  # packs went straight to the bucket
        assert "GET /api/v1/chunks/files/" in log  # downloads asked where the chunks are
        assert '"GET /api/v1/blobs/' not in log  # and read them from the bucket
    finally:
        server.stop()


@pytest.mark.embedded_only  # the reference's bucket is read by the client itself
def test_s3_references_are_tracked_not_copied(
    s3_server: S3Server,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    api: stemma.Api,
) -> None:
    bucket = s3_server.make_bucket("refs")
    client = s3_server.client()
    client.put_object(Bucket=bucket, Key="datasets/train.csv", Body=b"a,b\n1,2\n")
    client.put_object(Bucket=bucket, Key="datasets/test.csv", Body=b"a,b\n3,4\n")
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.endpoint_url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.secret_key)
    monkeypatch.setenv("AWS_DEFAULT_REGION", s3_server.region)
    run = stemma.init(project="refs")
    art = stemma.Artifact("tables", type="dataset")
    art.add_reference(f"s3://{bucket}/datasets/")  # a prefix: one entry per object
    run.log_artifact(art)
    run.finish()
    got = api.artifact("refs/tables:v0")
    entries = {e.path: e for e in got.files()}
    assert set(entries) == {"train.csv", "test.csv"}
    assert entries["train.csv"].ref == f"s3://{bucket}/datasets/train.csv"
    assert entries["train.csv"].extra["etag"]
    assert sum(s["physical_bytes"] for s in api._backend.storage_stats()) == 0
    root = Path(got.download(tmp_path / "dl"))
    assert (root / "train.csv").read_bytes() == b"a,b\n1,2\n"
    with pytest.raises(stemma.errors.InvalidValueError, match="unsupported reference"):
        stemma.Artifact("x", type="dataset").add_reference("gs://bucket/key")

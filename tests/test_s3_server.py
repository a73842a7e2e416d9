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

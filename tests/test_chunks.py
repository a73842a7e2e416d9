"""Chunk-level deduplication: large files stored as content-defined chunks in packfiles.

Every test runs the real chunker (pyfastcdc), the real stores and, for the ``server``
variant, a real server process that checks uploaded packs and files. Most tests shrink
the chunking settings (threshold 256 KiB, chunks of ~20 KiB, packs of 1 MiB) so that
small files exercise many chunks and packs; one test keeps the defaults on 100 MiB.
"""

from __future__ import annotations

import hashlib
import os
import random
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

import stemma
from stemma.cli.main import cli
from stemma.errors import Conflict, StoreError
from stemma.storage.chunking import (
    MAGIC,
    ChunkParams,
    PackBuilder,
    read_pack_index,
    verify_pack,
)
from stemma.wire.manifest import Entry, Manifest
from tests.fixtures.s3 import S3Server, s3_server  # noqa: F401 (a fixture)

THRESHOLD = 256 << 10
AVG = 16 << 10


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STEMMA_CHUNK_THRESHOLD", str(THRESHOLD))
    monkeypatch.setenv("STEMMA_CHUNK_SIZE", str(AVG))
    monkeypatch.setenv("STEMMA_PACK_SIZE", "1MiB")


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def log_files(name: str, files: dict[str, bytes], workdir: Path) -> stemma.Artifact:
    src = workdir / f"src-{name}-{random.random()}"
    src.mkdir(parents=True)
    for path, data in files.items():
        (src / path).write_bytes(data)
    with stemma.init(project="dedup") as run:
        art = stemma.Artifact(name, type="model")
        art.add_dir(str(src))
        run.log_artifact(art)
    return art


def entries(api: stemma.Api, path: str) -> dict[str, Entry]:
    return {e.path: e for e in api.artifact(path).files()}


def stats(api: stemma.Api) -> dict[str, int]:
    (row,) = api._backend.storage_stats(None, "dedup")
    return row


def test_round_trip_of_many_sizes(small_chunks: None, tmp_path: Path, api: stemma.Api) -> None:
    rng = random.Random(1)
    sizes = [0, 1, THRESHOLD - 1, THRESHOLD, THRESHOLD + 1, 4 * AVG * 16 + 7, (3 << 20) + 5]
    files = {f"f{n}.bin": rng.randbytes(n) for n in sizes}
    log_files("sizes", files, tmp_path)
    got = entries(api, "dedup/sizes:v0")
    for path, data in files.items():
        e = got[path]
        assert e.digest == sha(data) and e.size == len(data)
        if len(data) >= THRESHOLD:
            assert e.chunks is not None and len(e.chunks) > 1
            assert sum(n for _, n in e.chunks) == len(data)
            assert all(n <= 4 * AVG for _, n in e.chunks)
        else:
            assert e.chunks is None  # small files stay whole blobs
    root = Path(api.artifact("dedup/sizes:v0").download(tmp_path / "dl"))
    for path, data in files.items():
        assert (root / path).read_bytes() == data, path
    api.artifact("dedup/sizes:v0").verify(root)


@pytest.mark.sqlite_and_server
def test_100_mib_round_trip_with_default_settings(tmp_path: Path, api: stemma.Api) -> None:
    data = os.urandom(100 << 20)
    log_files("big", {"model.bin": data}, tmp_path)
    (e,) = entries(api, "dedup/big:v0").values()
    assert e.chunks is not None
    assert 800 < len(e.chunks) < 3000  # ~80 KiB chunks on average (FastCDC avg + min)
    root = Path(api.artifact("dedup/big:v0").download(tmp_path / "dl"))
    assert sha((root / "model.bin").read_bytes()) == sha(data)


def test_bytes_inserted_at_the_start_cost_a_few_chunks(
    small_chunks: None, tmp_path: Path, api: stemma.Api
) -> None:
    base = random.Random(2).randbytes(4 << 20)
    log_files("ins", {"data.bin": base}, tmp_path)
    after_one = stats(api)["physical_bytes"]
    log_files("ins", {"data.bin": b"header v2\n" * 10 + base}, tmp_path)
    v0 = entries(api, "dedup/ins:v0")["data.bin"].chunks
    v1 = entries(api, "dedup/ins:v1")["data.bin"].chunks
    assert v0 is not None and v1 is not None and len(v0) > 100
    new = set(v1) - set(v0)
    assert len(new) <= 3, f"{len(new)} new chunks of {len(v1)}"
    row = stats(api)
    assert row["logical_bytes"] == 2 * len(base) + 100
    assert row["file_dedup_bytes"] == row["logical_bytes"]  # two distinct files
    assert row["physical_bytes"] - after_one <= 3 * 4 * AVG  # v1 stored only its new chunks
    root = Path(api.artifact("dedup/ins:v1").download(tmp_path / "dl"))
    assert (root / "data.bin").read_bytes() == b"header v2\n" * 10 + base


def test_storage_reports_three_levels(small_chunks: None, tmp_path: Path, api: stemma.Api) -> None:
    rng = random.Random(3)
    blocks = [rng.randbytes(256 << 10) for _ in range(8)]  # 2 MiB "checkpoint"
    small = b"config: 1\n"
    for v in range(3):
        if v:
            blocks[v] = rng.randbytes(256 << 10)  # one tensor of eight changes
        log_files("ckpt", {"w.bin": b"".join(blocks), "cfg.yaml": small}, tmp_path)
    row = stats(api)
    size = 8 * (256 << 10)
    assert row["versions"] == 3
    assert row["logical_bytes"] == 3 * (size + len(small))
    assert row["file_dedup_bytes"] == 3 * size + len(small)  # cfg.yaml stored once
    assert row["physical_bytes"] < 1.6 * size  # 1 + 2 * 1/8 of the weights, plus edges
    out = CliRunner().invoke(cli, ["storage"])
    assert out.exit_code == 0, out.output
    assert "file dedup" in out.output and "stored" in out.output


def test_compression_only_where_it_pays(
    small_chunks: None, tmp_path: Path, api: stemma.Api
) -> None:
    rng = random.Random(4)
    rows = "\n".join(f"{i},{rng.random():.6f},label_{i % 7}" for i in range(60_000)).encode()
    noise = rng.randbytes(len(rows))
    log_files("mixed", {"table.csv": rows}, tmp_path)
    csv_row = stats(api)
    assert csv_row["physical_bytes"] < 0.6 * len(rows)  # zstd on text
    log_files("mixed", {"table.csv": rows, "noise.bin": noise}, tmp_path)
    both = stats(api)
    added = both["physical_bytes"] - csv_row["physical_bytes"]
    assert len(noise) <= added < 1.01 * len(noise)  # stored raw, no expansion
    root = Path(api.artifact("dedup/mixed:v1").download(tmp_path / "dl"))
    assert (root / "table.csv").read_bytes() == rows
    assert (root / "noise.bin").read_bytes() == noise


@pytest.mark.embedded_only  # it damages the store's files on disk
def test_corrupted_chunk_is_detected(
    small_chunks: None, tmp_path: Path, store_dir: Path, api: stemma.Api
) -> None:
    data = random.Random(5).randbytes(1 << 20)
    log_files("bad", {"w.bin": data}, tmp_path)
    backend = api._backend
    (e,) = entries(api, "dedup/bad:v0").values()
    assert e.chunks is not None
    victim = e.chunks[len(e.chunks) // 2][0]
    with backend.engine.connect() as conn:
        from stemma.service import chunks as chunk_service

        pack, where = chunk_service.locate(conn, [victim])[victim]
    path = backend.blobs.raw.path(pack)
    path.chmod(0o644)
    raw = bytearray(path.read_bytes())
    raw[where.offset + 10] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(StoreError, match=victim):
        api.artifact("dedup/bad:v0").download(tmp_path / "dl")
    assert not (tmp_path / "dl" / "w.bin").exists()  # nothing half-written
    out = CliRunner().invoke(cli, ["artifact", "verify", "dedup/bad:v0"])
    assert out.exit_code == 1 and "w.bin" in out.output and "corrupt" in out.output


@pytest.mark.embedded_only  # gc runs in-process with the store
def test_gc_reclaims_chunks_and_repacks(
    small_chunks: None, tmp_path: Path, api: stemma.Api
) -> None:
    rng = random.Random(6)
    blocks = [rng.randbytes(128 << 10) for _ in range(16)]  # 2 MiB over two packs
    log_files("gc", {"w.bin": b"".join(blocks)}, tmp_path)
    for i in range(0, 16, 3):  # v1 keeps a third of v0's blocks
        blocks[i] = rng.randbytes(128 << 10)
    for i in range(1, 16, 3):
        blocks[i] = rng.randbytes(128 << 10)
    v1_bytes = b"".join(blocks)
    log_files("gc", {"w.bin": v1_bytes}, tmp_path)
    before = stats(api)["physical_bytes"]
    api.artifact("dedup/gc:v0").delete()
    on_disk_before = api._backend.blobs.raw.physical_bytes()
    dry = api._backend.gc(dry_run=True, grace_seconds=0)
    assert dry["chunks"] > 0
    assert api._backend.blobs.raw.physical_bytes() == on_disk_before  # nothing went
    report = api._backend.gc(grace_seconds=0, repack_below=0.5)
    assert report["chunks"] > 0 and report["chunk_bytes"] > 0
    assert (report["chunks"], report["chunk_bytes"]) == (dry["chunks"], dry["chunk_bytes"])
    assert report["repacked"] >= 1
    assert report["blobs"] >= 1  # the emptied packs went
    after = stats(api)["physical_bytes"]
    assert after < before
    raw = api._backend.blobs.raw
    on_disk = raw.physical_bytes()
    assert on_disk < 1.2 * len(v1_bytes)  # what is left is about v1
    root = Path(api.artifact("dedup/gc:v1").download(tmp_path / "dl"))
    assert (root / "w.bin").read_bytes() == v1_bytes
    again = api._backend.gc(grace_seconds=0)
    assert again["chunks"] == 0 and again["repacked"] == 0  # nothing more to do


def _race(
    api: stemma.Api, tmp_path: Path, name: str, grace: float, versions: int, rng: random.Random
) -> tuple[dict[str, bytes], list[BaseException]]:
    """Log versions that reuse chunks of deleted versions while gc runs in a loop; delete
    every other version right away. Returns the versions kept and the upload failures."""
    shared = [rng.randbytes(64 << 10) for _ in range(12)]
    for k in range(0, 12, 4):  # chunks that gc will find unreferenced
        log_files(name, {"w.bin": b"".join(shared[k : k + 4])}, tmp_path)
    for art in api.artifact_versions(None, f"dedup/{name}"):
        art.delete(delete_aliases=True)
    if grace:
        time.sleep(grace + 0.2)  # older than the grace period: fair game for gc
    stop = threading.Event()
    gc_errors: list[BaseException] = []

    def collect() -> None:
        while not stop.is_set():
            try:
                api._backend.gc(grace_seconds=grace, repack_below=0.9)
            except BaseException as exc:  # reported by the caller
                gc_errors.append(exc)
                return

    kept: dict[str, bytes] = {}
    failed: list[BaseException] = []
    collector = threading.Thread(target=collect)
    collector.start()
    try:
        for v in range(versions):
            mix = [shared[(v + k) % len(shared)] for k in range(6)] + [rng.randbytes(32 << 10)]
            data = b"".join(mix)
            try:
                art = log_files(name, {"w.bin": data}, tmp_path)
            except (Conflict, StoreError) as exc:
                failed.append(exc)
                continue
            if v % 2:
                art.delete(delete_aliases=True)
            else:
                kept[art.version] = data
    finally:
        stop.set()
        collector.join(timeout=120)
    assert not gc_errors, gc_errors
    api._backend.gc(grace_seconds=0)
    for version, data in kept.items():
        root = Path(api.artifact(f"dedup/{name}:{version}").download(tmp_path / name / version))
        assert (root / "w.bin").read_bytes() == data, version
        out = CliRunner().invoke(cli, ["artifact", "verify", f"dedup/{name}:{version}"])
        assert out.exit_code == 0, out.output
    return kept, failed


@pytest.mark.embedded_only
def test_gc_under_concurrent_upload_loses_nothing(
    small_chunks: None, tmp_path: Path, api: stemma.Api
) -> None:
    # With a grace period, uploads always succeed, even when they reuse chunks that gc
    # is condemning at that moment: the upload revives them.
    kept, failed = _race(api, tmp_path, "graced", 1.0, 10, random.Random(7))
    assert not failed, failed
    assert len(kept) == 5
    # With no grace at all gc may take an upload's fresh chunks before its commit: the
    # upload may then fail, with a clear error and nothing committed, but no committed
    # version ever loses a byte (checked inside _race).
    kept, failed = _race(api, tmp_path, "graceless", 0.0, 10, random.Random(8))
    for exc in failed:
        assert "upload" in str(exc) or "vanishing" in str(exc), exc
    assert kept or failed


@pytest.mark.server_only
def test_server_refuses_packs_and_files_that_lie(small_chunks: None, api: stemma.Api) -> None:
    backend = api._backend
    good = os.urandom(5000)
    builder = PackBuilder(1 << 20)
    builder.add(sha(b"something else"), good, len(good), 0)  # the digest lies
    body, _ = builder.finish()
    pack = backend._upload_pack(body, None)
    resp = backend.client.post("/api/v1/chunks/packs", json={"packs": [pack]})
    assert resp.status_code == 400 and "does not match its SHA-256" in resp.json()["message"]
    missing = backend._json(
        "POST", "/api/v1/chunks/missing", json={"chunks": [sha(b"something else")]}
    )
    assert missing["chunks"] == [sha(b"something else")]  # nothing was registered
    honest = PackBuilder(1 << 20)
    honest.add(sha(good), good, len(good), 0)
    body, _ = honest.finish()
    pack = backend._upload_pack(body, None)
    assert backend._json("POST", "/api/v1/chunks/packs", json={"packs": [pack]})["chunks"] == 1
    claim = {"digest": sha(b"not these bytes"), "size": len(good), "chunks": [[sha(good), 5000]]}
    resp = backend.client.post("/api/v1/chunks/files", json=claim)
    assert resp.status_code == 400 and "nothing was recorded" in resp.json()["message"]
    resp = backend.client.get(f"/api/v1/chunks/files/{sha(b'not these bytes')}")
    assert resp.status_code == 404
    lacking = {"digest": sha(good * 2), "size": 10000, "chunks": [[sha(good), 5000]] * 2}
    assert backend.client.post("/api/v1/chunks/files", json=lacking).status_code == 204
    resp = backend.client.get(f"/api/v1/blobs/{sha(good * 2)}")  # reassembled by the server
    assert resp.status_code == 200 and resp.content == good * 2


def test_manifest_versions_read_and_chunks_take_no_part_in_identity() -> None:
    chunked = Entry("a.bin", "ab" * 32, 10, chunks=(("cd" * 32, 4), ("ef" * 32, 6)))
    whole = Entry("a.bin", "ab" * 32, 10)
    assert chunked == whole
    assert Manifest([chunked]).digest() == Manifest([whole]).digest()
    back = Manifest.decode(Manifest([chunked]).encode())
    assert back.get("a.bin").chunks == chunked.chunks  # type: ignore[union-attr]
    assert Manifest.from_json(Manifest([chunked]).to_json()).get("a.bin").chunks == chunked.chunks  # type: ignore[union-attr]
    v1 = {"version": 1, "contents": {"a.bin": {"digest": "ab" * 32, "size": 10}}}
    assert Manifest.from_json(v1).get("a.bin").chunks is None  # type: ignore[union-attr]
    import zlib

    import msgpack

    old = zlib.compress(msgpack.packb({"v": 1, "rows": [["a.bin", bytes(32), 10, None, None]]}))
    assert Manifest.decode(old).get("a.bin").size == 10  # type: ignore[union-attr]


def test_pack_format_and_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    builder = PackBuilder(100)
    chunks = [os.urandom(n) for n in (1, 50, 70)]
    for c in chunks:
        builder.add(sha(c), c, len(c), 0)
    body, index = builder.finish()
    assert body.endswith(MAGIC)
    assert read_pack_index(body) == index == verify_pack(body)
    with pytest.raises(stemma.errors.InvalidValueError, match="packfile"):
        read_pack_index(body[:-1])
    monkeypatch.setenv("STEMMA_CHUNK_THRESHOLD", "8MiB")
    monkeypatch.setenv("STEMMA_CHUNK_SIZE", "128KiB")
    params = ChunkParams.from_env()
    assert (params.threshold, params.avg) == (8 << 20, 128 << 10)
    assert params.wants(8 << 20) and not params.wants((8 << 20) - 1)
    monkeypatch.setenv("STEMMA_CHUNKING", "off")
    assert not ChunkParams.from_env().wants(1 << 40)
    monkeypatch.setenv("STEMMA_CHUNKING", "sometimes")
    with pytest.raises(stemma.errors.UsageError, match="STEMMA_CHUNKING"):
        ChunkParams.from_env()
    monkeypatch.setenv("STEMMA_CHUNKING", "on")
    monkeypatch.setenv("STEMMA_CHUNK_SIZE", "lots")
    with pytest.raises(stemma.errors.UsageError, match="STEMMA_CHUNK_SIZE"):
        ChunkParams.from_env()


@pytest.mark.sqlite_only
def test_file_level_when_chunking_is_off(
    small_chunks: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, api: stemma.Api
) -> None:
    monkeypatch.setenv("STEMMA_CHUNKING", "off")
    data = os.urandom(1 << 20)
    log_files("whole", {"w.bin": data}, tmp_path)
    (e,) = entries(api, "dedup/whole:v0").values()
    assert e.chunks is None
    monkeypatch.setenv("STEMMA_CHUNKING", "on")
    log_files("whole", {"w.bin": data, "x.txt": b"x"}, tmp_path)  # same file, now chunkable
    (e,) = [x for x in entries(api, "dedup/whole:v1").values() if x.path == "w.bin"]
    assert e.chunks is None  # stored whole already: reused, not chunked again
    assert stats(api)["physical_bytes"] == len(data) + 1


def _use_bucket(s3: S3Server, monkeypatch: pytest.MonkeyPatch, name: str) -> str:
    from stemma.backend import reset_backends

    bucket = s3.make_bucket(name)
    monkeypatch.setenv("STEMMA_STORAGE_URL", f"s3://{bucket}/blobs")
    monkeypatch.setenv("STEMMA_S3_ENDPOINT_URL", s3.endpoint_url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3.secret_key)
    monkeypatch.setenv("AWS_REGION", s3.region)
    reset_backends()
    return bucket


@pytest.mark.sqlite_only
def test_100_mib_round_trip_on_an_object_store(
    s3_server: S3Server,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    bucket = _use_bucket(s3_server, monkeypatch, "big")
    data = os.urandom(100 << 20)
    log_files("big", {"model.bin": data}, tmp_path)
    objects = s3_server.client().list_objects_v2(Bucket=bucket)["Contents"]
    assert 10 <= len(objects) <= 16  # ~8 MiB packs, not ~1,300 chunk objects
    api = stemma.Api()
    root = Path(api.artifact("dedup/big:v0").download(tmp_path / "dl"))
    assert sha((root / "model.bin").read_bytes()) == sha(data)


@pytest.mark.sqlite_only
def test_chunks_on_an_object_store(
    small_chunks: None,
    s3_server: S3Server,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """The embedded store with S3 as its blob store: packs are objects, chunks are read
    with ranged GETs, a damaged pack object is caught on download and by verify."""
    bucket = _use_bucket(s3_server, monkeypatch, "chunked")
    api = stemma.Api()
    rng = random.Random(9)
    files = {f"f{n}.bin": rng.randbytes(n) for n in (0, 1, THRESHOLD, (2 << 20) + 3)}
    log_files("s3", files, tmp_path)
    objects = s3_server.client().list_objects_v2(Bucket=bucket)["Contents"]
    assert len(objects) < 8  # a few packs and the small blobs, not one object per chunk
    root = Path(api.artifact("dedup/s3:v0").download(tmp_path / "dl"))
    for path, data in files.items():
        assert (root / path).read_bytes() == data
    (e,) = [x for x in api.artifact("dedup/s3:v0").files() if x.path == f"f{(2 << 20) + 3}.bin"]
    victim = e.chunks[3][0]
    with api._backend.engine.connect() as conn:
        from stemma.service import chunks as chunk_service

        pack, where = chunk_service.locate(conn, [victim])[victim]
    key = api._backend.blobs.raw.key(pack)
    body = bytearray(s3_server.client().get_object(Bucket=bucket, Key=key)["Body"].read())
    body[where.offset + 1] ^= 0x01
    s3_server.client().put_object(Bucket=bucket, Key=key, Body=bytes(body))
    with pytest.raises(StoreError, match=victim):
        api.artifact("dedup/s3:v0").download(tmp_path / "dl2")
    out = CliRunner().invoke(cli, ["artifact", "verify", "dedup/s3:v0"])
    assert out.exit_code == 1 and "corrupt" in out.output


def test_progress_counts_every_byte_once(
    small_chunks: None, tmp_path: Path, api: stemma.Api
) -> None:
    """The progress bar of a large file advances as runs or packs are stored and ends at
    the file's size, also when half of it was stored already."""
    half = os.urandom(3 << 20)
    first = tmp_path / "first.bin"
    first.write_bytes(half + os.urandom(3 << 20))
    second = tmp_path / "second.bin"
    second.write_bytes(half + os.urandom(3 << 20))
    for path in (first, second):
        ticks: list[int] = []
        ((digest, size),) = api._backend.store_files([(path, None)], ticks.append)
        assert digest == sha(path.read_bytes()) and size == path.stat().st_size
        assert sum(ticks) == size and len(ticks) > 1


def test_a_file_changing_while_it_is_chunked_is_refused(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from stemma.storage.chunking import open_chunked

    path = tmp_path / "grows.bin"
    path.write_bytes(os.urandom(1 << 20))
    with ThreadPoolExecutor(2) as pool, open_chunked(path, ChunkParams(), pool) as cf:
        for _ in cf.runs():
            pass
        with open(path, "ab") as fh:  # a training job still writing its checkpoint
            fh.write(b"more")
        with pytest.raises(stemma.errors.InvalidValueError, match="changed while"):
            cf.finish()
    empty = tmp_path / "empty.bin"
    empty.write_bytes(b"")
    with (
        ThreadPoolExecutor(1) as pool,
        pytest.raises(stemma.errors.InvalidValueError, match="empty"),
        open_chunked(empty, ChunkParams(), pool),
    ):
        pass


@pytest.mark.sqlite_and_server
def test_a_bad_chunk_setting_fails_the_artifact_not_the_run(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, api: stemma.Api
) -> None:
    monkeypatch.setenv("STEMMA_CHUNK_SIZE", "lots")
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(5 << 20))
    with stemma.init(project="dedup") as run:
        run.log({"loss": 0.5})
        art = stemma.Artifact("bad", type="model")
        art.add_file(str(big))
        with pytest.raises(stemma.errors.UsageError, match="STEMMA_CHUNK_SIZE"):
            run.log_artifact(art)
    assert api.run(run.path).history()["loss"].tolist() == [0.5]
    assert api.artifact_collections("dedup") == []  # nothing half-written

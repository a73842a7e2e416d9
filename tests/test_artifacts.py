"""Artifacts on the embedded store: versions, dedup, aliases, immutability, lineage, diff,
download, references, retention, gc, storage accounting and the bad inputs."""

from __future__ import annotations

import datetime as dt
import itertools
import os
import threading
import time
from pathlib import Path

import pytest

import stemma
from stemma.errors import Conflict, InvalidNameError, InvalidValueError, NotFound, UsageError


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    d = tmp_path / "work"
    d.mkdir()
    monkeypatch.chdir(d)
    return d


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _dataset(root: Path, n: int = 5, tag: str = "") -> Path:
    for i in range(n):
        _write(root / f"part{i // 3}" / f"f{i}.txt", f"row {i} {tag}\n")
    return root


def test_versions_dedup_and_latest(workdir: Path, api: stemma.Api) -> None:
    model = _write(workdir / "model.pth", "weights v0")
    run = stemma.init(project="p", job_type="train")
    a0 = stemma.Artifact("bert", type="model", description="d", metadata={"f1": 0.8})
    a0.add_file(model)
    run.log_artifact(a0)
    assert (a0.name, a0.version, a0.aliases) == ("bert:v0", "v0", ["latest"])
    assert a0.qualified_name == f"{run.entity}/p/bert:v0"
    assert a0.state == "COMMITTED"
    same = stemma.Artifact("bert", type="model", metadata={"f1": 0.9})
    same.add_file(model)
    run.log_artifact(same, aliases=["best"])  # identical contents: no new version
    assert same.version == "v0"
    assert sorted(same.aliases) == ["best", "latest"]
    model.write_text("weights v1")
    a1 = stemma.Artifact("bert", type="model")
    a1.add_file(model)
    run.log_artifact(a1)
    assert a1.version == "v1"
    assert api.artifact("p/bert:latest").version == "v1"
    assert api.artifact("p/bert:best").version == "v0"
    assert [a.version for a in api.artifact_versions("model", "p/bert")] == ["v0", "v1"]
    wrong_type = stemma.Artifact("bert", type="dataset")
    wrong_type.add_file(model)
    with pytest.raises(UsageError, match="has type 'model', not 'dataset'"):
        run.log_artifact(wrong_type)
    run.finish()


def test_use_artifact_name_forms_and_errors(workdir: Path) -> None:
    _write(workdir / "m.bin", "m")
    producer = stemma.init(project="team-a/pretraining")
    art = stemma.Artifact("bert-base", type="model")
    art.add_file("m.bin")
    producer.log_artifact(art, aliases=["staging"])
    producer.finish()
    consumer = stemma.init(project="team-b/finetuning")
    for ref in (
        "team-a/pretraining/bert-base:latest",
        "team-a/pretraining/bert-base:v0",
        "team-a/pretraining/bert-base:staging",
        "team-a/pretraining/bert-base",
    ):
        assert consumer.use_artifact(ref).version == "v0"
    with pytest.raises(NotFound, match=r"no alias 'prod'.*versions: v0; aliases: latest, staging"):
        consumer.use_artifact("team-a/pretraining/bert-base:prod")
    with pytest.raises(NotFound, match="no version v9"):
        consumer.use_artifact("team-a/pretraining/bert-base:v9")
    with pytest.raises(NotFound, match="does not exist"):
        consumer.use_artifact("nothing-here")
    with pytest.raises(UsageError, match="has type 'model', not 'dataset'"):
        consumer.use_artifact("team-a/pretraining/bert-base:v0", type="dataset")
    local = stemma.init(project="team-a/pretraining")
    assert local.use_artifact("bert-base:v0").version == "v0"  # name relative to the run
    assert local.use_artifact("pretraining/bert-base:v0").version == "v0"
    path = Path(consumer.use_artifact("team-a/pretraining/bert-base:latest").download())
    assert (path / "m.bin").read_text() == "m"
    consumer.finish()
    local.finish()
    # the cross-project use is a lineage edge across projects
    used_by = stemma.Api().artifact("team-a/pretraining/bert-base:v0").used_by()
    assert {r.project for r in used_by} == {"finetuning", "pretraining"}


def test_concurrent_alias_moves_keep_one_consistent_history(workdir: Path, api: stemma.Api) -> None:
    """Several writers move one alias at once: each move sees the one before it, so the
    alias history is a single chain and the alias ends where the last move put it."""
    from stemma.backend import get_backend
    from stemma.settings import Settings
    from stemma.wire.records import ArtifactRef

    run = stemma.init(project="p")
    for i in range(6):
        a = stemma.Artifact("clf", type="model")
        with a.new_file("w.txt") as fh:
            fh.write(f"version {i}")
        run.log_artifact(a)
    run.finish()
    backend = get_backend(Settings.from_env())
    entity = api.artifact("p/clf:v0").entity
    barrier = threading.Barrier(6)
    errors: list[BaseException] = []

    def move(i: int) -> None:
        barrier.wait()
        try:
            for _ in range(5):
                backend.update_artifact(ArtifactRef(entity, "p", "clf", i), {"aliases": ["best"]})
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=move, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    history = api.alias_history("p/clf", "best")
    assert history[0]["from_version"] is None
    for prev, cur in itertools.pairwise(history):
        assert cur["from_version"] == prev["to_version"]
    final = api.artifact("p/clf:best").version
    assert final == f"v{history[-1]['to_version']}"


def test_concurrent_alias_additions_to_one_version_keep_every_alias(
    workdir: Path, api: stemma.Api
) -> None:
    """add_aliases is relative to the aliases the version has under its lock: six writers
    each adding their own alias to one version all keep theirs (a whole-list update read
    before the lock would lose some)."""
    from stemma.backend import get_backend
    from stemma.settings import Settings
    from stemma.wire.records import ArtifactRef

    with stemma.init(project="p") as run:
        a = stemma.Artifact("clf", type="model")
        with a.new_file("w.txt") as fh:
            fh.write("weights")
        run.log_artifact(a)
    backend = get_backend(Settings.from_env())
    ref = ArtifactRef(api.artifact("p/clf:v0").entity, "p", "clf", 0)
    barrier = threading.Barrier(6)
    errors: list[BaseException] = []

    def add(i: int) -> None:
        barrier.wait()
        try:
            backend.update_artifact(ref, {"add_aliases": [f"tag-{i}"]})
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=add, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert set(api.artifact("p/clf:v0").aliases) == {"latest"} | {f"tag-{i}" for i in range(6)}
    backend.update_artifact(ref, {"remove_aliases": ["tag-0", "tag-5"]})
    assert set(api.artifact("p/clf:v0").aliases) == {"latest"} | {f"tag-{i}" for i in (1, 2, 3, 4)}
    with pytest.raises(UsageError, match="not both"):
        backend.update_artifact(ref, {"aliases": ["x"], "add_aliases": ["y"]})


def test_aliases_and_their_history(workdir: Path, api: stemma.Api) -> None:
    run = stemma.init(project="p")
    for i in range(3):
        a = stemma.Artifact("clf", type="model")
        with a.new_file("w.txt") as fh:
            fh.write(f"version {i}")
        run.log_artifact(a)
    before = dt.datetime.now(dt.UTC)
    time.sleep(0.01)
    v1 = run.use_artifact("clf:v1")
    v1.aliases.append("production")
    v1.save()
    time.sleep(0.01)
    middle = dt.datetime.now(dt.UTC)
    time.sleep(0.01)
    v2 = run.use_artifact("clf:v2")
    v2.aliases.append("production")  # an alias points at one version: it moves
    v2.save()
    assert api.artifact("p/clf:production").version == "v2"
    assert "production" not in api.artifact("p/clf:v1").aliases
    assert api.artifact("p/clf:production", at=middle).version == "v1"
    with pytest.raises(NotFound, match="did not point anywhere"):
        api.artifact("p/clf:production", at=before)
    moves = [(h["from_version"], h["to_version"]) for h in api.alias_history("p/clf", "production")]
    assert moves == [(None, 1), (1, 2)]
    assert [h["to_version"] for h in api.alias_history("p/clf", "latest")] == [0, 1, 2]
    v2.aliases.remove("production")
    v2.save()
    assert api.alias_history("p/clf", "production")[-1]["to_version"] is None
    for bad, match in (("v7", "version number"), ("has space", "must match")):
        v2.aliases.append(bad)
        with pytest.raises(InvalidNameError, match=match):
            v2.save()
        v2.aliases.remove(bad)
    v1 = run.use_artifact("clf:v1")
    v1.aliases.append("latest")
    with pytest.raises(UsageError, match="latest"):
        v1.save()
    run.finish()


def test_committed_versions_are_immutable(workdir: Path, api: stemma.Api) -> None:
    _write(workdir / "f.txt", "x")
    run = stemma.init(project="p")
    art = stemma.Artifact("d", type="dataset", metadata={"samples": 10})
    art.add_file("f.txt")
    run.log_artifact(art)
    with pytest.raises(UsageError, match="immutable"):
        art.add_file("f.txt", name="g.txt")
    art.metadata["validated"] = True  # adding a key is allowed
    art.description = "checked"
    art.save()
    stored = api.artifact("p/d:v0")
    assert stored.metadata == {"samples": 10, "validated": True}
    assert stored.description == "checked"
    stored.metadata["samples"] = 11
    with pytest.raises(Conflict, match=r"immutable.*\['samples'\]"):
        stored.save()
    again = api.artifact("p/d:v0")
    del again.metadata["samples"]
    with pytest.raises(Conflict, match="immutable"):
        again.save()
    assert api.artifact("p/d:v0").metadata["samples"] == 10
    run.finish()


def test_every_version_records_its_provenance(workdir: Path) -> None:
    _write(workdir / "f.txt", "x")
    run = stemma.init(project="p")
    art = stemma.Artifact("d", type="dataset")
    art.add_file("f.txt")
    run.log_artifact(art)
    run.finish()
    got = stemma.Api().artifact("p/d:v0")
    assert got.creator["user"] and got.creator["host"]
    assert got.creator["run"] == run.path
    assert "git_commit" in got.creator
    assert got.created_at is not None
    assert got.logged_by().id == run.id


def test_download_is_cached_and_verified(workdir: Path) -> None:
    src = _dataset(workdir / "data", n=7)
    run = stemma.init(project="p")
    art = stemma.Artifact("ds", type="dataset")
    art.add_dir(src)
    run.log_artifact(art)
    got = run.use_artifact("ds:latest")
    root = Path(got.download(workdir / "out"))
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*.txt")) == sorted(
        p.relative_to(src).as_posix() for p in src.rglob("*.txt")
    )
    assert (root / "part0" / "f0.txt").read_text() == "row 0 \n"
    mtimes = {p: p.stat().st_mtime_ns for p in root.rglob("*.txt")}
    time.sleep(0.01)
    got.download(workdir / "out")  # second download: nothing copied again
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*.txt")} == mtimes
    got.verify(root)
    (root / "part0" / "f0.txt").write_text("tampered")
    (root / "extra.txt").write_text("?")
    (root / "part1" / "f3.txt").unlink()
    with pytest.raises(InvalidValueError) as err:
        got.verify(root)
    assert "changed: part0/f0.txt" in str(err.value)
    assert "missing: part1/f3.txt" in str(err.value)
    assert "extra: extra.txt" in str(err.value)
    got.download(root)  # repairs: changed and missing files are fetched again
    (root / "extra.txt").unlink()
    got.verify(root)
    assert got.get_entry("part0/f0.txt").size == len("row 0 \n")
    with pytest.raises(NotFound, match="no entry"):
        got.get_entry("nope.txt")
    run.finish()


def test_bad_entries_and_missing_files(workdir: Path) -> None:
    art = stemma.Artifact("x", type="dataset")
    with pytest.raises(NotFound, match="no such file"):
        art.add_file(workdir / "missing.bin")
    with pytest.raises(NotFound, match="no such directory"):
        art.add_dir(workdir / "missing")
    f = _write(workdir / "ok.txt", "1")
    for name, match in (("/abs/path", "absolute"), ("../up", r"'\.\.'"), ("a/../../b", r"'\.\.'")):
        with pytest.raises(InvalidValueError, match=match):
            art.add_file(f, name=name)
    with pytest.raises(UsageError, match="not a regular file"):
        art.add_file(workdir)
    art.add_file(f)
    with pytest.raises(UsageError, match="already has an entry"):
        art.add_file(f)
    with pytest.raises(InvalidNameError, match="must match"):
        stemma.Artifact("bad name!", type="dataset")
    with pytest.raises(InvalidValueError, match="cannot be stored"):
        stemma.Artifact("ok", type="dataset", metadata={"x": object()})
    with pytest.raises(InvalidValueError, match="unsupported reference scheme 'ftp'"):
        art.add_reference("ftp://host/file")


def test_file_changed_after_add_commits_nothing(workdir: Path, api: stemma.Api) -> None:
    f = _write(workdir / "f.txt", "before")
    run = stemma.init(project="p")
    art = stemma.Artifact("d", type="dataset")
    art.add_file(f)
    time.sleep(0.01)
    f.write_text("after, and longer")
    with pytest.raises(InvalidValueError, match="changed after it was added"):
        run.log_artifact(art)
    with pytest.raises(NotFound):
        api.artifact("p/d:latest")
    run.finish()


@pytest.mark.embedded_only  # a blob-store unit test
def test_file_changing_while_stored_is_detected(tmp_path: Path) -> None:
    from stemma.storage.blobs import LocalBlobStore

    store = LocalBlobStore(tmp_path / "blobs")
    big = tmp_path / "big.bin"
    with open(big, "wb") as fh:
        fh.write(os.urandom(1 << 20) * 200)

    def append_soon() -> None:
        time.sleep(0.02)
        with open(big, "ab") as fh:
            fh.write(b"late bytes")

    writer = threading.Thread(target=append_soon)
    writer.start()
    with pytest.raises(InvalidValueError, match="changed while it was being read"):
        store.put_file(big)
    writer.join()
    assert list(store.digests()) == []  # nothing left under a real name
    assert list((tmp_path / "blobs" / "tmp").iterdir()) == []


@pytest.mark.embedded_only  # it writes into the store's database
def test_crafted_manifest_cannot_escape_download_root(workdir: Path) -> None:
    from stemma.backend import get_backend
    from stemma.settings import Settings
    from stemma.wire.manifest import Entry, Manifest
    from stemma.wire.records import ArtifactCommit

    backend = get_backend(Settings.from_env())
    digest, size = backend.store_files([(_write(workdir / "f.txt", "x"), None)])[0]
    crafted = Manifest([Entry("../../escape.txt", digest, size)])
    commit = ArtifactCommit("e", "p", "evil", "dataset", None, {}, crafted, [], None, None, {})
    with pytest.raises(InvalidValueError, match=r"contains '\.\.'"):
        backend.commit_artifact(commit)
    # even if a bad manifest got into the store, download refuses to write outside root
    good = Manifest([Entry("ok.txt", digest, size)])
    backend.commit_artifact(
        ArtifactCommit("e", "p", "fine", "dataset", None, {}, good, [], None, None, {})
    )
    from sqlalchemy import update

    from stemma.storage.database import write_tx
    from stemma.storage.models import artifact_versions

    with write_tx(backend.engine) as conn:  # type: ignore[attr-defined]
        conn.execute(update(artifact_versions).values(manifest=crafted.encode()))
    art = stemma.Api().artifact("e/p/fine:v0")
    with pytest.raises(InvalidValueError, match=r"'\.\.'"):
        art.download(workdir / "root")
    assert not (workdir.parent / "escape.txt").exists()


def test_lineage_graph(workdir: Path) -> None:
    _dataset(workdir / "raw", 3)
    prep = stemma.init(project="p", job_type="preprocess")
    raw = stemma.Artifact("raw", type="dataset")
    raw.add_dir("raw")
    prep.log_artifact(raw)
    clean = stemma.Artifact("clean", type="dataset")
    with clean.new_file("c.txt") as fh:
        fh.write("clean")
    prep.use_artifact("raw:v0")
    prep.log_artifact(clean)
    prep.finish()
    train = stemma.init(project="p", job_type="train")
    train.use_artifact("clean:latest")
    model = stemma.Artifact("model", type="model")
    with model.new_file("m.bin", mode="wb") as fh:
        fh.write(b"\x00\x01")
    train.log_artifact(model)
    assert [a.name for a in train.used_artifacts()] == ["clean:v0"]
    assert [a.name for a in train.logged_artifacts()] == ["model:v0"]
    train.finish()
    api = stemma.Api()
    m = api.artifact("p/model:v0")
    graph = m.lineage(depth=3, direction="upstream")
    nodes = {n["id"] for n in graph["nodes"]}
    entity = train.entity
    assert f"artifact:{entity}/p/raw:v0" in nodes  # two run-hops up
    assert f"run:{entity}/p/{prep.id}" in nodes
    edges = {(e["source"], e["target"]) for e in graph["edges"]}
    assert (f"artifact:{entity}/p/clean:v0", f"run:{entity}/p/{train.id}") in edges
    assert (f"run:{entity}/p/{train.id}", f"artifact:{entity}/p/model:v0") in edges
    shallow = m.lineage(depth=1, direction="upstream")
    assert f"artifact:{entity}/p/raw:v0" not in {n["id"] for n in shallow["nodes"]}
    down = api.artifact("p/raw:v0").lineage(depth=3, direction="downstream")
    assert f"artifact:{entity}/p/model:v0" in {n["id"] for n in down["nodes"]}
    assert [a.name for a in api.run(f"p/{train.id}").used_artifacts()] == ["clean:v0"]
    assert [a.name for a in api.run(f"p/{train.id}").logged_artifacts()] == ["model:v0"]


def test_diff_between_versions(workdir: Path) -> None:
    d = workdir / "d"
    _write(d / "notes.txt", "line one\nline two\n")
    _write(d / "table.csv", "id,label\n1,a\n2,b\n")
    _write(d / "gone.bin", "x")
    run = stemma.init(project="p", config={"lr": 0.1, "opt": {"name": "sgd"}})
    a = stemma.Artifact("d", type="dataset", metadata={"rows": 2})
    a.add_dir(d)
    run.log_artifact(a)
    run.finish()
    _write(d / "notes.txt", "line one\nline 2\n")
    _write(d / "table.csv", "id,label\n1,a\n3,c\n")
    (d / "gone.bin").unlink()
    _write(d / "new.txt", "hello")
    run2 = stemma.init(project="p", config={"lr": 0.2, "opt": {"name": "sgd"}, "seed": 1})
    b = stemma.Artifact("d", type="dataset", metadata={"rows": 2, "fixed": True})
    b.add_dir(d)
    run2.log_artifact(b)
    run2.finish()
    from click.testing import CliRunner

    from stemma.cli.main import cli

    out = CliRunner().invoke(cli, ["artifact", "diff", "p/d:v0", "p/d:v1", "--json"])
    assert out.exit_code == 0, out.output
    import json

    diff = json.loads(out.output)
    assert [f["path"] for f in diff["files"]["added"]] == ["new.txt"]
    assert [f["path"] for f in diff["files"]["removed"]] == ["gone.bin"]
    changed = {f["path"]: f for f in diff["files"]["changed"]}
    assert "-line two" in changed["notes.txt"]["content"]["diff"]
    assert "+line 2" in changed["notes.txt"]["content"]["diff"]
    assert changed["table.csv"]["content"]["rows_added"] == ["3,c"]
    assert changed["table.csv"]["content"]["rows_removed"] == ["2,b"]
    assert diff["metadata"]["added"] == {"fixed": True}
    assert diff["config"]["changed"] == {"lr": [0.1, 0.2]}
    assert diff["config"]["added"] == {"seed": 1}
    text = CliRunner().invoke(cli, ["artifact", "diff", "p/d:v0", "d:v1"])
    assert "+ new.txt" in text.output and "- gone.bin" in text.output
    assert "~ lr: 0.1 -> 0.2" in text.output


def test_references(workdir: Path, tmp_path: Path) -> None:
    import http.server
    import socketserver

    served = tmp_path / "served"
    _write(served / "weights.bin", "remote bytes")
    handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(  # noqa: E731
        *a, directory=str(served), **k
    )
    socketserver.TCPServer.allow_reuse_address = True
    with socketserver.TCPServer(("127.0.0.1", 0), handler) as httpd:
        port = httpd.server_address[1]
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        try:
            local = _write(tmp_path / "ref" / "big.txt", "tracked not copied")
            run = stemma.init(project="p")
            art = stemma.Artifact("refs", type="dataset")
            art.add_reference(local.as_uri())
            art.add_reference(f"http://127.0.0.1:{port}/weights.bin")
            run.log_artifact(art)
            got = run.use_artifact("refs:v0")
            entries = {e.path: e for e in got.files()}
            assert entries["big.txt"].ref == local.resolve().as_uri()
            assert entries["weights.bin"].size == len("remote bytes")
            assert entries["weights.bin"].digest is not None
            root = Path(got.download(workdir / "dl"))
            assert (root / "big.txt").read_text() == "tracked not copied"
            assert (root / "weights.bin").read_text() == "remote bytes"
            stats = stemma.Api()._backend.storage_stats()
            assert sum(s["physical_bytes"] for s in stats) == 0  # nothing copied in
            local.write_text("the source changed")
            # the cache still holds the bytes as logged: the version stays reproducible
            again = Path(got.download(workdir / "dl2"))
            assert (again / "big.txt").read_text() == "tracked not copied"
            from stemma.sdk.cache import open_cache
            from stemma.settings import Settings

            open_cache(Settings.from_env().cache_dir).evict(0)  # uncached: the change shows
            with pytest.raises(InvalidValueError, match="changed since it was logged"):
                got.download(workdir / "dl3")
            run.finish()
        finally:
            httpd.shutdown()


def test_bounded_cache_evicts_least_recently_used(tmp_path: Path) -> None:
    from stemma.sdk.cache import BlobCache, parse_size

    assert parse_size("10GB") == 10 << 30
    assert parse_size("1.5m") == int(1.5 * (1 << 20))
    with pytest.raises(UsageError):
        parse_size("lots")
    cache = BlobCache(tmp_path / "c", max_bytes=25)
    d1, _ = cache.put_chunks([b"a" * 10])
    time.sleep(0.01)
    d2, _ = cache.put_chunks([b"b" * 10])
    time.sleep(0.01)
    assert cache.has(d1)  # touching d1 makes d2 the least recently used
    time.sleep(0.01)
    d3, _ = cache.put_chunks([b"c" * 10])
    assert cache.has(d1) and cache.has(d3) and not cache.has(d2)
    assert cache.usage() <= 25
    assert cache.evict(0) == (2, 20)


def test_default_ttl_applies_to_versions_logged_without_one(workdir: Path, api: stemma.Api) -> None:
    """A policy's default TTL is given to new versions logged without a TTL: the
    artifact's own policy first, then the project's; an explicit TTL wins."""
    with stemma.init(project="p") as run:
        entity = run.entity
        api._backend.set_retention(entity, "p", None, None, None, 30 * 86400.0)
        api._backend.set_retention(entity, "p", "ckpt", 3, None, 7 * 86400.0)

        def log(name: str, text: str, ttl: dt.timedelta | None = None) -> None:
            a = stemma.Artifact(name, type="model")
            with a.new_file("w.txt") as fh:
                fh.write(text)
            if ttl is not None:
                a.ttl = ttl
            run.log_artifact(a)

        log("ckpt", "a")
        log("model", "b")
        log("model", "c", dt.timedelta(days=1))
    assert api.artifact("p/ckpt:v0").ttl == dt.timedelta(days=7)
    assert api.artifact("p/model:v0").ttl == dt.timedelta(days=30)
    assert api.artifact("p/model:v1").ttl == dt.timedelta(days=1)
    policies = {p["name"]: p for p in api._backend.get_retention(entity, "p")}
    assert policies["ckpt"]["default_ttl"] == 7 * 86400.0
    assert policies["ckpt"]["keep_last"] == 3
    with pytest.raises(UsageError, match="default_ttl"):
        api._backend.set_retention(entity, "p", None, None, None, -5.0)


def test_ttl_retention_protected_and_gc(workdir: Path, api: stemma.Api) -> None:
    run = stemma.init(project="p")
    shared = _write(workdir / "shared.bin", "in every version")
    for i in range(4):
        a = stemma.Artifact("m", type="model")
        a.add_file(shared)
        with a.new_file("own.txt") as fh:
            fh.write(f"only in v{i}")
        if i == 0:
            a.ttl = stemma.util.parse_time("1s")
        run.log_artifact(a)
    v1 = run.use_artifact("m:v1")
    v1.aliases.append("production")
    v1.ttl = dt.timedelta(seconds=1)  # TTL never deletes a protected alias
    v1.save()
    api._backend.set_retention(run.entity, "p", "m", 1, None)  # keep the newest only
    time.sleep(1.1)
    report = api._backend.gc(dry_run=True, grace_seconds=0)
    assert {v["artifact"].split(":")[-1] for v in report["versions"]} == {"v0", "v2"}
    assert api.artifact("p/m:v0").state == "COMMITTED"  # dry run deletes nothing
    report = api._backend.gc(grace_seconds=0)
    reasons = {v["artifact"].split(":")[-1]: v["reason"] for v in report["versions"]}
    assert reasons == {"v0": "ttl", "v2": "retention: keep last 1"}
    assert report["blobs"] == 2  # the two "own.txt" blobs; shared.bin is still referenced
    kept = [a.version for a in api.artifact_versions(None, "p/m")]
    assert kept == ["v1", "v3"]
    for version in kept:
        root = api.artifact(f"p/m:{version}").download(workdir / version)
        assert (Path(root) / "shared.bin").read_text() == "in every version"
    with pytest.raises(Conflict, match="protected"):
        api.artifact("p/m:v1").delete(delete_aliases=True)
    stats = api._backend.storage_stats(run.entity, "p")[0]
    assert stats["versions"] == 2
    assert stats["logical_bytes"] == 2 * len("in every version") + 2 * len("only in v1")
    assert stats["physical_bytes"] == len("in every version") + 2 * len("only in v1")
    v3 = api.artifact("p/m:v3")
    v3.aliases.append("candidate")
    v3.save()
    with pytest.raises(Conflict, match="candidate"):
        v3.delete()
    v3.delete(delete_aliases=True)  # `latest` is automatic: it falls back to v1
    assert api.artifact("p/m:latest").version == "v1"
    assert api.artifact("p/m:v3").state == "DELETED"
    with pytest.raises(NotFound, match="deleted"):
        api.artifact("p/m:v3").download(workdir / "gone")
    run.finish()


@pytest.mark.embedded_only  # it corrupts a file in the store's blob directory
def test_stored_blobs_are_verified(workdir: Path) -> None:
    from click.testing import CliRunner

    from stemma.cli.main import cli

    _write(workdir / "a.txt", "alpha")
    _write(workdir / "b.txt", "beta")
    run = stemma.init(project="p")
    art = stemma.Artifact("d", type="dataset")
    art.add_file("a.txt")
    art.add_file("b.txt")
    run.log_artifact(art)
    run.finish()
    ok = CliRunner().invoke(cli, ["artifact", "verify", "p/d:v0"])
    assert ok.exit_code == 0 and "2 file(s) verified" in ok.output
    digest = stemma.Api().artifact("p/d:v0").get_entry("a.txt").digest
    blob = Path(os.environ["STEMMA_DIR"]) / "blobs" / digest[:2] / digest[2:]
    blob.chmod(0o644)
    blob.write_text("rot")
    bad = CliRunner().invoke(cli, ["artifact", "verify", "p/d:v0"])
    assert bad.exit_code == 1 and "a.txt" in bad.output and "corrupt" in bad.output


def test_artifact_cli(workdir: Path) -> None:
    from click.testing import CliRunner

    from stemma.cli.main import cli

    r = CliRunner()
    _dataset(workdir / "data", 4)
    put = r.invoke(
        cli,
        [
            "artifact",
            "put",
            "data",
            "--name",
            "p/ds",
            "--type",
            "dataset",
            "--alias",
            "staging",
            "--metadata",
            '{"rows": 4}',
        ],
    )
    assert put.exit_code == 0, put.output
    assert "ds:v0" in put.output and "staging" in put.output
    ls = r.invoke(cli, ["artifact", "ls", "p"])
    assert "ds" in ls.output and "dataset" in ls.output
    versions = r.invoke(cli, ["artifact", "ls", "p/ds"])
    assert "v0" in versions.output and "staging" in versions.output
    get = r.invoke(cli, ["artifact", "get", "p/ds:staging", "--root", "out"])
    assert get.exit_code == 0 and (workdir / "out" / "part0" / "f0.txt").exists()
    alias = r.invoke(cli, ["artifact", "alias", "p/ds:v0", "production"])
    assert "production" in alias.output
    hist = r.invoke(cli, ["artifact", "alias-history", "p/ds:production"])
    assert "production" in hist.output and "v0" in hist.output
    now = dt.datetime.now(dt.UTC).isoformat()
    at = r.invoke(cli, ["artifact", "alias-history", "p/ds:production", "--at", now])
    assert "production pointed to v0" in at.output
    lineage = r.invoke(cli, ["artifact", "lineage", "p/ds:v0"])
    assert "upload" in lineage.output
    protect = r.invoke(cli, ["artifact", "protect", "p", "staging"])
    assert "production, staging" in protect.output
    ret = r.invoke(cli, ["artifact", "retention", "p", "--keep-last", "5"])
    assert "keep last 5" in ret.output
    rm = r.invoke(cli, ["artifact", "rm", "p/ds:v0", "-y"])
    assert rm.exit_code == 1 and "aliases" in rm.output
    storage = r.invoke(cli, ["storage"])
    assert "dataset" in storage.output
    gc = r.invoke(cli, ["gc", "--dry-run", "--grace", "0s"])
    assert gc.exit_code == 0 and "would delete" in gc.output
    clean = r.invoke(cli, ["cache", "clean"])
    assert clean.exit_code == 0 and "removed" in clean.output
    missing = r.invoke(cli, ["artifact", "get", "p/none:v0"])
    assert missing.exit_code == 1 and "does not exist" in missing.output

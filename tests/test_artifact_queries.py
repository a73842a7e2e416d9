"""Artifact version queries: filters on metadata, created_at, aliases and the version
columns, ordering, pagination and artifact types, checked against a brute-force Python
evaluation over the versions read back through the plain per-artifact listing."""

from __future__ import annotations

import math
import os
import random
from pathlib import Path
from typing import Any

import pytest

import stemma
from stemma.backend import get_backend
from stemma.backend.base import Backend
from stemma.errors import NotFound, UsageError
from stemma.settings import Settings
from stemma.wire.manifest import Entry, Manifest
from stemma.wire.records import ArtifactCommit, ArtifactRecord, ArtifactRef
from tests.fixtures.mongo import MISSING, Matcher, json_path, kind

ENTITY, PROJECT = "ent", "arts"
COLLECTIONS = [
    ("resnet", "model"),
    ("bert", "model"),
    ("Tiny-Net", "model"),
    ("imagenet", "dataset"),
    ("cifar", "dataset"),
    ("eval-report", "report"),
]
N_VERSIONS = 60
DELETED = 3  # versions tombstoned after logging: 57 committed, 3 pages of 19


def _metadata(rng: random.Random, i: int) -> dict[str, Any]:
    meta: dict[str, Any] = {"epochs": rng.randint(1, 50), "seed": i}
    r = rng.random()
    if i % 13 == 5:
        meta["val_auc"] = math.nan
    elif r < 0.15:
        pass  # missing
    elif r < 0.22:
        meta["val_auc"] = "n/a"
    else:
        meta["val_auc"] = round(rng.random(), 3)
    if rng.random() < 0.8:
        meta["val/loss"] = rng.random()
    if rng.random() < 0.7:
        meta["arch"] = {"depth": rng.choice([18, 34, 50]), "name": rng.choice(["res", "vit"])}
    mixed = rng.choice([0, 1, 2.5, "a", "b", "one", True, False, None, MISSING])
    if mixed is not MISSING:
        meta["mixed"] = mixed
    meta["flag"] = rng.random() < 0.5
    r = rng.random()
    if r < 0.3:
        meta["a.b"] = rng.randint(0, 3)
    if 0.2 < r < 0.6:
        meta["a"] = {"b": rng.randint(0, 3)}
    if rng.random() < 0.3:
        meta["classes"] = ["cat", "dog"]
    return meta


def _log(backend: Backend, tmp: Path, seed: int = 11) -> None:
    rng = random.Random(seed)
    for i in range(N_VERSIONS):
        name, type_ = COLLECTIONS[i % len(COLLECTIONS)] if i < 40 else rng.choice(COLLECTIONS)
        f = tmp / f"blob-{i}.bin"
        f.write_bytes(f"version {i} ".encode() * rng.randint(1, 40))
        digest, size = backend.store_files([(f, None)])[0]
        aliases = [a for a in ("best", "staging", "prod") if rng.random() < 0.15]
        creator: dict[str, Any] = {"host": rng.choice(["gpu1", "gpu2"])}
        user = rng.choice(["alice", "bob", None, MISSING])
        if user is not MISSING:
            creator["user"] = user
        backend.commit_artifact(
            ArtifactCommit(
                ENTITY,
                PROJECT,
                name,
                type_,
                rng.choice([None, "baseline", "tuned", "Tuned again"]),
                _metadata(rng, i),
                Manifest([Entry(f"f{i % 3}.bin", digest, size)]),
                aliases,
                None,
                None,
                creator,
            )
        )
    for name in ("resnet", "cifar", "eval-report"):  # v1 of three of them
        backend.delete_artifact(ArtifactRef(ENTITY, PROJECT, name, 1), delete_aliases=True)


def _universe(backend: Backend) -> list[ArtifactRecord]:
    """Every version, deleted ones too, read through the per-artifact listing (not the
    query under test), in commit order."""
    out = [
        r
        for name, _type in COLLECTIONS
        for r in backend.list_artifact_versions(ENTITY, PROJECT, name, include_deleted=True)
    ]
    return sorted(out, key=lambda r: r.created_at)


@pytest.fixture
def logged(tmp_path: Path) -> tuple[Backend, list[ArtifactRecord]]:
    backend = get_backend(Settings.from_env())
    _log(backend, tmp_path)
    everything = _universe(backend)
    assert len(everything) == N_VERSIONS
    assert sum(r.state == "deleted" for r in everything) == DELETED
    return backend, everything


# ------------------------------------------------------------ brute force


_COLUMNS = {
    "name": "name",
    "type": "type",
    "state": "state",
    "description": "description",
    "digest": "digest",
    "version": "version",
    "size": "size",
    "file_count": "file_count",
    "created_at": "created_at",
}


def _lookup(rec: ArtifactRecord, field: str) -> Any:
    if field in _COLUMNS:
        return getattr(rec, _COLUMNS[field])
    if field in ("user", "username"):
        return rec.creator.get("user", MISSING)
    head, _, rest = field.partition(".")
    return json_path(rec.metadata if head == "metadata" else rec.creator, rest)


brute = Matcher(_lookup, frozenset(_COLUMNS), "aliases", lambda rec: rec.aliases).matches


def _key(rec: ArtifactRecord) -> tuple[str, int]:
    return rec.name, rec.version


def _cases(everything: list[ArtifactRecord]) -> list[dict[str, Any]]:
    times = [r.created_at for r in everything]
    return [
        {"metadata.val_auc": {"$gt": 0.5}},
        {"metadata.val_auc": {"$gte": 0.2, "$lt": 0.7}},
        {"metadata.val_auc": {"$exists": False}},
        {"metadata.val_auc": {"$exists": True}},
        {"metadata.val_auc": {"$ne": 0.5}},
        {"metadata.val_auc": {"$not": {"$gt": 0.5}}},
        {"metadata.val_auc": "n/a"},
        {"metadata.val_auc": {"$lt": 1e300}},
        {"metadata.val/loss": {"$lt": 0.3}},
        {"metadata.epochs": {"$in": [1, 2, 3, 10, 20, 30, 40, 50]}},
        {"metadata.epochs": {"$gte": 25}, "metadata.flag": True},
        {"metadata.arch.depth": 50},
        {"metadata.arch.name": {"$regex": "^v"}},
        {"metadata.arch": {"$exists": False}},
        {"metadata.mixed": {"$gt": 0.5}},
        {"metadata.mixed": {"$lte": "b"}},
        {"metadata.mixed": None},
        {"metadata.mixed": {"$nin": [0, "a", True]}},
        {"metadata.flag": {"$ne": True}},
        {"metadata.a.b": {"$gte": 2}},
        {"metadata.classes": {"$exists": True}},
        {"metadata.classes": "cat"},
        {"created_at": {"$gte": times[20].isoformat(), "$lt": times[40].isoformat()}},
        {"created_at": {"$lte": times[9]}},
        {"created_at": {"$gt": times[50].isoformat().replace("+00:00", "Z")}},
        {"version": {"$gte": 3}},
        {"version": 0},
        {"version": {"$in": [1, 2]}, "type": "model"},
        {"size": {"$gt": 200}},
        {"file_count": 1, "size": {"$lte": 100}},
        {"aliases": "best"},
        {"aliases": "latest"},
        {"aliases": {"$in": ["prod", "staging"]}},
        {"aliases": {"$nin": ["latest"]}},
        {"aliases": {"$regex": "^st"}},
        {"state": "deleted"},
        {"state": {"$ne": "committed"}},
        {"type": {"$in": ["dataset", "report"]}},
        {"name": {"$regex": "net"}},
        {"name": {"$gte": "c", "$lt": "j"}},
        {"name": {"$lt": "a"}},
        {"description": None},
        {"description": {"$exists": True}},
        {"description": {"$gt": "T"}},
        {"user": "alice"},
        {"user": None},
        {"username": {"$exists": False}},
        {"creator.user": {"$in": ["bob", None]}},
        {"creator.host": "gpu1", "type": "model"},
        {"$or": [{"aliases": "best"}, {"metadata.val_auc": {"$gt": 0.9}}]},
        {"$and": [{"type": "model"}, {"$not": {"metadata.flag": True}}]},
        {"$nor": [{"type": "model"}, {"version": 0}]},
    ]


def test_filter_cases_match_brute_force(logged: tuple[Backend, list[ArtifactRecord]]) -> None:
    backend, everything = logged
    cases = _cases(everything)
    assert len(cases) >= 40
    for doc in cases:
        expected = sorted(_key(r) for r in everything if brute(r, doc))
        got = backend.query_artifact_versions(
            ENTITY, PROJECT, filters=doc, limit=None, include_deleted=True
        )
        assert sorted(_key(r) for r in got) == expected, doc
        count = backend.count_artifact_versions(ENTITY, PROJECT, filters=doc, include_deleted=True)
        assert count == len(expected), doc
        # without include_deleted, the same minus the tombstones
        live = sorted(_key(r) for r in everything if brute(r, doc) and r.state == "committed")
        got_live = backend.query_artifact_versions(ENTITY, PROJECT, filters=doc, limit=None)
        assert sorted(_key(r) for r in got_live) == live, doc
    # the cases are not vacuous: each matches some versions and misses others, mostly
    sizes = [sum(brute(r, doc) for r in everything) for doc in cases]
    assert sum(0 < n < N_VERSIONS for n in sizes) >= len(cases) - 3


def test_type_and_name_narrow_the_query(logged: tuple[Backend, list[ArtifactRecord]]) -> None:
    backend, everything = logged
    doc = {"metadata.epochs": {"$gt": 10}}
    for name, type_ in COLLECTIONS:
        got = backend.query_artifact_versions(
            ENTITY, PROJECT, type_=type_, name=name, filters=doc, order="version", limit=None
        )
        want = [
            r.version
            for r in everything
            if r.name == name and r.state == "committed" and brute(r, doc)
        ]
        assert [r.version for r in got] == sorted(want)
        # the type must match the artifact's, else nothing
        other = "report" if type_ != "report" else "model"
        assert backend.query_artifact_versions(ENTITY, PROJECT, type_=other, name=name) == []
    models = backend.query_artifact_versions(ENTITY, PROJECT, type_="model", limit=None)
    assert {r.name for r in models} == {"resnet", "bert", "Tiny-Net"}
    with pytest.raises(NotFound, match="no-such"):
        backend.query_artifact_versions(ENTITY, PROJECT, name="no-such")
    with pytest.raises(NotFound, match="no-such"):
        backend.count_artifact_versions(ENTITY, PROJECT, name="no-such")
    # records carry what the per-artifact listing says, aliases included
    by_key = {_key(r): r for r in everything}
    for r in backend.query_artifact_versions(ENTITY, PROJECT, limit=None, include_deleted=True):
        ref = by_key[_key(r)]
        assert (r.type, r.digest, r.aliases, r.state, r.size) == (
            ref.type,
            ref.digest,
            ref.aliases,
            ref.state,
            ref.size,
        )
        assert r.created_at == ref.created_at
        assert r.manifest is None


def _order_key(value: Any) -> tuple[int, Any]:
    k = kind(value)
    if k == "number":
        return 0, value
    if k == "string":
        return 1, value
    if k == "boolean":
        return 2, int(value)
    raise AssertionError(value)


def _brute_order(everything: list[ArtifactRecord], order: str) -> list[tuple[str, int]]:
    """Commit order stands in for the id that breaks ties (both follow the commits)."""
    desc = order.startswith("-")
    field = order.lstrip("+-")
    live = [r for r in everything if r.state == "committed"]
    seq = {id(r): i for i, r in enumerate(live)}
    if field in _COLUMNS:
        present = [r for r in live if _lookup(r, field) is not None]
        missing = [r for r in live if _lookup(r, field) is None]
        present.sort(key=lambda r: (_lookup(r, field), seq[id(r)]), reverse=desc)
    else:
        kinds = ("number", "string", "boolean")
        present = [r for r in live if kind(_lookup(r, field)) in kinds]
        missing = [r for r in live if kind(_lookup(r, field)) not in kinds]
        present.sort(key=lambda r: (_order_key(_lookup(r, field)), seq[id(r)]), reverse=desc)
    missing.sort(key=lambda r: seq[id(r)], reverse=desc)
    return [_key(r) for r in present + missing]


@pytest.mark.parametrize(
    "order",
    [
        "created_at",
        "-created_at",
        "version",
        "-version",
        "+size",
        "name",
        "-name",
        "-description",
        "metadata.val_auc",
        "-metadata.val_auc",
        "metadata.mixed",
        "-metadata.a.b",
        "metadata.val/loss",
        "-user",
    ],
)
def test_order(logged: tuple[Backend, list[ArtifactRecord]], order: str) -> None:
    backend, everything = logged
    got = backend.query_artifact_versions(ENTITY, PROJECT, order=order, limit=None)
    assert [_key(r) for r in got] == _brute_order(everything, order)


def test_pages_of_the_public_api(
    logged: tuple[Backend, list[ArtifactRecord]], monkeypatch: pytest.MonkeyPatch
) -> None:
    _backend, everything = logged
    api = stemma.Api()
    live = N_VERSIONS - DELETED
    want = _brute_order(everything, "-created_at")
    assert len(want) == live == 57
    calls: list[tuple[int, int | None]] = []
    for per_page, pages in ((1, 58), (19, 4), (56, 2), (57, 2), (58, 1), (1000, 1)):
        arts = api.artifacts(project=f"{ENTITY}/{PROJECT}", per_page=per_page)
        original = arts._backend.query_artifact_versions

        def counting(*args: Any, original: Any = original, **kwargs: Any) -> Any:
            calls.append((kwargs["offset"], kwargs["limit"]))
            return original(*args, **kwargs)

        calls.clear()
        with monkeypatch.context() as m:
            m.setattr(arts._backend, "query_artifact_versions", counting)
            got = [(a._record.name, a._record.version) for a in arts]
        assert got == want, per_page
        assert len(calls) == pages, (per_page, calls)
        assert calls[-1][0] == (pages - 1) * per_page
        assert len(arts) == live
    arts = api.artifacts(project=f"{ENTITY}/{PROJECT}", per_page=7)
    assert (arts[0]._record.name, arts[0]._record.version) == want[0]
    assert (arts[-1]._record.name, arts[-1]._record.version) == want[-1]
    assert (arts[56]._record.name, arts[56]._record.version) == want[56]
    assert [(a._record.name, a._record.version) for a in arts[5:9]] == want[5:9]
    with pytest.raises(IndexError):
        arts[57]
    with pytest.raises(IndexError):
        arts[-58]
    # filters and order together, with the type
    doc = {"metadata.val_auc": {"$gt": 0.3}}
    best = api.artifacts(
        "model", filters=doc, order="-metadata.val_auc", project=f"{ENTITY}/{PROJECT}"
    )
    expected = [
        k
        for k in _brute_order(everything, "-metadata.val_auc")
        if any(_key(r) == k and r.type == "model" and brute(r, doc) for r in everything)
    ]
    assert [(a._record.name, a._record.version) for a in best] == expected
    assert len(best) == len(expected) > 0
    assert all(a.type == "model" and a.metadata["val_auc"] > 0.3 for a in best)
    # an empty result: no page but the first, and len() 0
    assert list(api.artifacts(project=f"{ENTITY}/{PROJECT}", filters={"version": 99})) == []
    assert len(api.artifacts(project=f"{ENTITY}/{PROJECT}", filters={"version": 99})) == 0


def test_one_artifact_as_before(logged: tuple[Backend, list[ArtifactRecord]]) -> None:
    _backend, everything = logged
    api = stemma.Api()
    for name, type_ in COLLECTIONS:
        want = sorted(r.version for r in everything if r.name == name and r.state == "committed")
        path = f"{ENTITY}/{PROJECT}/{name}"
        assert [a.version for a in api.artifacts(type_name=type_, name=path)] == [
            f"v{v}" for v in want
        ]
        assert [a.version for a in api.artifacts(None, path, 2)] == [f"v{v}" for v in want]
        assert [a.version for a in api.artifact_versions(type_, path)] == [f"v{v}" for v in want]
        assert len(api.artifacts(type_, path)) == len(want)
        newest = api.artifacts(type_, path, order="-version")[0]
        assert newest.version == f"v{want[-1]}" and "latest" in newest.aliases
    with pytest.raises(NotFound):
        list(api.artifacts("model", f"{ENTITY}/{PROJECT}/no-such"))
    with pytest.raises(UsageError, match="not both"):
        api.artifacts("model", f"{ENTITY}/{PROJECT}/bert", project=f"{ENTITY}/{PROJECT}")


def test_artifact_types(logged: tuple[Backend, list[ArtifactRecord]]) -> None:
    backend, everything = logged
    want = []
    for type_ in sorted({t for _n, t in COLLECTIONS}):
        names = {n for n, t in COLLECTIONS if t == type_}
        versions = sum(r.type == type_ and r.state == "committed" for r in everything)
        want.append({"type": type_, "collections": len(names), "versions": versions})
    assert backend.artifact_types(ENTITY, PROJECT) == want
    assert stemma.Api().artifact_types(f"{ENTITY}/{PROJECT}") == want
    assert backend.artifact_types(ENTITY, "empty-project") == []
    assert backend.query_artifact_versions(ENTITY, "empty-project") == []
    assert backend.count_artifact_versions(ENTITY, "empty-project") == 0


BAD = [
    ({"metadata.x": {"$foo": 1}}, "'$foo'"),
    ({"colour": "red"}, "'colour'"),
    ({"tags": "x"}, "'tags'"),
    ({"config.lr": 1}, "'config.lr'"),
    ({"metadata..x": 1}, "'metadata..x'"),
    ({"metadata": 1}, "'metadata'"),
    ({"version": "v3"}, "'$eq': 'v3'"),
    ({"version": True}, "'$eq': True"),
    ({"size": {"$gt": None}}, "'$gt': None"),
    ({"size": {"$regex": "1"}}, "'$regex': '1'"),
    ({"aliases": {"$gt": "a"}}, "'$gt': 'a'"),
    ({"aliases": {"$exists": True}}, "'$exists': True"),
    ({"aliases": 3}, "'$eq': 3"),
    ({"created_at": {"$gt": "last week"}}, "'last week'"),
    ({"name": 3}, "'$eq': 3"),
    ({"metadata.auc": {"$in": 0.5}}, "'$in': 0.5"),
    ({"metadata.auc": {"$eq": math.inf}}, "inf"),
    ({"$or": []}, "'$or': []"),
]


@pytest.mark.parametrize(("doc", "quoted"), BAD, ids=[str(i) for i in range(len(BAD))])
def test_bad_filters_are_usage_errors_quoting_the_part(doc: dict[str, Any], quoted: str) -> None:
    api = stemma.Api()
    with pytest.raises(UsageError) as err:
        api.artifacts(project=f"{ENTITY}/{PROJECT}", filters=doc)
    assert quoted in str(err.value)
    # the backend refuses it too (over HTTP: a 400 usage_error from the server)
    b = get_backend(Settings.from_env())
    with pytest.raises(UsageError) as err2:
        b.count_artifact_versions(ENTITY, PROJECT, filters=doc)
    assert quoted in str(err2.value)
    with pytest.raises(UsageError) as err3:
        b.query_artifact_versions(ENTITY, PROJECT, filters=doc)
    assert quoted in str(err3.value)


def test_bad_orders_are_usage_errors() -> None:
    api = stemma.Api()
    b = get_backend(Settings.from_env())
    for order, quoted in (("colour", "'colour'"), ("-aliases", "'-aliases'"), ("metadata.", "")):
        with pytest.raises(UsageError, match="cannot order artifact versions") as err:
            api.artifacts(project=f"{ENTITY}/{PROJECT}", order=order)
        assert quoted in str(err.value)
        with pytest.raises(UsageError, match="cannot order artifact versions"):
            b.query_artifact_versions(ENTITY, PROJECT, order=order)
    with pytest.raises(UsageError, match="per_page"):
        api.artifacts(project=f"{ENTITY}/{PROJECT}", per_page=0)
    with pytest.raises(UsageError, match="filters must be a dict"):
        api.artifacts(project=f"{ENTITY}/{PROJECT}", filters=[1])  # type: ignore[arg-type]


INJECTIONS: list[dict[str, Any]] = [
    {"metadata.a'); DROP TABLE artifact_versions; --": 1},
    {"metadata.a'); DROP TABLE artifact_versions; --": {"$exists": False}},
    {"metadata.val_auc": {"$gt": "' OR 1=1"}},
    {"name": "' OR 1=1 --"},
    {"description": {"$regex": "' OR 1=1"}},
    {"aliases": "x'); DROP TABLE artifact_aliases; --"},
    {"aliases": {"$in": ["']'", "\\"]}},
    {"creator.$.x') OR 1=1 --": {"$ne": 1}},
]


def test_injection_attempts_are_just_values(
    logged: tuple[Backend, list[ArtifactRecord]],
) -> None:
    backend, everything = logged
    live = N_VERSIONS - DELETED
    for doc in INJECTIONS:
        expected = sorted(_key(r) for r in everything if r.state == "committed" and brute(r, doc))
        got = backend.query_artifact_versions(ENTITY, PROJECT, filters=doc, limit=None)
        assert sorted(_key(r) for r in got) == expected, doc
    assert backend.count_artifact_versions(ENTITY, PROJECT, filters=INJECTIONS[0]) == 0
    assert backend.count_artifact_versions(ENTITY, PROJECT, filters=INJECTIONS[1]) == live
    assert backend.count_artifact_versions(ENTITY, PROJECT) == live
    assert len(_universe(backend)) == N_VERSIONS


@pytest.mark.sqlite_only
def test_keys_and_values_are_bound_never_in_the_sql_text() -> None:
    from sqlalchemy import select
    from sqlalchemy.dialects import postgresql, sqlite

    from stemma.service.filters import ARTIFACT_TARGET, compile_filters
    from stemma.storage.models import artifact_versions

    for doc in INJECTIONS:
        for name, dialect in (("sqlite", sqlite.dialect()), ("postgresql", postgresql.dialect())):
            where = compile_filters(doc, name, ARTIFACT_TARGET)
            sql = str(select(artifact_versions.c.id).where(where).compile(dialect=dialect))
            for bad in ("DROP", "1=1", "OR '", "']'", "x')"):
                assert bad not in sql, (doc, sql)


@pytest.mark.server_only  # the HTTP parameter exists on the server only
def test_malformed_filters_parameter_is_a_400() -> None:
    import httpx

    settings = Settings.from_env()
    base = f"{settings.base_url}/api/v1/projects/{ENTITY}/{PROJECT}/artifact-versions"
    headers = {"Authorization": f"Bearer {settings.api_key}"} if settings.api_key else {}
    for url in (base, f"{base}/count"):
        for raw in ("{not json", "[1, 2]", '{"version": {"$bogus": 1}}', '{"metadata..x": 1}'):
            resp = httpx.get(url, params={"filters": raw}, headers=headers)
            assert resp.status_code == 400, (raw, resp.text)
            assert resp.json()["code"] == "usage_error"
    resp = httpx.get(base, params={"order": "-colour"}, headers=headers)
    assert resp.status_code == 400 and "colour" in resp.json()["message"]


@pytest.mark.embedded_only
def test_readers_query_outsiders_get_not_found(store_dir: Path, tmp_path: Path) -> None:
    from tests.fixtures.accounts import as_user, make_user, open_store
    from tests.test_access import log_artifact

    store = open_store(store_dir, os.environ.get("STEMMA_DATABASE_URL"))
    for n in ("ann", "vic", "out"):
        make_user(store, f"{n}@example.com")
    ann = as_user(store, "ann")
    ann.create_team("acme")
    ann.add_member("acme", "vic@example.com", "viewer")
    log_artifact(ann, tmp_path, "acme/vision/net", "v0", ["staging"])
    log_artifact(ann, tmp_path, "acme/vision/net", "v1")
    vic, out = as_user(store, "vic"), as_user(store, "out")
    got = vic.query_artifact_versions("acme", "vision", filters={"aliases": "staging"})
    assert [(r.name, r.version) for r in got] == [("net", 0)]
    assert vic.count_artifact_versions("acme", "vision", type_="model") == 2
    assert vic.artifact_types("acme", "vision") == [
        {"type": "model", "collections": 1, "versions": 2}
    ]
    for call in (
        lambda: out.query_artifact_versions("acme", "vision"),
        lambda: out.query_artifact_versions("acme", "vision", name="net"),
        lambda: out.count_artifact_versions("acme", "vision", filters={"version": 0}),
        lambda: out.artifact_types("acme", "vision"),
    ):
        with pytest.raises(NotFound) as exc:
            call()
        assert "no project or entity 'acme/vision'" in str(exc.value)
    # a bad filter from an outsider says nothing about the project either
    with pytest.raises(NotFound):
        out.query_artifact_versions("acme", "vision", filters={"version": "v0"})
    store.close()

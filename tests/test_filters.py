"""Run filters (MongoDB-style, compiled to SQL) and ordering by config/summary keys,
checked against a brute-force Python evaluation over the same runs."""

from __future__ import annotations

import datetime as dt
import math
import random
from typing import Any

import pytest

import stemma
from stemma.backend import get_backend
from stemma.backend.base import Backend
from stemma.errors import UsageError
from stemma.settings import Settings
from stemma.wire.records import RunRef
from stemma.wire.values import to_storable
from tests.fixtures.mongo import MISSING, Matcher, json_path, kind

ENTITY, PROJECT = "ent", "filt"
N_RUNS = 300  # the runs most tests log
N_TABLE_RUNS = 2000  # the runs the filter table is checked on
BASE = 1_750_000_000  # 2025-06-15, a whole second: created_at boundaries are exact
STATES = ["finished", "failed", "crashed", "running"]
TAGS = ["baseline", "sweep", "prod", "a'b", "x y"]


def _make_runs(seed: int = 7) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out = []
    for i in range(N_TABLE_RUNS):
        config: dict[str, Any] = {
            "lr": rng.choice([0.1, 0.01, 0.001, 1e-4, 1, 0.05]),
            "flag": rng.choice([True, False]),
            "seed": i,
        }
        if rng.random() < 0.7:
            config["layers"] = rng.randint(1, 5)
        if rng.random() < 0.8:
            config["opt"] = {"name": rng.choice(["adam", "sgd", "adamw"]), "beta": rng.random()}
        mixed = rng.choice([0, 1, 2, 3.5, "a", "b", "c", "one", True, False, None, MISSING])
        if mixed is not MISSING:
            config["mixed"] = mixed
        # the flat key "a.b" and the nested a -> b: the flat one wins when present
        r = rng.random()
        if r < 0.3:
            config["a.b"] = rng.randint(0, 3)
        if 0.2 < r < 0.6:
            config["a"] = {"b": rng.randint(0, 3)}
        if i % 50 == 7:
            config["nanval"] = math.nan
        summary: dict[str, Any] = {"val/loss": rng.random(), "best": rng.randint(0, 5), "epoch": i}
        if rng.random() < 0.75:
            summary["acc"] = round(rng.random(), 3)
        summary["loss"] = math.nan if i % 40 == 3 else (math.inf if i % 61 == 5 else rng.random())
        out.append(
            {
                "run_id": f"r{i:03d}",
                "name": f"run-{i % 37}",
                "state": STATES[i % 4] if rng.random() < 0.8 else rng.choice(STATES),
                "group": rng.choice(["g1", "g2", None]),
                "job_type": rng.choice(["train", "eval", None]),
                "user": rng.choice(["alice", "bob", None]),
                "tags": rng.sample(TAGS, rng.randint(0, 3)),
                "created_at": BASE + i * 3600,
                "config": config,
                "summary": summary,
            }
        )
    return out


TABLE_RUNS = _make_runs()
RUNS = TABLE_RUNS[:N_RUNS]


def _log(backend: Backend, runs: list[dict[str, Any]], project: str = PROJECT) -> None:
    for r in runs:
        events: list[dict[str, Any]] = [
            {
                "t": "run",
                "entity": ENTITY,
                "project": project,
                "run_id": r["run_id"],
                "name": r["name"],
                "config": to_storable(r["config"]),
                "tags": r["tags"],
                "group": r["group"],
                "job_type": r["job_type"],
                "user": r["user"],
                "created_at": float(r["created_at"]),
            },
            {"t": "summary", "set": to_storable(r["summary"])},
        ]
        if r["state"] != "running":
            events.append({"t": "finish", "state": r["state"], "exit_code": 0})
        backend.apply(RunRef(ENTITY, project, r["run_id"]), "s", 0, 10, events)


@pytest.fixture
def backend() -> Backend:
    b = get_backend(Settings.from_env())
    _log(b, RUNS)
    return b


# ------------------------------------------------------------ brute force


_COLUMNS = {
    "state": "state",
    "name": "name",
    "display_name": "name",
    "group": "group",
    "jobType": "job_type",
    "job_type": "job_type",
    "user": "user",
    "username": "user",
    "created_at": "created_at",
}


def _lookup(run: dict[str, Any], field: str) -> Any:
    if field in _COLUMNS:
        value = run[_COLUMNS[field]]
        if field == "created_at":
            return dt.datetime.fromtimestamp(value, dt.UTC)
        return value
    head, _, rest = field.partition(".")
    return json_path(run["config"] if head == "config" else run["summary"], rest)


brute = Matcher(_lookup, frozenset(_COLUMNS), "tags", lambda run: run["tags"]).matches


def _iso(i: int) -> str:
    return dt.datetime.fromtimestamp(BASE + i * 3600, dt.UTC).isoformat()


CASES: list[dict[str, Any]] = [
    {"state": "finished"},
    {"state": {"$ne": "finished"}},
    {"state": {"$in": ["failed", "crashed"]}},
    {"state": {"$nin": ["failed", "crashed"]}},
    {"config.lr": {"$gt": 0.005}},
    {"config.lr": {"$gte": 0.01, "$lte": 0.1}},
    {"config.lr": 0.1},
    {"config.lr": {"$not": {"$gt": 0.01}}},
    {"config.layers": {"$lt": 3}},
    {"config.layers": {"$ne": 3}},
    {"config.layers": 2.0},
    {"config.layers": {"$exists": False}},
    {"config.layers": {"$exists": True}, "config.flag": False},
    {"config.opt.name": "adam"},
    {"config.opt.name": {"$regex": "^adam"}},
    {"config.opt.beta": {"$gt": 0.9}},
    {"config.opt": {"$exists": False}},
    {"config.flag": True},
    {"config.flag": {"$ne": True}},
    {"config.flag": {"$gt": False}},
    {"config.mixed": {"$gt": 0.5}},
    {"config.mixed": {"$lte": "b"}},
    {"config.mixed": None},
    {"config.mixed": {"$ne": None}},
    {"config.mixed": {"$in": [1, "one", False, None]}},
    {"config.mixed": {"$nin": [0, "a", True]}},
    {"config.a.b": {"$gte": 2}},
    {"config.a.b": 0},
    {"config.nanval": {"$exists": True}},
    {"config.nanval": {"$lt": 1e300}},
    {"config.seed": {"$gte": 100, "$lt": 120}},
    {"summary_metrics.val/loss": {"$lt": 0.25}},
    {"summary.loss": {"$gt": 0.5}},
    {"summary_metrics.loss": {"$lte": 1e308}},
    {"summary_metrics.loss": {"$ne": 0.5}},
    {"summary_metrics.acc": {"$exists": False}},
    {"summary_metrics.best": {"$in": [1, 2, 3]}},
    {"tags": "baseline"},
    {"tags": "a'b"},
    {"tags": {"$in": ["prod", "x y"]}},
    {"tags": {"$nin": ["sweep"]}},
    {"tags": {"$ne": "baseline"}},
    {"tags": {"$regex": "^x"}},
    {"created_at": {"$gte": _iso(50), "$lt": _iso(80)}},
    {"created_at": {"$lte": dt.datetime.fromtimestamp(BASE + 20 * 3600, dt.UTC)}},
    {"created_at": {"$gt": _iso(290).replace("+00:00", "Z")}},
    {"$or": [{"group": "g1"}, {"jobType": "eval"}]},
    {"$and": [{"$or": [{"user": "alice"}, {"tags": "prod"}]}, {"config.lr": {"$lt": 0.05}}]},
    {"$nor": [{"state": "finished"}, {"config.flag": True}]},
    {"$not": {"group": "g2"}},
    {"name": {"$regex": "run-1[0-9]$"}},
    {"display_name": {"$regex": "^run-3"}, "user": "alice"},
    {"group": None},
    {"group": {"$ne": None}, "job_type": {"$gte": "f"}},
    {"username": {"$exists": False}},
    {"user": {"$in": ["bob", None]}},
]


def test_filter_cases_match_brute_force() -> None:
    """The whole table over 2,000 runs, each case against a brute-force evaluation."""
    assert len(CASES) >= 25
    backend = get_backend(Settings.from_env())
    _log(backend, TABLE_RUNS, "table")
    # Logging 2,000 runs may outlast the crash timeout on a loaded machine: the sweeper
    # would call the first "running" runs crashed. A heartbeat says they are alive.
    for r in TABLE_RUNS:
        if r["state"] == "running":
            backend.heartbeat(RunRef(ENTITY, "table", r["run_id"]))
    api = stemma.Api()
    assert len(api.runs(f"{ENTITY}/table")) == N_TABLE_RUNS
    for doc in CASES:
        expected = sorted(r["run_id"] for r in TABLE_RUNS if brute(r, doc))
        got = sorted(r.run_id for r in backend.list_runs(ENTITY, "table", limit=None, filters=doc))
        assert got == expected, doc
        assert backend.count_runs(ENTITY, "table", doc) == len(expected), doc
    # the cases are not vacuous: each matches some runs and misses others, mostly
    sizes = [sum(brute(r, doc) for r in TABLE_RUNS) for doc in CASES]
    assert sum(0 < n < N_TABLE_RUNS for n in sizes) >= len(CASES) - 3


def test_api_runs_with_filters_and_len(backend: Backend) -> None:
    api = stemma.Api()
    runs = api.runs(f"{ENTITY}/{PROJECT}", filters={"state": "finished"})
    expected = [r for r in RUNS if r["state"] == "finished"]
    assert len(runs) == len(expected)
    got = list(runs)
    assert {r.id for r in got} == {r["run_id"] for r in expected}
    assert all(r.state == "finished" for r in got)
    # the default entity, W&B style: Api().runs("project", filters=...)
    b = get_backend(Settings.from_env())
    me = api.default_entity
    b.apply(
        RunRef(me, "p", "only"),
        "s",
        0,
        10,
        [
            {"t": "run", "entity": me, "project": "p", "run_id": "only", "config": {}},
            {"t": "finish", "state": "finished", "exit_code": 0},
        ],
    )
    assert [r.id for r in stemma.Api().runs("p", filters={"state": "finished"})] == ["only"]
    assert len(stemma.Api().runs("p", filters={"state": "failed"})) == 0
    # ordering and filters together, pages of 7, and indexing
    page = api.runs(
        f"{ENTITY}/{PROJECT}",
        filters={"config.flag": True},
        order="-summary_metrics.epoch",
        per_page=7,
    )
    epochs = [r["summary"]["epoch"] for r in RUNS if r["config"]["flag"] is True]
    assert [r.summary["epoch"] for r in page] == sorted(epochs, reverse=True)
    assert page[0].summary["epoch"] == max(epochs) and page[-1].summary["epoch"] == min(epochs)


def _order_key(value: Any) -> tuple[int, Any]:
    k = kind(value)
    if k == "number":
        return 0, value
    if k == "string":
        return 1, value
    if k == "boolean":
        return 2, int(value)
    raise AssertionError(value)


def _brute_order(field: str) -> list[str]:
    desc = field.startswith("-")
    key = field.lstrip("+-")
    present = [r for r in RUNS if kind(_lookup(r, key)) in ("number", "string", "boolean")]
    missing = [r for r in RUNS if r not in present]
    present.sort(key=lambda r: (_order_key(_lookup(r, key)), r["run_id"]), reverse=desc)
    missing.sort(key=lambda r: r["run_id"], reverse=desc)
    return [r["run_id"] for r in present + missing]


@pytest.mark.parametrize(
    "order",
    [
        "config.layers",
        "-config.layers",
        "+config.mixed",
        "-config.mixed",
        "config.opt.name",
        "-config.a.b",
        "summary_metrics.loss",
        "-summary.val/loss",
        "-summary_metrics.acc",
        "summary_metrics.best",
    ],
)
def test_order_by_config_and_summary(backend: Backend, order: str) -> None:
    # runs were logged in run_id order, so the database id order is the run_id order
    got = [r.run_id for r in backend.list_runs(ENTITY, PROJECT, order=order, limit=None)]
    assert got == _brute_order(order)


def test_order_by_unknown_field_is_a_usage_error(backend: Backend) -> None:
    with pytest.raises(UsageError, match="cannot order runs by 'colour'"):
        backend.list_runs(ENTITY, PROJECT, order="-colour")
    with pytest.raises(UsageError, match=r"config\.\.x"):
        backend.list_runs(ENTITY, PROJECT, order="config..x")


BAD = [
    ({"state": {"$foo": 1}}, "'$foo'"),
    ({"$where": "1"}, "'$where'"),
    ({"config.lr": {"$in": 0.1}}, "'$in': 0.1"),
    ({"config.lr": {"$nin": "x"}}, "'$nin': 'x'"),
    ({"config.lr": {"$gt": [1]}}, "'$gt': [1]"),
    ({"config.lr": {"$gt": None}}, "'$gt': None"),
    ({"config.lr": {"$exists": "yes"}}, "'$exists': 'yes'"),
    ({"config.lr": {"$regex": "("}}, "'$regex': '('"),
    ({"config.lr": {"$gt": 1, "x": 2}}, "'x': 2"),
    ({"config..lr": 1}, "'config..lr'"),
    ({"config.": 1}, "'config.'"),
    ({"config": 1}, "'config'"),
    ({'config.a"b': 1}, "'config.a\"b'"),
    ({"colour": "red"}, "'colour'"),
    ({"$or": {"state": "x"}}, "'$or': {'state': 'x'}"),
    ({"$and": []}, "'$and': []"),
    ({"created_at": {"$gt": "yesterday"}}, "'yesterday'"),
    ({"state": 3}, "'$eq': 3"),
    ({"tags": {"$gt": "a"}}, "'$gt': 'a'"),
    ({"config.lr": {"$eq": math.nan}}, "nan"),
]


@pytest.mark.parametrize(("doc", "quoted"), BAD, ids=[str(i) for i in range(len(BAD))])
def test_bad_filters_are_usage_errors_quoting_the_part(doc: dict[str, Any], quoted: str) -> None:
    api = stemma.Api()
    with pytest.raises(UsageError) as err:
        api.runs(f"{ENTITY}/{PROJECT}", filters=doc)
    assert quoted in str(err.value)
    # the backend refuses it too (over HTTP: a 400 usage_error from the server)
    b = get_backend(Settings.from_env())
    with pytest.raises(UsageError) as err2:
        b.count_runs(ENTITY, PROJECT, doc)
    assert quoted in str(err2.value)


@pytest.mark.server_only  # the HTTP parameter exists on the server only
def test_malformed_filters_parameter_is_a_400() -> None:
    import httpx

    settings = Settings.from_env()
    url = f"{settings.base_url}/api/v1/projects/{ENTITY}/{PROJECT}/runs"
    headers = {"Authorization": f"Bearer {settings.api_key}"} if settings.api_key else {}
    for raw in ("{not json", "[1, 2]", '{"state": {"$bogus": 1}}'):
        resp = httpx.get(url, params={"filters": raw}, headers=headers)
        assert resp.status_code == 400, (raw, resp.text)
        assert resp.json()["code"] == "usage_error"


INJECTIONS: list[dict[str, Any]] = [
    {"config.a'); DROP TABLE runs; --": 1},
    {"config.a'); DROP TABLE runs; --": {"$exists": False}},
    {"config.lr": {"$gt": "' OR 1=1"}},
    {"state": "' OR 1=1 --"},
    {"state": {"$regex": "' OR 1=1"}},
    {"tags": "x'); DROP TABLE runs; --"},
    {"tags": {"$in": ["']'", "\\"]}},
    {"summary_metrics.$.x') OR 1=1 --": {"$ne": 1}},
    {"config.lr') OR json_extract(config, '$": 1},
    {"name": {"$in": ["run-1", "run-2' OR '1'='1"]}},
]


def test_injection_attempts_are_just_values(backend: Backend) -> None:
    for doc in INJECTIONS:
        expected = sorted(r["run_id"] for r in RUNS if brute(r, doc))
        got = sorted(r.run_id for r in backend.list_runs(ENTITY, PROJECT, limit=None, filters=doc))
        assert got == expected, doc
    assert backend.count_runs(ENTITY, PROJECT, INJECTIONS[0]) == 0
    assert backend.count_runs(ENTITY, PROJECT, INJECTIONS[1]) == N_RUNS
    # the runs table is intact
    assert backend.count_runs(ENTITY, PROJECT) == N_RUNS
    assert len(stemma.Api().runs(f"{ENTITY}/{PROJECT}")) == N_RUNS


@pytest.mark.sqlite_only
def test_keys_and_values_are_bound_never_in_the_sql_text() -> None:
    from sqlalchemy import select
    from sqlalchemy.dialects import postgresql, sqlite

    from stemma.service.filters import compile_filters
    from stemma.storage.models import runs

    for doc in INJECTIONS:
        for name, dialect in (("sqlite", sqlite.dialect()), ("postgresql", postgresql.dialect())):
            sql = str(select(runs.c.id).where(compile_filters(doc, name)).compile(dialect=dialect))
            for bad in ("DROP", "1=1", "OR '", "']'", "x')"):
                assert bad not in sql, (doc, sql)


@pytest.mark.parametrize("per_page", [1, 7, "exact", "exact+1"])
def test_pagination_boundaries_and_slices(backend: Backend, per_page: int | str) -> None:
    """Iteration by pages and slicing fetch exactly the runs a list would hold, at every
    page size: one, a prime, exactly the result size, and one more."""
    doc = {"$and": [{"config.flag": True}, {"state": "failed"}]}
    n = sum(brute(r, doc) for r in RUNS)
    assert 10 < n < 200
    size = n if per_page == "exact" else n + 1 if per_page == "exact+1" else int(per_page)
    runs = stemma.Api().runs(
        f"{ENTITY}/{PROJECT}", filters=doc, order="-summary_metrics.epoch", per_page=size
    )
    everything = [r.id for r in runs]
    assert len(everything) == len(set(everything)) == len(runs) == n
    for sl in (
        slice(None, 3),
        slice(2, 9),
        slice(size - 1, size + 2),
        slice(-3, None),
        slice(None, None, 5),
        slice(9, 2, -2),
        slice(None, None, -1),
        slice(n + 5, None),
        slice(0, 0),
        slice(-n - 10, 4),
    ):
        assert [r.id for r in runs[sl]] == everything[sl], sl
    assert runs[-1].id == everything[-1] and runs[0].id == everything[0]
    with pytest.raises(IndexError):
        runs[n]

"""What the runs table asks the store besides its page of runs: value counts per field
(filter choices, group summaries), the config/summary keys in use, the ``notes`` filter
field and ordering by ``last_step``; on SQLite and PostgreSQL."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import pytest

from stemma.backend import get_backend
from stemma.settings import Settings
from stemma.wire.history import encode_rows
from stemma.wire.records import RunRef

pytestmark = pytest.mark.embedded_only

ENTITY, PROJECT = "ent", "facets"


def _runs() -> list[dict[str, Any]]:
    rng = random.Random(3)
    out = []
    for i in range(40):
        out.append(
            {
                "run_id": f"f{i:02d}",
                "state": rng.choice(["finished", "failed", "crashed"]),
                "group": rng.choice(["g1", "g2", "g3", None]),
                "job_type": rng.choice(["train", "eval", None]),
                "user": rng.choice(["ada", "bob"]),
                "tags": rng.sample(["a", "b", "c", "d'e"], rng.randint(0, 3)),
                "notes": "look: Needle here" if i % 9 == 0 else None,
                "config": {"lr": i / 100, "opt": {"name": "adam", "beta": 0.9}}
                if i % 2
                else {"lr": i / 100, "a.b": 1},
                "summary": {"acc": i / 40, "_step": i, "img": {"_type": "image-file"}},
                "steps": i % 7,
            }
        )
    return out


RUNS = _runs()


@pytest.fixture
def store() -> Any:
    backend = get_backend(Settings.from_env())
    for r in RUNS:
        events: list[dict[str, Any]] = [
            {
                "t": "run",
                "entity": ENTITY,
                "project": PROJECT,
                "run_id": r["run_id"],
                "name": r["run_id"],
                "config": r["config"],
                "tags": r["tags"],
                "group": r["group"],
                "job_type": r["job_type"],
                "user": r["user"],
                "notes": r["notes"],
            },
            {"t": "summary", "set": r["summary"]},
            encode_rows([(s, 1e9 + s, float(s), {"x": 1.0}) for s in range(r["steps"] + 1)])
            | {"t": "history"},
            {"t": "finish", "state": r["state"], "exit_code": 0},
        ]
        backend.apply(RunRef(ENTITY, PROJECT, r["run_id"]), "s", 0, 10, events)
    return backend


def _expected(runs: list[dict[str, Any]], field: str) -> Counter[Any]:
    if field == "tags":
        return Counter(t for r in runs for t in r["tags"])
    return Counter(r[field] for r in runs)


def test_value_counts_match_a_count_in_python(store: Any) -> None:
    fields = ["state", "job_type", "group", "user", "tags"]
    got = store.run_value_counts(ENTITY, PROJECT, fields)
    for field in fields:
        assert dict(got[field]) == _expected(RUNS, field), field
        counts = [n for _v, n in got[field]]
        assert counts == sorted(counts, reverse=True)  # most runs first
    # With a filter, and a limit.
    doc = {"state": "finished", "tags": {"$in": ["a", "b"]}}
    match = [r for r in RUNS if r["state"] == "finished" and {"a", "b"} & set(r["tags"])]
    got = store.run_value_counts(ENTITY, PROJECT, ["group", "tags"], doc)
    assert dict(got["group"]) == _expected(match, "group")
    assert dict(got["tags"]) == _expected(match, "tags")
    assert len(store.run_value_counts(ENTITY, PROJECT, ["group"], limit=2)["group"]) == 2
    assert store.run_value_counts(ENTITY, "nothing-here", ["state"]) == {"state": []}


def test_keys_of_recent_runs(store: Any) -> None:
    keys = store.run_keys(ENTITY, PROJECT)
    assert keys == {
        "config": ["a.b", "lr", "opt.beta", "opt.name"],
        "summary": ["acc", "img", "x"],  # _step left out; a media value is one key
    }
    assert store.run_keys(ENTITY, PROJECT, sample=1)["config"] == ["lr", "opt.beta", "opt.name"]


def test_notes_filter_and_order_by_last_step(store: Any) -> None:
    found = store.list_runs(ENTITY, PROJECT, filters={"notes": {"$regex": "(?i)needle"}})
    assert {r.run_id for r in found} == {r["run_id"] for r in RUNS if r["notes"]}
    ordered = store.list_runs(ENTITY, PROJECT, order="-last_step", limit=None)
    assert [r.last_step for r in ordered] == sorted((r["steps"] for r in RUNS), reverse=True)

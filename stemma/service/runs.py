"""Runs: the one write operation (apply a spool frame) and the reads built on it.

Every change the SDK makes to a run (creation, config, history, summary, tags, finish)
travels as an *event* in a spool frame and is applied here by :func:`apply_frame`,
inside one transaction together with the frame's offset. Applying the same frame
twice is a no-op, which makes retries and ``stemma sync`` safe; a frame that skips
ahead of what was applied is refused, so a gap can never be papered over.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, Row, and_, delete, func, insert, select, text, update

from stemma.errors import AlreadyExists, Conflict, NotFound, UsageError
from stemma.service import audit, history, media
from stemma.service.access import Principal
from stemma.service.clock import aware, utcnow
from stemma.storage.models import entities, projects, run_spools, runs
from stemma.wire.records import ApplyResult, RunRecord, RunRef
from stemma.wire.values import from_storable, to_storable

UTC = dt.UTC


def _ts(value: float | None) -> dt.datetime:
    return utcnow() if value is None else dt.datetime.fromtimestamp(value, UTC)


def _insert_ignore(conn: Connection, table: Any, values: dict[str, Any]) -> None:
    """INSERT that silently loses a race with a concurrent identical insert."""
    name = conn.dialect.name
    if name == "postgresql":
        from sqlalchemy.dialects import postgresql

        conn.execute(postgresql.insert(table).values(**values).on_conflict_do_nothing())
    elif name == "sqlite":
        from sqlalchemy.dialects import sqlite

        conn.execute(sqlite.insert(table).values(**values).on_conflict_do_nothing())
    else:  # pragma: no cover - only the two supported dialects reach here
        conn.execute(insert(table).values(**values))


def ensure_project(
    conn: Connection, entity: str, project: str, who: Principal | None = None
) -> int:
    """The id of ``entity/project``, creating either as needed (race-safe).

    Callers have checked that ``who`` may write there; only the local user (and instance
    admins) reach here for an entity that does not exist. Such an entity is the user's
    own when it bears their name, else a team (``team-a`` in ``team-a/pretraining``).
    """
    kind = "user" if who is None or who.name == entity else "team"
    _insert_ignore(conn, entities, {"name": entity, "kind": kind, "created_at": utcnow()})
    entity_id = conn.execute(select(entities.c.id).where(entities.c.name == entity)).scalar_one()
    _insert_ignore(
        conn,
        projects,
        {
            "entity_id": entity_id,
            "name": project,
            "created_at": utcnow(),
            "visibility": "team",
            "owner_id": who.user_id if who is not None else None,
        },
    )
    return conn.execute(
        select(projects.c.id).where(
            and_(projects.c.entity_id == entity_id, projects.c.name == project)
        )
    ).scalar_one()


def _run_query():
    return select(
        runs, entities.c.name.label("entity_name"), projects.c.name.label("project_name")
    ).select_from(
        runs.join(projects, runs.c.project_id == projects.c.id).join(
            entities, projects.c.entity_id == entities.c.id
        )
    )


def _where_ref(q, ref: RunRef):
    return q.where(
        and_(
            entities.c.name == ref.entity,
            projects.c.name == ref.project,
            runs.c.run_id == ref.run_id,
        )
    )


def to_record(row: Row[Any]) -> RunRecord:
    m = row._mapping
    return RunRecord(
        entity=m["entity_name"],
        project=m["project_name"],
        run_id=m["run_id"],
        name=m["name"],
        state=m["state"],
        job_type=m["job_type"],
        group=m["group_name"],
        tags=list(m["tags"] or []),
        notes=m["notes"],
        config=from_storable(m["config"] or {}),
        summary=from_storable(m["summary"] or {}),
        metadata=from_storable(m["run_metadata"] or {}),
        user=m["username"],
        host=m["host"],
        created_at=aware(m["created_at"]),  # type: ignore[arg-type]
        heartbeat_at=aware(m["heartbeat_at"]),  # type: ignore[arg-type]
        finished_at=aware(m["finished_at"]),
        exit_code=m["exit_code"],
        last_step=m["last_step"],
        runtime=m["runtime"],
    )


def find_run_pk(conn: Connection, ref: RunRef, *, lock: bool = False) -> int | None:
    """The run's primary key; with ``lock``, its row (or, for a run that does not exist
    yet, the right to create it) is also locked until commit.

    The lock matters on PostgreSQL only: writes there run concurrently (READ
    COMMITTED), and a frame's read-modify-writes of the run (its summary, a key's open
    history chunk) must not interleave with another transaction's on the same run, or
    one of them is lost. SQLite's ``BEGIN IMMEDIATE`` already serialises every write
    (and SQLAlchemy renders no ``FOR UPDATE`` there). Only the run row is locked, so
    runs of one project still ingest in parallel, and as ``FOR NO KEY UPDATE``, so rows
    that merely reference the run (an artifact logged by it) are not held up.
    """
    q = _where_ref(
        select(runs.c.id).select_from(
            runs.join(projects, runs.c.project_id == projects.c.id).join(
                entities, projects.c.entity_id == entities.c.id
            )
        ),
        ref,
    )
    if not lock:
        return conn.execute(q).scalar()
    pk = conn.execute(q.with_for_update(of=runs, key_share=True)).scalar()
    if pk is None and conn.dialect.name == "postgresql":
        # No row to lock yet: lock the run's name instead (a transaction-scoped advisory
        # lock, in the two-key space apart from the migration and gc locks), so of two
        # transactions creating one run the second waits and then finds the first's run
        # instead of failing on the unique constraint.
        conn.execute(
            text("SELECT pg_advisory_xact_lock(5282, hashtext(:path))"), {"path": ref.path}
        )
        pk = conn.execute(q.with_for_update(of=runs, key_share=True)).scalar()
    return pk


def get_run(conn: Connection, ref: RunRef) -> RunRecord | None:
    row = conn.execute(_where_ref(_run_query(), ref)).first()
    return None if row is None else to_record(row)


def run_pks(conn: Connection, entity: str, project: str, run_ids: list[str]) -> dict[str, int]:
    """{run_id: primary key} for those run ids of ``entity/project`` that exist."""
    out: dict[str, int] = {}
    for i in range(0, len(run_ids), 500):
        q = (
            select(runs.c.run_id, runs.c.id)
            .select_from(
                runs.join(projects, runs.c.project_id == projects.c.id).join(
                    entities, projects.c.entity_id == entities.c.id
                )
            )
            .where(
                and_(
                    entities.c.name == entity,
                    projects.c.name == project,
                    runs.c.run_id.in_(run_ids[i : i + 500]),
                )
            )
        )
        out.update({row.run_id: row.id for row in conn.execute(q)})
    return out


def require_run_pk(conn: Connection, ref: RunRef) -> int:
    pk = find_run_pk(conn, ref)
    if pk is None:
        raise NotFound(f"run {ref.path} does not exist", path=ref.path)
    return pk


_ORDER_FIELDS = {
    "created_at": runs.c.created_at,
    "heartbeat_at": runs.c.heartbeat_at,
    "name": runs.c.name,
    "display_name": runs.c.name,
    "state": runs.c.state,
    "run_id": runs.c.run_id,
    "id": runs.c.run_id,
    "runtime": runs.c.runtime,
    "last_step": runs.c.last_step,
}


def _order_clause(order: str, dialect: str = "sqlite"):
    desc = order.startswith("-")
    field = order.lstrip("+-")
    col = _ORDER_FIELDS.get(field)
    if col is None:
        from stemma.service.filters import order_clause

        json_order = None
        if field.startswith(("config.", "summary_metrics.", "summary.")):
            json_order = order_clause(field, desc, dialect)
        if json_order is not None:
            return json_order
        raise UsageError(
            f"cannot order runs by {field!r}: use one of {', '.join(sorted(_ORDER_FIELDS))}, "
            "config.<key> or summary_metrics.<key>",
            order=order,
        )
    return [col.desc(), runs.c.id.desc()] if desc else [col.asc(), runs.c.id.asc()]


def _filtered(q, conn: Connection, filters: Mapping[str, Any] | None):
    if not filters:
        return q
    from stemma.service.filters import compile_filters

    return q.where(compile_filters(filters, conn.dialect.name))


def list_runs(
    conn: Connection,
    entity: str,
    project: str,
    *,
    order: str = "-created_at",
    offset: int = 0,
    limit: int | None = 50,
    filters: Mapping[str, Any] | None = None,
) -> list[RunRecord]:
    q = _run_query().where(and_(entities.c.name == entity, projects.c.name == project))
    q = _filtered(q, conn, filters)
    q = q.order_by(*_order_clause(order, conn.dialect.name)).offset(offset)
    if limit is not None:
        q = q.limit(limit)
    return [to_record(r) for r in conn.execute(q)]


def count_runs(
    conn: Connection, entity: str, project: str, filters: Mapping[str, Any] | None = None
) -> int:
    q = (
        select(func.count())
        .select_from(
            runs.join(projects, runs.c.project_id == projects.c.id).join(
                entities, projects.c.entity_id == entities.c.id
            )
        )
        .where(and_(entities.c.name == entity, projects.c.name == project))
    )
    q = _filtered(q, conn, filters)
    return int(conn.execute(q).scalar_one())


def list_projects(conn: Connection, entity: str | None = None) -> list[tuple[str, str, int]]:
    """(entity, project, number of runs) for every project (of ``entity``)."""
    q = (
        select(entities.c.name, projects.c.name, func.count(runs.c.id))
        .select_from(
            projects.join(entities, projects.c.entity_id == entities.c.id).outerjoin(
                runs, runs.c.project_id == projects.c.id
            )
        )
        .group_by(entities.c.name, projects.c.name)
        .order_by(entities.c.name, projects.c.name)
    )
    if entity is not None:
        q = q.where(entities.c.name == entity)
    return [(e, p, n) for e, p, n in conn.execute(q)]


def sweep_crashed(conn: Connection, timeout: float, now: dt.datetime | None = None) -> int:
    """Mark running runs whose heartbeat is older than ``timeout`` seconds as crashed."""
    cutoff = (now or utcnow()) - dt.timedelta(seconds=timeout)
    res = conn.execute(
        update(runs)
        .where(and_(runs.c.state == "running", runs.c.heartbeat_at < cutoff))
        .values(state="crashed")
    )
    return res.rowcount or 0


def heartbeat(conn: Connection, ref: RunRef) -> None:
    pk = require_run_pk(conn, ref)
    _touch(conn, pk)


def _touch(conn: Connection, pk: int) -> None:
    conn.execute(update(runs).where(runs.c.id == pk).values(heartbeat_at=utcnow()))
    # A run marked crashed that is heard from again was only silent: it is running.
    conn.execute(
        update(runs).where(and_(runs.c.id == pk, runs.c.state == "crashed")).values(state="running")
    )


# ---------------------------------------------------------------- applying frames


def _create_or_resume(conn: Connection, ref: RunRef, ev: dict[str, Any], who: Principal) -> int:
    pk = find_run_pk(conn, ref)
    resume = ev.get("resume")
    if pk is not None:
        if not resume:
            raise AlreadyExists(
                f"run {ref.path} already exists; pass resume='allow' to continue it",
                path=ref.path,
            )
        conn.execute(
            update(runs)
            .where(runs.c.id == pk)
            .values(state="running", finished_at=None, exit_code=None, heartbeat_at=utcnow())
        )
        audit.append(conn, who, "run.resume", ref.path, entity=ref.entity)
        return pk
    if resume == "must":
        raise NotFound(f"run {ref.path} does not exist and resume='must' was given", path=ref.path)
    project_id = ensure_project(conn, ref.entity, ref.project, who)
    created = _ts(ev.get("created_at"))
    # On a server the run belongs to whoever is signed in, not to what the client says.
    user = ev.get("user") if who.is_local else who.name
    res = conn.execute(
        insert(runs).values(
            project_id=project_id,
            run_id=ref.run_id,
            name=ev.get("name") or ref.run_id,
            state="running",
            job_type=ev.get("job_type"),
            group_name=ev.get("group"),
            tags=list(ev.get("tags") or []),
            notes=ev.get("notes"),
            config=ev.get("config") or {},
            summary={},
            run_metadata=ev.get("metadata") or {},
            username=user,
            host=ev.get("host"),
            created_at=created,
            heartbeat_at=utcnow(),
            last_step=-1,
            runtime=0.0,
        )
    )
    audit.append(
        conn,
        who,
        "run.create",
        ref.path,
        entity=ref.entity,
        details={"name": ev.get("name"), "job_type": ev.get("job_type"), "host": ev.get("host")},
    )
    return int(res.inserted_primary_key[0])  # type: ignore[index]


_UPDATABLE = {
    "name": "name",
    "tags": "tags",
    "notes": "notes",
    "group": "group_name",
    "job_type": "job_type",
}


def _apply_event(conn: Connection, pk: int, ev: dict[str, Any], state: dict[str, Any]) -> None:
    kind = ev["t"]
    if kind == "history":
        stream = ev.get("stream", "default")
        cols = history.ingest_batch(conn, pk, ev, stream)
        if stream == "default" and cols:
            summary = state.setdefault("summary", {})
            for key, col in cols.items():
                if len(col):
                    summary[key] = col.last()
            steps = ev["steps"]
            if steps:
                summary["_step"] = int.from_bytes(steps[-8:], "little", signed=True)
                state["last_step"] = summary["_step"]
            rt = cols.get("_runtime")
            if rt is not None and len(rt):
                state["runtime"] = float(rt.last())
            found = media.collect(cols)
            if found:
                state.setdefault("media", []).extend(found)
    elif kind == "config":
        state["config"] = ev["data"]
    elif kind == "summary":
        summary = state.setdefault("summary", {})
        summary.update(from_storable(ev.get("set") or {}))
        for k in ev.get("del") or ():
            summary[k] = _DELETED
    elif kind == "meta":
        state.setdefault("meta", {}).update(ev["data"])
    elif kind == "update":
        for field, column in _UPDATABLE.items():
            if field in ev:
                state.setdefault("fields", {})[column] = ev[field]
    elif kind == "finish":
        state["finish"] = ev
    elif kind == "run":
        pass  # handled before the loop
    elif kind in ("artifact", "use"):
        pass  # offline artifact events: the client replays them before the frame (sync)
    elif kind == "blobs":
        pass  # media bytes the client uploads before sending the frame (stemma.sdk.mediastore)
    else:
        raise UsageError(f"unknown event type {kind!r} in a spool frame", event=kind)


_DELETED = object()


def _flush_state(conn: Connection, pk: int, state: dict[str, Any]) -> None:
    if not state:
        return
    values: dict[str, Any] = {}
    if "summary" in state or "meta" in state:
        cur = conn.execute(select(runs.c.summary, runs.c.run_metadata).where(runs.c.id == pk)).one()
        if "summary" in state:
            merged = from_storable(dict(cur.summary or {}))
            for k, v in state["summary"].items():
                if v is _DELETED:
                    merged.pop(k, None)
                else:
                    merged[k] = v
            values["summary"] = to_storable(merged, "summary")
        if "meta" in state:
            meta = dict(cur.run_metadata or {})
            meta.update(to_storable(state["meta"], "metadata"))
            values["run_metadata"] = meta
    if "config" in state:
        values["config"] = state["config"]
    if "last_step" in state:
        values["last_step"] = (
            func.max(runs.c.last_step, state["last_step"])
            if conn.dialect.name == "sqlite"
            else func.greatest(runs.c.last_step, state["last_step"])
        )
    if "runtime" in state:
        values["runtime"] = state["runtime"]
    values.update(state.get("fields", {}))
    fin = state.get("finish")
    if fin is not None:
        values["state"] = fin.get("state", "finished")
        values["exit_code"] = fin.get("exit_code")
        values["finished_at"] = _ts(fin.get("at"))
    values["heartbeat_at"] = utcnow()
    conn.execute(update(runs).where(runs.c.id == pk).values(**values))


def apply_frame(
    conn: Connection,
    ref: RunRef,
    spool_id: str,
    start: int,
    end: int,
    events: list[dict[str, Any]],
    who: Principal,
) -> ApplyResult:
    """Apply one spool frame ``[start, end)`` of ``spool_id`` to run ``ref``, once.

    Call inside a write transaction. Returns ``applied=False`` for a frame already
    applied; raises :class:`Conflict` when frames before ``start`` are missing.
    """
    pk = find_run_pk(conn, ref, lock=True)  # one frame of a run at a time
    first_is_run = bool(events) and events[0]["t"] == "run"
    if pk is not None:
        done = conn.execute(
            select(run_spools.c.committed_offset)
            .where(and_(run_spools.c.run_pk == pk, run_spools.c.spool_id == spool_id))
            .with_for_update()
        ).scalar()
        if done is not None and done >= end:
            return ApplyResult(False, done)
        if (done or 0) != start:
            raise Conflict(
                f"spool {spool_id} of run {ref.path}: frame starts at byte {start} but bytes "
                f"up to {done or 0} were applied; earlier frames are missing",
                spool_id=spool_id,
                start=start,
                committed=done or 0,
            )
    elif not first_is_run:
        raise NotFound(f"run {ref.path} does not exist", path=ref.path)
    elif start != 0:
        raise Conflict(
            f"spool {spool_id}: the run's first frame must start at byte 0",
            spool_id=spool_id,
            start=start,
        )
    if first_is_run and start == 0:
        pk = _create_or_resume(conn, ref, events[0], who)
    assert pk is not None
    state: dict[str, Any] = {}
    for ev in events:
        _apply_event(conn, pk, ev, state)
    media.record(conn, pk, state.pop("media", []))  # refused unless the bytes are stored
    _flush_state(conn, pk, state)
    if "finish" not in state:
        _touch(conn, pk)
    else:
        fin = state["finish"]
        audit.append(
            conn,
            who,
            "run.finish",
            ref.path,
            entity=ref.entity,
            details={"state": fin.get("state", "finished"), "exit_code": fin.get("exit_code")},
        )
    _set_offset(conn, pk, spool_id, end)
    return ApplyResult(True, end)


def _set_offset(conn: Connection, pk: int, spool_id: str, end: int) -> None:
    res = conn.execute(
        update(run_spools)
        .where(and_(run_spools.c.run_pk == pk, run_spools.c.spool_id == spool_id))
        .values(committed_offset=end)
    )
    if not res.rowcount:
        conn.execute(insert(run_spools).values(run_pk=pk, spool_id=spool_id, committed_offset=end))


def committed_offset(conn: Connection, ref: RunRef, spool_id: str) -> int:
    """Bytes of ``spool_id`` already applied to ``ref`` (0 when none or no such run)."""
    pk = find_run_pk(conn, ref)
    if pk is None:
        return 0
    done = conn.execute(
        select(run_spools.c.committed_offset).where(
            and_(run_spools.c.run_pk == pk, run_spools.c.spool_id == spool_id)
        )
    ).scalar()
    return int(done or 0)


def update_run(conn: Connection, ref: RunRef, changes: dict[str, Any], who: Principal) -> None:
    """Edit a run's name, tags, notes, group, job type or summary after the fact."""
    pk = require_run_pk(conn, ref)
    unknown = set(changes) - set(_UPDATABLE) - {"summary"}
    if unknown:
        raise UsageError(
            f"cannot update run field(s) {sorted(unknown)}: updatable are "
            f"{sorted([*_UPDATABLE, 'summary'])}",
            fields=sorted(unknown),
        )
    values = {_UPDATABLE[k]: v for k, v in changes.items() if k in _UPDATABLE}
    if "summary" in changes:
        values["summary"] = to_storable(changes["summary"], "summary")
    if values:
        conn.execute(update(runs).where(runs.c.id == pk).values(**values))
        audit.append(
            conn,
            who,
            "run.update",
            ref.path,
            entity=ref.entity,
            details={"fields": sorted(changes)},
        )


def run_owner(conn: Connection, ref: RunRef) -> str | None:
    """The user who started a run."""
    row = conn.execute(_where_ref(_run_query(), ref)).first()
    if row is None:
        raise NotFound(f"run {ref.path} does not exist", path=ref.path)
    return row.username


def delete_run(conn: Connection, ref: RunRef, who: Principal) -> None:
    """Delete a run with its history (foreign keys cascade)."""
    pk = require_run_pk(conn, ref)
    conn.execute(delete(runs).where(runs.c.id == pk))
    audit.append(conn, who, "run.delete", ref.path, entity=ref.entity)

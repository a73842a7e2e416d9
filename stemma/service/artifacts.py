"""Artifacts: versions, aliases, lineage edges, retention and garbage collection.

Versions are numbered per name at commit time inside the write transaction (SQLite's
``BEGIN IMMEDIATE``, or a row lock on the collection in PostgreSQL), so concurrent
loggers get consecutive numbers and ``latest`` ends on the highest. A version is
inserted with its manifest in one transaction: it is either committed whole or absent.

Immutability: a committed version's files and metadata never change. ``update`` may
change aliases, description and TTL, and may *add* metadata keys; changing or removing
an existing metadata key is refused.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, Row, and_, delete, func, insert, or_, select, update

from stemma.errors import Conflict, InvalidNameError, NotFound, UsageError
from stemma.service import runs as run_service
from stemma.service.runs import (
    _aware,
    _insert_ignore,
    ensure_project,
    find_run_pk,
    to_record,
    utcnow,
)
from stemma.storage.models import (
    alias_events,
    artifact_aliases,
    artifact_collections,
    artifact_usage,
    artifact_versions,
    blobs,
    entities,
    project_settings,
    projects,
    retention_policies,
    runs,
)
from stemma.wire.manifest import Manifest
from stemma.wire.names import check_name
from stemma.wire.records import ArtifactRecord, ArtifactRef, RunRecord, RunRef
from stemma.wire.values import from_storable, to_storable

LATEST = "latest"
DEFAULT_PROTECTED = ["production"]
_VERSION_RE = re.compile(r"v(\d+)")
# A full manifest is stored at least every this many versions, so reading one never
# replays a long chain of deltas.
MAX_DELTA_DEPTH = 16


def check_alias(alias: object) -> str:
    """An alias a user may set: a name, but not ``vN`` (a version) nor ``latest``."""
    name = check_name(alias, "alias")
    if _VERSION_RE.fullmatch(name):
        raise InvalidNameError(
            f"{name!r} looks like a version number and cannot be an alias", alias=name
        )
    return name


def parse_selector(selector: str | None) -> tuple[str, int | None]:
    """``None``/``latest``/``production`` -> (alias, None); ``v3`` -> ("", 3)."""
    if selector is None or selector == "":
        return LATEST, None
    m = _VERSION_RE.fullmatch(selector)
    if m:
        return "", int(m.group(1))
    return check_name(selector, "alias"), None


# ------------------------------------------------------------------ lookups


def _project_id(conn: Connection, entity: str, project: str) -> int | None:
    return conn.execute(
        select(projects.c.id)
        .select_from(projects.join(entities, projects.c.entity_id == entities.c.id))
        .where(and_(entities.c.name == entity, projects.c.name == project))
    ).scalar()


def _collection(conn: Connection, entity: str, project: str, name: str) -> Row[Any] | None:
    pid = _project_id(conn, entity, project)
    if pid is None:
        return None
    return conn.execute(
        select(artifact_collections).where(
            and_(artifact_collections.c.project_id == pid, artifact_collections.c.name == name)
        )
    ).first()


def _require_collection(conn: Connection, entity: str, project: str, name: str) -> Row[Any]:
    coll = _collection(conn, entity, project, name)
    if coll is None:
        raise NotFound(
            f"artifact {entity}/{project}/{name} does not exist", path=f"{entity}/{project}/{name}"
        )
    return coll


def _aliases_of(conn: Connection, version_ids: list[int]) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {v: [] for v in version_ids}
    if not version_ids:
        return out
    for vid, alias in conn.execute(
        select(artifact_aliases.c.version_id, artifact_aliases.c.alias)
        .where(artifact_aliases.c.version_id.in_(version_ids))
        .order_by(artifact_aliases.c.alias)
    ):
        out[vid].append(alias)
    return out


def load_manifest(conn: Connection, version_id: int) -> Manifest:
    """The full manifest of a version, replaying its (bounded) chain of deltas."""
    chain: list[bytes] = []
    vid: int | None = version_id
    while vid is not None:
        row = conn.execute(
            select(artifact_versions.c.manifest, artifact_versions.c.manifest_base_id).where(
                artifact_versions.c.id == vid
            )
        ).one()
        if row.manifest is None:
            raise NotFound(f"artifact version {version_id} was deleted; its files are gone")
        chain.append(row.manifest)
        vid = row.manifest_base_id
    manifest: Manifest | None = None
    for blob in reversed(chain):
        manifest = Manifest.decode(blob, manifest)
    assert manifest is not None
    return manifest


def _record(
    conn: Connection,
    coll: Row[Any],
    ver: Row[Any],
    entity: str,
    project: str,
    aliases: list[str],
    with_manifest: bool,
) -> ArtifactRecord:
    run_path = None
    if ver.run_pk is not None:
        r = conn.execute(
            select(entities.c.name, projects.c.name, runs.c.run_id)
            .select_from(
                runs.join(projects, runs.c.project_id == projects.c.id).join(
                    entities, projects.c.entity_id == entities.c.id
                )
            )
            .where(runs.c.id == ver.run_pk)
        ).first()
        if r is not None:
            run_path = f"{r[0]}/{r[1]}/{r[2]}"
    return ArtifactRecord(
        entity=entity,
        project=project,
        name=coll.name,
        type=coll.type,
        version=ver.version_index,
        digest=ver.digest,
        description=ver.description,
        metadata=from_storable(ver.metadata or {}),
        size=ver.size,
        file_count=ver.file_count,
        aliases=aliases,
        state=ver.state,
        ttl_seconds=ver.ttl_seconds,
        created_at=_aware(ver.created_at),  # type: ignore[arg-type]
        creator=dict(ver.creator or {}),
        run_path=run_path,
        manifest=load_manifest(conn, ver.id)
        if with_manifest and ver.state == "committed"
        else None,
    )


def _version_row(conn: Connection, coll: Row[Any], index: int) -> Row[Any] | None:
    return conn.execute(
        select(artifact_versions).where(
            and_(
                artifact_versions.c.collection_id == coll.id,
                artifact_versions.c.version_index == index,
            )
        )
    ).first()


def _existing_summary(conn: Connection, coll: Row[Any]) -> str:
    versions = (
        conn.execute(
            select(artifact_versions.c.version_index)
            .where(
                and_(
                    artifact_versions.c.collection_id == coll.id,
                    artifact_versions.c.state == "committed",
                )
            )
            .order_by(artifact_versions.c.version_index)
        )
        .scalars()
        .all()
    )
    aliases = (
        conn.execute(
            select(artifact_aliases.c.alias)
            .where(artifact_aliases.c.collection_id == coll.id)
            .order_by(artifact_aliases.c.alias)
        )
        .scalars()
        .all()
    )
    shown = ", ".join(f"v{v}" for v in versions[-20:]) or "none"
    return f"versions: {shown}; aliases: {', '.join(aliases) or 'none'}"


def alias_at(conn: Connection, coll_id: int, alias: str, at: dt.datetime) -> int | None:
    """The version index ``alias`` pointed to at time ``at`` (from the alias history)."""
    row = conn.execute(
        select(alias_events.c.to_version)
        .where(
            and_(
                alias_events.c.collection_id == coll_id,
                alias_events.c.alias == alias,
                alias_events.c.at <= at,
            )
        )
        .order_by(alias_events.c.at.desc(), alias_events.c.id.desc())
        .limit(1)
    ).first()
    return None if row is None else row.to_version


def resolve(
    conn: Connection,
    entity: str,
    project: str,
    name: str,
    selector: str | None,
    at: dt.datetime | None = None,
) -> tuple[Row[Any], Row[Any]]:
    """(collection row, version row) for ``name:selector``, or NotFound listing choices."""
    coll = _require_collection(conn, entity, project, name)
    alias, index = parse_selector(selector)
    if index is None and at is not None:
        index = alias_at(conn, coll.id, alias, at)
        if index is None:
            raise NotFound(
                f"alias {name}:{alias} did not point anywhere at {at.isoformat()}", alias=alias
            )
    if index is None:
        vid = conn.execute(
            select(artifact_aliases.c.version_id).where(
                and_(artifact_aliases.c.collection_id == coll.id, artifact_aliases.c.alias == alias)
            )
        ).scalar()
        if vid is None:
            raise NotFound(
                f"artifact {entity}/{project}/{name} has no alias {alias!r} "
                f"({_existing_summary(conn, coll)})",
                alias=alias,
            )
        ver = conn.execute(select(artifact_versions).where(artifact_versions.c.id == vid)).one()
    else:
        ver = _version_row(conn, coll, index)
        if ver is None:
            raise NotFound(
                f"artifact {entity}/{project}/{name} has no version v{index} "
                f"({_existing_summary(conn, coll)})",
                version=index,
            )
    return coll, ver


def get_artifact(
    conn: Connection,
    entity: str,
    project: str,
    name: str,
    selector: str | None,
    at: dt.datetime | None = None,
    with_manifest: bool = True,
) -> ArtifactRecord:
    coll, ver = resolve(conn, entity, project, name, selector, at)
    return _record(
        conn, coll, ver, entity, project, _aliases_of(conn, [ver.id])[ver.id], with_manifest
    )


def list_versions(
    conn: Connection, entity: str, project: str, name: str, include_deleted: bool = False
) -> list[ArtifactRecord]:
    coll = _require_collection(conn, entity, project, name)
    q = select(artifact_versions).where(artifact_versions.c.collection_id == coll.id)
    if not include_deleted:
        q = q.where(artifact_versions.c.state == "committed")
    rows = conn.execute(q.order_by(artifact_versions.c.version_index)).all()
    aliases = _aliases_of(conn, [r.id for r in rows])
    return [_record(conn, coll, r, entity, project, aliases[r.id], False) for r in rows]


def list_collections(
    conn: Connection, entity: str, project: str, type_: str | None = None
) -> list[dict[str, Any]]:
    pid = _project_id(conn, entity, project)
    if pid is None:
        return []
    c, v = artifact_collections.c, artifact_versions.c
    q = (
        select(
            c.name,
            c.type,
            c.description,
            c.created_at,
            func.count(v.id).label("versions"),
            func.max(v.version_index).label("last"),
            func.coalesce(func.sum(v.size), 0).label("size"),
        )
        .select_from(
            artifact_collections.outerjoin(
                artifact_versions, and_(v.collection_id == c.id, v.state == "committed")
            )
        )
        .where(c.project_id == pid)
        .group_by(c.id, c.name, c.type, c.description, c.created_at)
        .order_by(c.name)
    )
    if type_ is not None:
        q = q.where(c.type == type_)
    return [
        {
            "entity": entity,
            "project": project,
            "name": r.name,
            "type": r.type,
            "description": r.description,
            "created_at": _aware(r.created_at),
            "versions": r.versions,
            "latest_version": r.last,
            "size": int(r.size),
        }
        for r in conn.execute(q)
    ]


# ------------------------------------------------------------------ blobs


def missing_blobs(conn: Connection, store: Any, digests: Iterable[str]) -> set[str]:
    """Digests the store lacks (or that gc has condemned): the client must upload them."""
    wanted = set(digests)
    present: set[str] = set()
    keys = list(wanted)
    for i in range(0, len(keys), 500):
        part = keys[i : i + 500]
        present.update(
            conn.execute(
                select(blobs.c.digest).where(and_(blobs.c.digest.in_(part), ~blobs.c.condemned))
            ).scalars()
        )
    return {d for d in wanted if d not in present or not store.has(d)}


def register_blobs(conn: Connection, items: Iterable[tuple[str, int]]) -> None:
    """Record stored blobs (un-condemning any that gc had marked)."""
    now = utcnow()
    rows = dict(items)
    if not rows:
        return
    keys = list(rows)
    existing: set[str] = set()
    for i in range(0, len(keys), 500):
        existing.update(
            conn.execute(
                select(blobs.c.digest).where(blobs.c.digest.in_(keys[i : i + 500]))
            ).scalars()
        )
    new = [
        {"digest": d, "size": s, "created_at": now, "condemned": False}
        for d, s in rows.items()
        if d not in existing
    ]
    if new:
        if conn.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            conn.execute(pg_insert(blobs).on_conflict_do_nothing(), new)
        else:
            conn.execute(insert(blobs).prefix_with("OR IGNORE"), new)
    if existing:
        revive = list(existing)
        for i in range(0, len(revive), 500):
            conn.execute(
                update(blobs)
                .where(and_(blobs.c.digest.in_(revive[i : i + 500]), blobs.c.condemned))
                .values(condemned=False)
            )


# ------------------------------------------------------------------ commit


def protected_aliases(conn: Connection, project_id: int) -> list[str]:
    row = conn.execute(
        select(project_settings.c.protected_aliases).where(
            project_settings.c.project_id == project_id
        )
    ).scalar()
    return list(row) if row is not None else list(DEFAULT_PROTECTED)


def set_protected_aliases(conn: Connection, entity: str, project: str, aliases: list[str]) -> None:
    clean = sorted({check_alias(a) for a in aliases})
    pid = ensure_project(conn, entity, project)
    res = conn.execute(
        update(project_settings)
        .where(project_settings.c.project_id == pid)
        .values(protected_aliases=clean)
    )
    if not res.rowcount:
        conn.execute(insert(project_settings).values(project_id=pid, protected_aliases=clean))


def _record_alias(
    conn: Connection, coll_id: int, alias: str, old: int | None, new: int | None, actor: str | None
) -> None:
    conn.execute(
        insert(alias_events).values(
            collection_id=coll_id,
            alias=alias,
            from_version=old,
            to_version=new,
            actor=actor,
            at=utcnow(),
        )
    )


def _move_alias(
    conn: Connection, coll_id: int, alias: str, ver: Row[Any], actor: str | None
) -> None:
    cur = conn.execute(
        select(artifact_aliases.c.version_id, artifact_versions.c.version_index)
        .select_from(
            artifact_aliases.join(
                artifact_versions, artifact_aliases.c.version_id == artifact_versions.c.id
            )
        )
        .where(and_(artifact_aliases.c.collection_id == coll_id, artifact_aliases.c.alias == alias))
    ).first()
    if cur is not None and cur.version_id == ver.id:
        return
    if cur is None:
        conn.execute(
            insert(artifact_aliases).values(collection_id=coll_id, alias=alias, version_id=ver.id)
        )
    else:
        conn.execute(
            update(artifact_aliases)
            .where(
                and_(artifact_aliases.c.collection_id == coll_id, artifact_aliases.c.alias == alias)
            )
            .values(version_id=ver.id)
        )
    _record_alias(
        conn, coll_id, alias, None if cur is None else cur.version_index, ver.version_index, actor
    )


def _remove_alias(
    conn: Connection, coll_id: int, alias: str, ver: Row[Any], actor: str | None
) -> None:
    res = conn.execute(
        delete(artifact_aliases).where(
            and_(
                artifact_aliases.c.collection_id == coll_id,
                artifact_aliases.c.alias == alias,
                artifact_aliases.c.version_id == ver.id,
            )
        )
    )
    if res.rowcount:
        _record_alias(conn, coll_id, alias, ver.version_index, None, actor)


def _check_blobs_present(conn: Connection, store: Any, manifest: Manifest) -> None:
    missing = missing_blobs(conn, store, manifest.blob_digests())
    if missing:
        raise Conflict(
            f"cannot commit: {len(missing)} blob(s) of the manifest are not in the store "
            f"(e.g. {sorted(missing)[0]}); upload them first",
            missing=sorted(missing)[:100],
        )


def commit_version(
    conn: Connection,
    store: Any,
    *,
    entity: str,
    project: str,
    name: str,
    type_: str,
    description: str | None,
    metadata: dict[str, Any],
    manifest: Manifest,
    aliases: list[str],
    ttl_seconds: float | None,
    run_ref: RunRef | None,
    creator: dict[str, Any],
    actor: str | None,
) -> tuple[ArtifactRecord, bool]:
    """Commit a new version (or return the identical existing one); returns (record, new)."""
    check_name(name, "artifact")
    check_name(type_, "artifact type")
    alias_list = [check_alias(a) for a in aliases if a != LATEST]
    _check_blobs_present(conn, store, manifest)
    pid = ensure_project(conn, entity, project)
    _insert_ignore(
        conn,
        artifact_collections,
        {
            "project_id": pid,
            "name": name,
            "type": type_,
            "description": description,
            "created_at": utcnow(),
        },
    )
    coll = conn.execute(
        select(artifact_collections)
        .where(and_(artifact_collections.c.project_id == pid, artifact_collections.c.name == name))
        .with_for_update()
    ).one()
    if coll.type != type_:
        raise UsageError(
            f"artifact {entity}/{project}/{name} has type {coll.type!r}, not {type_!r}; "
            "use the existing type or another name",
            expected=coll.type,
            got=type_,
        )
    run_pk = find_run_pk(conn, run_ref) if run_ref is not None else None
    digest = manifest.digest()
    same = conn.execute(
        select(artifact_versions)
        .where(
            and_(
                artifact_versions.c.collection_id == coll.id,
                artifact_versions.c.digest == digest,
                artifact_versions.c.state == "committed",
            )
        )
        .order_by(artifact_versions.c.version_index.desc())
        .limit(1)
    ).first()
    created = same is None
    if same is None:
        last = conn.execute(
            select(
                artifact_versions.c.id,
                artifact_versions.c.version_index,
                artifact_versions.c.manifest_depth,
                artifact_versions.c.state,
            )
            .where(artifact_versions.c.collection_id == coll.id)
            .order_by(artifact_versions.c.version_index.desc())
            .limit(1)
        ).first()
        index = 0 if last is None else last.version_index + 1
        stored, base_id, depth = manifest.encode(), None, 0
        if last is not None and last.state == "committed" and last.manifest_depth < MAX_DELTA_DEPTH:
            delta = manifest.encode_delta(load_manifest(conn, last.id))
            if len(delta) < len(stored) // 2:
                stored, base_id, depth = delta, last.id, last.manifest_depth + 1
        res = conn.execute(
            insert(artifact_versions).values(
                collection_id=coll.id,
                version_index=index,
                digest=digest,
                description=description,
                metadata=to_storable(metadata, "metadata"),
                size=manifest.size,
                file_count=len(manifest),
                manifest=stored,
                manifest_base_id=base_id,
                manifest_depth=depth,
                state="committed",
                ttl_seconds=ttl_seconds,
                created_at=utcnow(),
                run_pk=run_pk,
                creator=creator,
            )
        )
        vid = res.inserted_primary_key[0]  # type: ignore[index]
        ver = conn.execute(select(artifact_versions).where(artifact_versions.c.id == vid)).one()
        _move_alias(conn, coll.id, LATEST, ver, actor)
    else:
        ver = same
    for alias in alias_list:
        _move_alias(conn, coll.id, alias, ver, actor)
    if run_pk is not None:
        _add_usage(conn, run_pk, ver.id, "output")
    record = _record(conn, coll, ver, entity, project, _aliases_of(conn, [ver.id])[ver.id], False)
    record.manifest = manifest
    return record, created


def _add_usage(conn: Connection, run_pk: int, version_id: int, direction: str) -> None:
    _insert_ignore(
        conn,
        artifact_usage,
        {
            "run_pk": run_pk,
            "version_id": version_id,
            "direction": direction,
            "created_at": utcnow(),
        },
    )


def use_version(conn: Connection, run_ref: RunRef, ref: ArtifactRef) -> None:
    """Record that a run used a version (an input edge of the lineage graph)."""
    run_pk = run_service.require_run_pk(conn, run_ref)
    _coll, ver = resolve(conn, ref.entity, ref.project, ref.name, f"v{ref.version}")
    if ver.state != "committed":
        raise NotFound(f"artifact {ref.path} was deleted", path=ref.path)
    _add_usage(conn, run_pk, ver.id, "input")


# ------------------------------------------------------------------ updates


def update_version(
    conn: Connection,
    ref: ArtifactRef,
    changes: dict[str, Any],
    actor: str | None,
    is_admin: bool = True,
) -> ArtifactRecord:
    """Change aliases / description / ttl, or add metadata keys, of a committed version."""
    coll, ver = resolve(conn, ref.entity, ref.project, ref.name, f"v{ref.version}")
    if ver.state != "committed":
        raise Conflict(f"artifact {ref.path} was deleted and cannot be changed")
    unknown = set(changes) - {"aliases", "description", "ttl_seconds", "metadata"}
    if unknown:
        raise UsageError(
            f"cannot change {sorted(unknown)} of a committed artifact: files "
            "and existing metadata are immutable",
            fields=sorted(unknown),
        )
    values: dict[str, Any] = {}
    if "description" in changes:
        values["description"] = changes["description"]
    if "ttl_seconds" in changes:
        ttl = changes["ttl_seconds"]
        if ttl is not None and ttl <= 0:
            raise UsageError("ttl must be positive (or None for no expiry)")
        values["ttl_seconds"] = ttl
    if "metadata" in changes:
        old = from_storable(ver.metadata or {})
        new = dict(changes["metadata"] or {})
        altered = sorted(k for k in old if k not in new or new[k] != old[k])
        if altered:
            raise Conflict(
                f"metadata of a committed artifact is immutable: keys {altered} would change "
                "or disappear; only new keys may be added",
                keys=altered,
            )
        values["metadata"] = to_storable(new, "metadata")
    if values:
        conn.execute(
            update(artifact_versions).where(artifact_versions.c.id == ver.id).values(**values)
        )
    if "aliases" in changes:
        wanted = set(changes["aliases"])
        current = set(_aliases_of(conn, [ver.id])[ver.id])
        if LATEST in wanted - current:
            raise UsageError("'latest' always points to the newest version; it cannot be set")
        wanted.discard(LATEST)
        protected = set(protected_aliases(conn, coll.project_id))
        for alias in sorted(wanted - current):
            check_alias(alias)
            if alias in protected and not is_admin:
                raise UsageError(f"alias {alias!r} is protected: only team admins move it")
            _move_alias(conn, coll.id, alias, ver, actor)
        for alias in sorted(current - wanted - {LATEST}):
            if alias in protected and not is_admin:
                raise UsageError(f"alias {alias!r} is protected: only team admins move it")
            _remove_alias(conn, coll.id, alias, ver, actor)
    ver = conn.execute(select(artifact_versions).where(artifact_versions.c.id == ver.id)).one()
    return _record(
        conn, coll, ver, ref.entity, ref.project, _aliases_of(conn, [ver.id])[ver.id], False
    )


def _fix_latest(conn: Connection, coll_id: int, actor: str | None) -> None:
    newest = conn.execute(
        select(artifact_versions)
        .where(
            and_(
                artifact_versions.c.collection_id == coll_id,
                artifact_versions.c.state == "committed",
            )
        )
        .order_by(artifact_versions.c.version_index.desc())
        .limit(1)
    ).first()
    if newest is not None:
        _move_alias(conn, coll_id, LATEST, newest, actor)


def delete_version(
    conn: Connection,
    ref: ArtifactRef,
    actor: str | None,
    delete_aliases: bool = False,
    reason: str = "deleted",
) -> None:
    """Tombstone a version: its manifest goes (blobs become collectable), its row and
    lineage edges stay so history and graphs still show it existed."""
    coll, ver = resolve(conn, ref.entity, ref.project, ref.name, f"v{ref.version}")
    if ver.state != "committed":
        return
    aliases = [a for a in _aliases_of(conn, [ver.id])[ver.id] if a != LATEST]
    if aliases and not delete_aliases:
        raise Conflict(
            f"artifact {ref.path} still has aliases {aliases}; move them first or pass "
            "delete_aliases=True",
            aliases=aliases,
        )
    protected = set(protected_aliases(conn, coll.project_id))
    if protected & set(aliases):
        raise Conflict(
            f"artifact {ref.path} holds protected alias(es) "
            f"{sorted(protected & set(aliases))}; move them first"
        )
    # A later delta may be based on this manifest: give the next version a full copy.
    dependants = (
        conn.execute(
            select(artifact_versions.c.id).where(artifact_versions.c.manifest_base_id == ver.id)
        )
        .scalars()
        .all()
    )
    for dep in dependants:
        full = load_manifest(conn, dep)
        conn.execute(
            update(artifact_versions)
            .where(artifact_versions.c.id == dep)
            .values(manifest=full.encode(), manifest_base_id=None, manifest_depth=0)
        )
    _rebase_depths(conn, dependants)
    for alias in _aliases_of(conn, [ver.id])[ver.id]:
        _remove_alias(conn, coll.id, alias, ver, actor)
    conn.execute(
        update(artifact_versions)
        .where(artifact_versions.c.id == ver.id)
        .values(
            state="deleted",
            manifest=None,
            manifest_base_id=None,
            deleted_at=utcnow(),
            creator=dict(ver.creator or {}) | {"deleted_by": actor, "delete_reason": reason},
        )
    )
    _fix_latest(conn, coll.id, actor)


def _rebase_depths(conn: Connection, roots: list[int]) -> None:
    frontier = list(roots)
    depth = 0
    while frontier:
        depth += 1
        children = (
            conn.execute(
                select(artifact_versions.c.id).where(
                    artifact_versions.c.manifest_base_id.in_(frontier)
                )
            )
            .scalars()
            .all()
        )
        if children:
            conn.execute(
                update(artifact_versions)
                .where(artifact_versions.c.id.in_(children))
                .values(manifest_depth=depth)
            )
        frontier = list(children)


# ------------------------------------------------------------------ lineage


def _run_record(conn: Connection, run_pk: int) -> RunRecord | None:
    row = conn.execute(run_service._run_query().where(runs.c.id == run_pk)).first()
    return None if row is None else to_record(row)


def _version_by_id(conn: Connection, vid: int) -> ArtifactRecord:
    ver = conn.execute(select(artifact_versions).where(artifact_versions.c.id == vid)).one()
    coll = conn.execute(
        select(artifact_collections).where(artifact_collections.c.id == ver.collection_id)
    ).one()
    ent, proj = conn.execute(
        select(entities.c.name, projects.c.name)
        .select_from(projects.join(entities, projects.c.entity_id == entities.c.id))
        .where(projects.c.id == coll.project_id)
    ).one()
    return _record(conn, coll, ver, ent, proj, _aliases_of(conn, [vid])[vid], False)


def version_runs(conn: Connection, ref: ArtifactRef) -> tuple[RunRecord | None, list[RunRecord]]:
    """(the run that logged the version, the runs that used it)."""
    _coll, ver = resolve(conn, ref.entity, ref.project, ref.name, f"v{ref.version}")
    logged = _run_record(conn, ver.run_pk) if ver.run_pk is not None else None
    users = (
        conn.execute(
            select(artifact_usage.c.run_pk)
            .where(
                and_(artifact_usage.c.version_id == ver.id, artifact_usage.c.direction == "input")
            )
            .order_by(artifact_usage.c.id)
        )
        .scalars()
        .all()
    )
    return logged, [r for r in (_run_record(conn, pk) for pk in users) if r is not None]


def run_artifacts(conn: Connection, run_ref: RunRef, direction: str) -> list[ArtifactRecord]:
    run_pk = run_service.require_run_pk(conn, run_ref)
    vids = (
        conn.execute(
            select(artifact_usage.c.version_id)
            .where(and_(artifact_usage.c.run_pk == run_pk, artifact_usage.c.direction == direction))
            .order_by(artifact_usage.c.id)
        )
        .scalars()
        .all()
    )
    return [_version_by_id(conn, v) for v in vids]


def lineage(
    conn: Connection, ref: ArtifactRef, depth: int = 2, direction: str = "both"
) -> dict[str, Any]:
    """The lineage graph around a version, ``depth`` run-hops each way.

    Nodes: ``artifact:entity/project/name:vN`` and ``run:entity/project/id``; edges
    point along the data flow (artifact -> run that used it, run -> artifact it logged).
    """
    if direction not in ("both", "upstream", "downstream"):
        raise UsageError("direction must be both, upstream or downstream")
    _coll, start = resolve(conn, ref.entity, ref.project, ref.name, f"v{ref.version}")
    nodes: dict[str, dict[str, Any]] = {}
    edges: set[tuple[str, str]] = set()

    def art_node(vid: int) -> str:
        rec = _version_by_id(conn, vid)
        key = f"artifact:{rec.ref.path}"
        nodes.setdefault(
            key,
            {
                "id": key,
                "kind": "artifact",
                "path": rec.ref.path,
                "type": rec.type,
                "aliases": rec.aliases,
                "state": rec.state,
            },
        )
        return key

    def run_node(run_pk: int) -> str | None:
        rec = _run_record(conn, run_pk)
        if rec is None:
            return None
        key = f"run:{rec.ref.path}"
        nodes.setdefault(
            key,
            {
                "id": key,
                "kind": "run",
                "path": rec.ref.path,
                "name": rec.name,
                "job_type": rec.job_type,
                "state": rec.state,
            },
        )
        return key

    def usage(filter_col: Any, value: int, direction_: str) -> list[int]:
        other = (
            artifact_usage.c.run_pk
            if filter_col is artifact_usage.c.version_id
            else artifact_usage.c.version_id
        )
        return list(
            conn.execute(
                select(other).where(
                    and_(filter_col == value, artifact_usage.c.direction == direction_)
                )
            ).scalars()
        )

    art_node(start.id)
    for way in ("upstream", "downstream"):
        if direction not in ("both", way):
            continue
        frontier = [start.id]
        for _ in range(depth):
            next_frontier: list[int] = []
            for vid in frontier:
                a = art_node(vid)
                # upstream: the run that logged this version, then what that run used
                run_pks = usage(
                    artifact_usage.c.version_id, vid, "output" if way == "upstream" else "input"
                )
                for pk in run_pks:
                    r = run_node(pk)
                    if r is None:
                        continue
                    edges.add((r, a) if way == "upstream" else (a, r))
                    for v2 in usage(
                        artifact_usage.c.run_pk, pk, "input" if way == "upstream" else "output"
                    ):
                        a2 = art_node(v2)
                        edges.add((a2, r) if way == "upstream" else (r, a2))
                        next_frontier.append(v2)
            frontier = next_frontier
    return {
        "root": f"artifact:{ref.path}",
        "nodes": list(nodes.values()),
        "edges": [{"source": s, "target": t} for s, t in sorted(edges)],
    }


# ------------------------------------------------------------------ alias history


def alias_history(
    conn: Connection, entity: str, project: str, name: str, alias: str | None = None
) -> list[dict[str, Any]]:
    coll = _require_collection(conn, entity, project, name)
    q = select(alias_events).where(alias_events.c.collection_id == coll.id)
    if alias is not None:
        q = q.where(alias_events.c.alias == alias)
    return [
        {
            "alias": r.alias,
            "from_version": r.from_version,
            "to_version": r.to_version,
            "actor": r.actor,
            "at": _aware(r.at),
        }
        for r in conn.execute(q.order_by(alias_events.c.at, alias_events.c.id))
    ]


# ------------------------------------------------------------------ retention and gc


def set_retention(
    conn: Connection,
    entity: str,
    project: str,
    name: str | None,
    keep_last: int | None,
    delete_unaliased_older_than: float | None,
) -> None:
    if keep_last is not None and keep_last < 1:
        raise UsageError("keep_last must be at least 1")
    if delete_unaliased_older_than is not None and delete_unaliased_older_than <= 0:
        raise UsageError("delete_unaliased_older_than must be a positive duration")
    if name is not None:
        check_name(name, "artifact")
    pid = ensure_project(conn, entity, project)
    cond = and_(
        retention_policies.c.project_id == pid,
        retention_policies.c.collection_name.is_(None)
        if name is None
        else retention_policies.c.collection_name == name,
    )
    conn.execute(delete(retention_policies).where(cond))
    if keep_last is not None or delete_unaliased_older_than is not None:
        conn.execute(
            insert(retention_policies).values(
                project_id=pid,
                collection_name=name,
                keep_last=keep_last,
                delete_unaliased_older_than=delete_unaliased_older_than,
            )
        )


def get_retention(conn: Connection, entity: str, project: str) -> list[dict[str, Any]]:
    pid = _project_id(conn, entity, project)
    if pid is None:
        return []
    return [
        {
            "name": r.collection_name,
            "keep_last": r.keep_last,
            "delete_unaliased_older_than": r.delete_unaliased_older_than,
        }
        for r in conn.execute(
            select(retention_policies).where(retention_policies.c.project_id == pid)
        )
    ]


def expired_versions(conn: Connection, now: dt.datetime) -> list[tuple[ArtifactRef, str]]:
    """Versions TTL or retention would delete, never one with a protected alias."""
    out: list[tuple[ArtifactRef, str]] = []
    rows = conn.execute(
        select(
            artifact_versions.c.id,
            artifact_versions.c.version_index,
            artifact_versions.c.created_at,
            artifact_versions.c.ttl_seconds,
            artifact_collections.c.name,
            artifact_collections.c.id.label("coll_id"),
            artifact_collections.c.project_id,
            entities.c.name.label("entity"),
            projects.c.name.label("project"),
        )
        .select_from(
            artifact_versions.join(
                artifact_collections, artifact_versions.c.collection_id == artifact_collections.c.id
            )
            .join(projects, artifact_collections.c.project_id == projects.c.id)
            .join(entities, projects.c.entity_id == entities.c.id)
        )
        .where(artifact_versions.c.state == "committed")
        .order_by(artifact_collections.c.id, artifact_versions.c.version_index.desc())
    ).all()
    aliases = _aliases_of(conn, [r.id for r in rows])
    policies: dict[int, list[Row[Any]]] = {}
    for p in conn.execute(select(retention_policies)):
        policies.setdefault(p.project_id, []).append(p)
    protected_by_project: dict[int, set[str]] = {}
    rank: dict[int, int] = {}
    for r in rows:
        if r.project_id not in protected_by_project:
            protected_by_project[r.project_id] = set(protected_aliases(conn, r.project_id))
        rank[r.coll_id] = rank.get(r.coll_id, 0) + 1
        held = set(aliases[r.id]) - {LATEST}
        if held & protected_by_project[r.project_id]:
            continue
        created = _aware(r.created_at)
        assert created is not None
        age = (now - created).total_seconds()
        ref = ArtifactRef(r.entity, r.project, r.name, r.version_index)
        if r.ttl_seconds is not None and age > r.ttl_seconds:
            out.append((ref, "ttl"))
            continue
        for pol in policies.get(r.project_id, []):
            if pol.collection_name not in (None, r.name):
                continue
            if pol.keep_last is not None and rank[r.coll_id] > pol.keep_last and not held:
                out.append((ref, f"retention: keep last {pol.keep_last}"))
                break
            if (
                pol.delete_unaliased_older_than is not None
                and not held
                and age > pol.delete_unaliased_older_than
                and rank[r.coll_id] > 1
            ):
                out.append((ref, "retention: unaliased and old"))
                break
    return out


def live_digests(conn: Connection) -> set[str]:
    """Every blob a committed version references."""
    live: set[str] = set()
    for vid in conn.execute(
        select(artifact_versions.c.id).where(artifact_versions.c.state == "committed")
    ).scalars():
        live |= load_manifest(conn, vid).blob_digests()
    return live


def condemn_unreferenced(
    conn: Connection, grace_seconds: float, now: dt.datetime, extra_live: set[str] = frozenset()
) -> list[tuple[str, int]]:  # type: ignore[assignment]
    """Mark blobs no committed version references (and older than the grace period, so
    uploads waiting for their commit are spared) as condemned; returns them."""
    live = live_digests(conn) | set(extra_live)
    cutoff = now - dt.timedelta(seconds=grace_seconds)
    dead = [
        (d, s)
        for d, s, created in conn.execute(select(blobs.c.digest, blobs.c.size, blobs.c.created_at))
        if d not in live and _aware(created) <= cutoff
    ]  # type: ignore[operator]
    keys = [d for d, _ in dead]
    for i in range(0, len(keys), 500):
        conn.execute(
            update(blobs).where(blobs.c.digest.in_(keys[i : i + 500])).values(condemned=True)
        )
    return dead


def forget_blob(conn: Connection, digest: str) -> bool:
    """Drop a condemned blob's row; True when it was still condemned (delete its bytes)."""
    res = conn.execute(delete(blobs).where(and_(blobs.c.digest == digest, blobs.c.condemned)))
    return bool(res.rowcount)


# ------------------------------------------------------------------ storage and diff


def storage_stats(
    conn: Connection, entity: str | None = None, project: str | None = None
) -> list[dict[str, Any]]:
    """Logical bytes (sum over versions) vs physical bytes (distinct blobs) per project
    and artifact type."""
    q = (
        select(
            artifact_versions.c.id,
            artifact_versions.c.size,
            artifact_collections.c.type,
            entities.c.name.label("entity"),
            projects.c.name.label("project"),
        )
        .select_from(
            artifact_versions.join(
                artifact_collections, artifact_versions.c.collection_id == artifact_collections.c.id
            )
            .join(projects, artifact_collections.c.project_id == projects.c.id)
            .join(entities, projects.c.entity_id == entities.c.id)
        )
        .where(artifact_versions.c.state == "committed")
    )
    if entity is not None:
        q = q.where(entities.c.name == entity)
    if project is not None:
        q = q.where(projects.c.name == project)
    sizes = dict(conn.execute(select(blobs.c.digest, blobs.c.size)).all())
    groups: dict[tuple[str, str, str], dict[str, Any]] = {}
    for r in conn.execute(q):
        g = groups.setdefault(
            (r.entity, r.project, r.type),
            {
                "entity": r.entity,
                "project": r.project,
                "type": r.type,
                "versions": 0,
                "logical_bytes": 0,
                "digests": set(),
            },
        )
        g["versions"] += 1
        g["logical_bytes"] += r.size
        g["digests"] |= load_manifest(conn, r.id).blob_digests()
    out = []
    for g in groups.values():
        digests = g.pop("digests")
        g["physical_bytes"] = sum(sizes.get(d, 0) for d in digests)
        g["blobs"] = len(digests)
        out.append(g)
    return sorted(out, key=lambda g: (g["entity"], g["project"], g["type"]))


def projects_of_runs(conn: Connection, run_pks: list[int]) -> dict[int, str]:
    rows = conn.execute(
        select(runs.c.id, entities.c.name, projects.c.name, runs.c.run_id)
        .select_from(
            runs.join(projects, runs.c.project_id == projects.c.id).join(
                entities, projects.c.entity_id == entities.c.id
            )
        )
        .where(runs.c.id.in_(run_pks))
    )
    return {pk: f"{e}/{p}/{r}" for pk, e, p, r in rows}


__all__ = [
    "LATEST",
    "alias_history",
    "check_alias",
    "commit_version",
    "delete_version",
    "get_artifact",
    "lineage",
    "list_collections",
    "list_versions",
    "missing_blobs",
    "or_",
]

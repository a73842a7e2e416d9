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

import dataclasses
import datetime as dt
import re
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, Row, Select, and_, delete, func, insert, select, update

from stemma.errors import (
    Conflict,
    InvalidNameError,
    InvalidValueError,
    NotFound,
    PermissionDenied,
    UsageError,
)
from stemma.service import audit
from stemma.service import chunks as chunk_service
from stemma.service import runs as run_service
from stemma.service.access import Gate, Level, Principal
from stemma.service.blobs import missing_blobs, share_with_gc
from stemma.service.clock import aware, utcnow
from stemma.service.runs import _insert_ignore, ensure_project, find_run_pk
from stemma.storage.models import (
    alias_events,
    artifact_aliases,
    artifact_collections,
    artifact_usage,
    artifact_versions,
    entities,
    project_settings,
    projects,
    retention_policies,
    runs,
)
from stemma.wire.manifest import Manifest, check_entry_path
from stemma.wire.names import check_name
from stemma.wire.records import ArtifactRecord, ArtifactRef, RunRef
from stemma.wire.values import MAX_SECONDS, from_storable, to_storable

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


def _collection(
    conn: Connection, entity: str, project: str, name: str, lock: bool = False
) -> Row[Any] | None:
    """The collection's row. With ``lock`` (every write to its versions or aliases), the
    row stays locked until commit: on PostgreSQL, where writers run concurrently, this
    serialises a name's version numbering and alias moves, as SQLite's write lock does
    (two movers of one alias would otherwise both insert it, or both record a move
    from the same version). SQLite ignores ``FOR UPDATE``."""
    pid = _project_id(conn, entity, project)
    if pid is None:
        return None
    q = select(artifact_collections).where(
        and_(artifact_collections.c.project_id == pid, artifact_collections.c.name == name)
    )
    return conn.execute(q.with_for_update() if lock else q).first()


def _require_collection(
    conn: Connection, entity: str, project: str, name: str, lock: bool = False
) -> Row[Any]:
    coll = _collection(conn, entity, project, name, lock)
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
        created_at=aware(ver.created_at),  # type: ignore[arg-type]
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
    lock: bool = False,
) -> tuple[Row[Any], Row[Any]]:
    """(collection row, version row) for ``name:selector``, or NotFound listing choices.

    ``lock``: for a write, lock the collection first (see :func:`_collection`), so the
    version row read after it is current."""
    coll = _require_collection(conn, entity, project, name, lock)
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
        return coll, ver
    found = _version_row(conn, coll, index)
    if found is None:
        raise NotFound(
            f"artifact {entity}/{project}/{name} has no version v{index} "
            f"({_existing_summary(conn, coll)})",
            version=index,
        )
    return coll, found


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
            "created_at": aware(r.created_at),
            "versions": r.versions,
            "latest_version": r.last,
            "size": int(r.size),
        }
        for r in conn.execute(q)
    ]


@dataclasses.dataclass(frozen=True)
class _CollectionOf:
    """The collection fields :func:`_record` reads, from a joined row."""

    name: str
    type: str


def _version_query(
    conn: Connection,
    what: list[Any],
    entity: str,
    project: str,
    type_: str | None,
    name: str | None,
    filters: Mapping[str, Any] | None,
    include_deleted: bool,
) -> Select[Any] | None:
    """SELECT ``what`` over the project's versions (of ``name``, of ``type_``) matching
    ``filters``; None when the project does not exist. NotFound for a missing ``name``."""
    from stemma.service.filters import ARTIFACT_TARGET, compile_filters

    where = compile_filters(filters, conn.dialect.name, ARTIFACT_TARGET) if filters else None
    if name is not None:
        pid: int | None = _require_collection(conn, entity, project, name).project_id
    else:
        pid = _project_id(conn, entity, project)
    if pid is None:
        return None
    c, v = artifact_collections.c, artifact_versions.c
    q = (
        select(*what)
        .select_from(artifact_versions.join(artifact_collections, v.collection_id == c.id))
        .where(c.project_id == pid)
    )
    if name is not None:
        q = q.where(c.name == name)
    if type_ is not None:
        q = q.where(c.type == type_)
    if not include_deleted:
        q = q.where(v.state == "committed")
    return q if where is None else q.where(where)


def query_versions(
    conn: Connection,
    entity: str,
    project: str,
    type_: str | None = None,
    name: str | None = None,
    filters: Mapping[str, Any] | None = None,
    order: str = "-created_at",
    offset: int = 0,
    limit: int | None = 50,
    include_deleted: bool = False,
) -> list[ArtifactRecord]:
    """A page of a project's versions (of one artifact with ``name``, of one type with
    ``type_``) matching ``filters`` (:mod:`stemma.wire.filters`), in ``order``: a
    column (``created_at``, ``version``, ``size``, ``name``...) or ``metadata.<key>``,
    ``-`` for descending; ties by commit order."""
    from stemma.service.filters import ARTIFACT_TARGET, order_terms

    if offset < 0 or (limit is not None and limit < 0):
        raise UsageError("offset and limit may not be negative", offset=offset, limit=limit)
    terms = order_terms(order, conn.dialect.name, ARTIFACT_TARGET)
    columns = [
        artifact_versions,
        artifact_collections.c.name.label("coll_name"),
        artifact_collections.c.type.label("coll_type"),
    ]
    q = _version_query(conn, columns, entity, project, type_, name, filters, include_deleted)
    if q is None:
        return []
    q = q.order_by(*terms).offset(offset)
    if limit is not None:
        q = q.limit(limit)
    rows = conn.execute(q).all()
    aliases = _aliases_of(conn, [r.id for r in rows])
    return [
        _record(
            conn,
            _CollectionOf(r.coll_name, r.coll_type),  # type: ignore[arg-type]
            r,
            entity,
            project,
            aliases[r.id],
            False,
        )
        for r in rows
    ]


def count_versions(
    conn: Connection,
    entity: str,
    project: str,
    type_: str | None = None,
    name: str | None = None,
    filters: Mapping[str, Any] | None = None,
    include_deleted: bool = False,
) -> int:
    """How many versions :func:`query_versions` would list without a limit."""
    q = _version_query(conn, [func.count()], entity, project, type_, name, filters, include_deleted)
    return 0 if q is None else int(conn.execute(q).scalar_one())


def artifact_types(conn: Connection, entity: str, project: str) -> list[dict[str, Any]]:
    """The artifact types of a project, by name: [{type, collections, versions}], where
    ``versions`` counts committed versions."""
    pid = _project_id(conn, entity, project)
    if pid is None:
        return []
    c, v = artifact_collections.c, artifact_versions.c
    q = (
        select(
            c.type,
            func.count(func.distinct(c.id)).label("collections"),
            func.count(v.id).label("versions"),
        )
        .select_from(
            artifact_collections.outerjoin(
                artifact_versions, and_(v.collection_id == c.id, v.state == "committed")
            )
        )
        .where(c.project_id == pid)
        .group_by(c.type)
        .order_by(c.type)
    )
    return [
        {"type": r.type, "collections": int(r.collections), "versions": int(r.versions)}
        for r in conn.execute(q)
    ]


# ------------------------------------------------------------------ commit


def protected_aliases(conn: Connection, project_id: int) -> list[str]:
    row = conn.execute(
        select(project_settings.c.protected_aliases).where(
            project_settings.c.project_id == project_id
        )
    ).scalar()
    return list(row) if row is not None else list(DEFAULT_PROTECTED)


def set_protected_aliases(
    conn: Connection, gate: Gate, entity: str, project: str, aliases: list[str]
) -> None:
    gate.require(conn, entity, project, Level.ADMIN, f"set the protected aliases of {project}")
    clean = sorted({check_alias(a) for a in aliases})
    pid = ensure_project(conn, entity, project, gate.who)
    res = conn.execute(
        update(project_settings)
        .where(project_settings.c.project_id == pid)
        .values(protected_aliases=clean)
    )
    if not res.rowcount:
        conn.execute(insert(project_settings).values(project_id=pid, protected_aliases=clean))
    audit.append(
        conn,
        gate.who,
        "project.protected_aliases",
        f"{entity}/{project}",
        entity=entity,
        details={"aliases": clean},
    )


def _record_alias(
    conn: Connection,
    coll_id: int,
    alias: str,
    old: int | None,
    new: int | None,
    who: Principal,
    event: str = "move",
    comment: str | None = None,
) -> None:
    """Alias history, and (except for `latest`, which follows every commit) the audit log."""
    conn.execute(
        insert(alias_events).values(
            collection_id=coll_id,
            alias=alias,
            from_version=old,
            to_version=new,
            actor=who.name,
            at=utcnow(),
            event=event,
            comment=comment,
        )
    )
    if alias != LATEST:
        coll = conn.execute(
            select(
                artifact_collections.c.name,
                projects.c.name.label("project"),
                entities.c.name.label("entity"),
            )
            .select_from(
                artifact_collections.join(
                    projects, projects.c.id == artifact_collections.c.project_id
                ).join(entities, entities.c.id == projects.c.entity_id)
            )
            .where(artifact_collections.c.id == coll_id)
        ).one()
        audit.append(
            conn,
            who,
            f"alias.{event}",
            f"{coll.entity}/{coll.project}/{coll.name}:{alias}",
            entity=coll.entity,
            details={"from": old, "to": new, "comment": comment},
        )


def _move_alias(
    conn: Connection,
    coll_id: int,
    alias: str,
    ver: Row[Any],
    who: Principal,
    event: str = "move",
    comment: str | None = None,
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
        conn,
        coll_id,
        alias,
        None if cur is None else cur.version_index,
        ver.version_index,
        who,
        event,
        comment,
    )


def alias_version(conn: Connection, coll_id: int, alias: str) -> int | None:
    """The version index an alias points at now (None: unset)."""
    return conn.execute(
        select(artifact_versions.c.version_index)
        .select_from(
            artifact_aliases.join(
                artifact_versions, artifact_aliases.c.version_id == artifact_versions.c.id
            )
        )
        .where(and_(artifact_aliases.c.collection_id == coll_id, artifact_aliases.c.alias == alias))
    ).scalar()


def _remove_alias(
    conn: Connection, coll_id: int, alias: str, ver: Row[Any], who: Principal
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
        _record_alias(conn, coll_id, alias, ver.version_index, None, who)


def _check_blobs_present(conn: Connection, manifest: Manifest) -> Manifest:
    """The manifest with each chunked file's chunk list filled in, after checking that the
    store holds every file: as a whole blob, or as a recipe whose chunks are all stored.
    A file stored whole keeps no chunk list (it reads as the blob)."""
    wanted = manifest.blob_digests()
    missing = missing_blobs(conn, wanted)
    chunked = chunk_service.complete_files(conn, missing) if missing else {}
    missing -= set(chunked)
    if missing:
        raise Conflict(
            f"cannot commit: {len(missing)} blob(s) of the manifest are not in the store "
            f"(e.g. {sorted(missing)[0]}); upload them first",
            missing=sorted(missing)[:100],
        )
    if not chunked:
        return Manifest(dataclasses.replace(e, chunks=None) for e in manifest)
    found = chunk_service.recipes(conn, chunked)
    return Manifest(
        dataclasses.replace(
            e, chunks=tuple(found[e.digest]) if e.ref is None and e.digest in found else None
        )
        for e in manifest
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
    gate: Gate,
) -> tuple[ArtifactRecord, bool]:
    """Commit a new version (or return the identical existing one); returns (record, new).

    Needs member rights in the project. On a server the version is attributed to the
    signed-in account whatever the client claims (the OS user is kept as ``os_user``).
    """
    who = gate.who
    gate.require(conn, entity, project, Level.WRITE, f"log artifacts to {entity}/{project}")
    if not who.is_local:
        creator = dict(creator) | {"user": who.name, "os_user": creator.get("user")}
    check_name(name, "artifact")
    check_name(type_, "artifact type")
    if ttl_seconds is not None and not 0 < ttl_seconds <= MAX_SECONDS:
        raise UsageError("ttl must be positive and at most 100 years (or None for no expiry)")
    alias_list = [check_alias(a) for a in aliases if a != LATEST]
    for entry in manifest:  # never trust a client's paths: they are written on download
        if check_entry_path(entry.path) != entry.path:
            raise InvalidValueError(
                f"manifest entry {entry.path!r} is not a clean relative path", name=entry.path
            )
    share_with_gc(conn)
    manifest = _check_blobs_present(conn, manifest)
    pid = ensure_project(conn, entity, project, who)
    if ttl_seconds is None:
        ttl_seconds = default_ttl(conn, pid, name)
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
    run_pk = None
    if run_ref is not None:
        gate.require(conn, run_ref.entity, run_ref.project, Level.WRITE)
        run_pk = find_run_pk(conn, run_ref)
    protected = set(protected_aliases(conn, pid)) & set(alias_list)
    if protected and not gate.can(conn, entity, project, Level.ADMIN):
        raise PermissionDenied(
            f"alias(es) {sorted(protected)} are protected in {entity}/{project}: only team "
            "admins move them; log without them and ask for a promotion "
            "(stemma artifact promote NAME:vN ALIAS --request)",
            aliases=sorted(protected),
        )
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
        _move_alias(conn, coll.id, LATEST, ver, who)
        audit.append(
            conn,
            who,
            "artifact.commit",
            f"{entity}/{project}/{name}:v{index}",
            entity=entity,
            details={
                "digest": digest,
                "size": manifest.size,
                "files": len(manifest),
                "run": run_ref.path if run_ref is not None else None,
            },
        )
    else:
        ver = same
    for alias in alias_list:
        _move_alias(conn, coll.id, alias, ver, who)
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


def use_version(conn: Connection, gate: Gate, run_ref: RunRef, ref: ArtifactRef) -> None:
    """Record that a run used a version (an input edge of the lineage graph).

    The run's project needs member rights; the artifact's (another project or team,
    perhaps) only read access. The edge is recorded across projects all the same.
    """
    gate.require(conn, run_ref.entity, run_ref.project, Level.WRITE)
    gate.require(conn, ref.entity, ref.project, Level.READ)
    run_pk = run_service.require_run_pk(conn, run_ref)
    _coll, ver = resolve(conn, ref.entity, ref.project, ref.name, f"v{ref.version}")
    if ver.state != "committed":
        raise NotFound(f"artifact {ref.path} was deleted", path=ref.path)
    _add_usage(conn, run_pk, ver.id, "input")
    audit.append(
        conn,
        gate.who,
        "artifact.use",
        ref.path,
        entity=run_ref.entity,
        details={"run": run_ref.path},
    )


# ------------------------------------------------------------------ updates


def update_version(
    conn: Connection, gate: Gate, ref: ArtifactRef, changes: dict[str, Any]
) -> ArtifactRecord:
    """Change aliases / description / ttl, or add metadata keys, of a committed version.

    ``aliases`` is the whole new list; ``add_aliases`` / ``remove_aliases`` change the
    current one (what a click on one alias means).

    Members may do all of it except moving protected aliases and changing the TTL of a
    version someone else logged: those need a team admin.
    """
    who = gate.who
    gate.require(
        conn,
        ref.entity,
        ref.project,
        Level.WRITE,
        f"change artifacts in {ref.entity}/{ref.project}",
    )
    is_admin = gate.can(conn, ref.entity, ref.project, Level.ADMIN)
    coll, ver = resolve(conn, ref.entity, ref.project, ref.name, f"v{ref.version}", lock=True)
    if ver.state != "committed":
        raise Conflict(f"artifact {ref.path} was deleted and cannot be changed")
    unknown = set(changes) - {
        "aliases",
        "add_aliases",
        "remove_aliases",
        "description",
        "ttl_seconds",
        "metadata",
    }
    if unknown:
        raise UsageError(
            f"cannot change {sorted(unknown)} of a committed artifact: files "
            "and existing metadata are immutable",
            fields=sorted(unknown),
        )
    if "add_aliases" in changes or "remove_aliases" in changes:
        # Relative to the aliases the version has now, read under the version's lock: two
        # people adding different aliases at once both keep theirs.
        if "aliases" in changes:
            raise UsageError("give either aliases, or add_aliases / remove_aliases, not both")
        now = set(_aliases_of(conn, [ver.id])[ver.id]) - {LATEST}
        add = set(changes.pop("add_aliases", None) or ())
        remove = set(changes.pop("remove_aliases", None) or ())
        changes = {**changes, "aliases": sorted((now | add) - remove)}
    values: dict[str, Any] = {}
    if "description" in changes:
        values["description"] = changes["description"]
    if "ttl_seconds" in changes:
        ttl = changes["ttl_seconds"]
        if ttl is not None and not 0 < ttl <= MAX_SECONDS:
            raise UsageError("ttl must be positive and at most 100 years (or None for no expiry)")
        owner = (ver.creator or {}).get("user")
        if ttl != ver.ttl_seconds and not is_admin and owner != who.name:
            raise PermissionDenied(
                f"{ref.path} was logged by {owner}: only they or a team admin change its TTL"
            )
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
        audit.append(
            conn,
            who,
            "artifact.update",
            ref.path,
            entity=ref.entity,
            details={k: (v if k != "metadata" else sorted(v)) for k, v in values.items()},
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
                raise _protected(ref, alias)
            _move_alias(conn, coll.id, alias, ver, who)
        for alias in sorted(current - wanted - {LATEST}):
            if alias in protected and not is_admin:
                raise _protected(ref, alias)
            _remove_alias(conn, coll.id, alias, ver, who)
    ver = conn.execute(select(artifact_versions).where(artifact_versions.c.id == ver.id)).one()
    return _record(
        conn, coll, ver, ref.entity, ref.project, _aliases_of(conn, [ver.id])[ver.id], False
    )


def default_ttl(conn: Connection, project_id: int, name: str) -> float | None:
    """The TTL a new version of ``name`` gets when logged without one: its collection's
    policy's default, else the project-wide one, else None (no expiry)."""
    rows = conn.execute(
        select(retention_policies.c.collection_name, retention_policies.c.default_ttl_seconds)
        .where(retention_policies.c.project_id == project_id)
        .where(retention_policies.c.default_ttl_seconds.is_not(None))
    ).all()
    found = {r.collection_name: r.default_ttl_seconds for r in rows}
    return found.get(name, found.get(None))


def _protected(ref: ArtifactRef, alias: str) -> PermissionDenied:
    return PermissionDenied(
        f"alias {alias!r} is protected in {ref.entity}/{ref.project}: only team admins move "
        f"it; ask for it with `stemma artifact promote {ref.name}:v{ref.version} {alias} "
        "--request`",
        alias=alias,
    )


def _fix_latest(conn: Connection, coll_id: int, who: Principal) -> None:
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
        _move_alias(conn, coll_id, LATEST, newest, who)


def delete_version(
    conn: Connection,
    gate: Gate,
    ref: ArtifactRef,
    delete_aliases: bool = False,
    reason: str = "deleted",
) -> None:
    """Tombstone a version: its manifest goes (blobs become collectable), its row and
    lineage edges stay so history and graphs still show it existed. Team admins only."""
    who = gate.who
    gate.require(
        conn, ref.entity, ref.project, Level.ADMIN, f"delete artifact versions ({ref.path})"
    )
    coll, ver = resolve(conn, ref.entity, ref.project, ref.name, f"v{ref.version}", lock=True)
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
    _rebase_depths(conn, list(dependants))
    for alias in _aliases_of(conn, [ver.id])[ver.id]:
        _remove_alias(conn, coll.id, alias, ver, who)
    conn.execute(
        update(artifact_versions)
        .where(artifact_versions.c.id == ver.id)
        .values(
            state="deleted",
            manifest=None,
            manifest_base_id=None,
            deleted_at=utcnow(),
            creator=dict(ver.creator or {}) | {"deleted_by": who.name, "delete_reason": reason},
        )
    )
    audit.append(
        conn, who, "artifact.delete", ref.path, entity=ref.entity, details={"reason": reason}
    )
    _fix_latest(conn, coll.id, who)


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
            "at": aware(r.at),
            "event": r.event,
            "comment": r.comment,
        }
        for r in conn.execute(q.order_by(alias_events.c.at, alias_events.c.id))
    ]

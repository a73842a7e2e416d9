"""The embedded backend: the service layer called in-process over SQL and local files."""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import getpass
import os
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from stemma.backend.base import Backend, Progress, StrPath, check_history_request
from stemma.errors import Conflict, NotFound, StoreError, UsageError
from stemma.service import artifacts as artifact_service
from stemma.service import audit as audit_service
from stemma.service import blobs as blob_service
from stemma.service import chunks as chunk_service
from stemma.service import diff as diff_service
from stemma.service import history as history_service
from stemma.service import identity as identity_service
from stemma.service import lineage as lineage_service
from stemma.service import media as media_service
from stemma.service import promotions as promotion_service
from stemma.service import reports as report_service
from stemma.service import retention as retention_service
from stemma.service import run_facets
from stemma.service import runs as run_service
from stemma.service import webhooks as webhook_service
from stemma.service.access import Gate, Level, Principal
from stemma.service.content import ContentStore
from stemma.settings import Settings
from stemma.storage.blobs import LocalBlobStore
from stemma.storage.chunking import PackBuilder
from stemma.storage.database import (
    create_store_engine,
    ensure_schema,
    read_tx,
    sqlite_url,
    write_tx,
)
from stemma.wire.chunks import Column
from stemma.wire.records import (
    ApplyResult,
    ArtifactCommit,
    ArtifactRecord,
    ArtifactRef,
    RunRecord,
    RunRef,
)

# Marking silent runs as crashed is a write; do it at most this often per process.
_SWEEP_EVERY = 2.0


class EmbeddedBackend(Backend):
    """SQLite under ``STEMMA_DIR`` (or ``STEMMA_DATABASE_URL``), migrated on open.

    Every method acts as one principal: the local user (every right) unless the
    instance came from :meth:`as_principal`, which the server does for each request.
    Access checks happen here and in the service functions, never in the routes.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.url = settings.database_url or sqlite_url(settings.dir)
        try:
            self.engine = create_store_engine(self.url)
            ensure_schema(self.engine)
            self.blobs = ContentStore(_open_blob_store(settings), self.engine)
        except StoreError:
            raise
        except (OSError, SQLAlchemyError) as exc:
            raise StoreError(f"cannot open the store at {self.url}: {exc}", url=self.url) from exc
        # Shared by every as_principal() view: one sweep per process every few seconds.
        self._sweep_state = {"last": 0.0}
        self._sweep_lock = threading.Lock()
        self.who = Principal.local(_os_user())
        self.gate = Gate(self.who)
        self.home: str | None = None  # a service account's team: where its runs go

    def as_principal(self, who: Principal, home: str | None = None) -> EmbeddedBackend:
        """This store, acting as ``who`` (shares the engine and blob store)."""
        view = copy.copy(self)
        view.who = who
        view.gate = Gate(who)
        view.home = home
        return view

    def default_entity(self) -> str:
        return self.home or self.who.name

    @contextlib.contextmanager
    def _audited_tx(self) -> Iterator[Any]:
        """A write transaction holding the audit chain's lock from its start (see
        :func:`stemma.service.audit.lock` for why first)."""
        with write_tx(self.engine) as conn:
            audit_service.lock(conn)
            yield conn

    def _require(self, conn: Any, entity: str, project: str | None, level: Level) -> None:
        self.gate.require(conn, entity, project, level)

    def apply(
        self, ref: RunRef, spool_id: str, start: int, end: int, events: list[dict[str, Any]]
    ) -> ApplyResult:
        with write_tx(self.engine) as conn:
            if any(ev.get("t") in ("run", "finish") for ev in events):
                audit_service.lock(conn)  # this frame creates, resumes or finishes the run
            self._require(conn, ref.entity, ref.project, Level.WRITE)
            return run_service.apply_frame(conn, ref, spool_id, start, end, events, self.who)

    def committed_offset(self, ref: RunRef, spool_id: str) -> int:
        with read_tx(self.engine) as conn:
            self._require(conn, ref.entity, ref.project, Level.WRITE)
            return run_service.committed_offset(conn, ref, spool_id)

    def heartbeat(self, ref: RunRef) -> None:
        with write_tx(self.engine) as conn:
            self._require(conn, ref.entity, ref.project, Level.WRITE)
            run_service.heartbeat(conn, ref)

    def _sweep(self) -> None:
        now = time.monotonic()
        if now - self._sweep_state["last"] < _SWEEP_EVERY or not self._sweep_lock.acquire(
            blocking=False
        ):
            return
        try:
            with write_tx(self.engine) as conn:
                run_service.sweep_crashed(conn, self.settings.crash_timeout)
            self._sweep_state["last"] = now
        finally:
            self._sweep_lock.release()

    def get_run(self, ref: RunRef) -> RunRecord | None:
        self._sweep()
        with read_tx(self.engine) as conn:
            if not self.gate.can(conn, ref.entity, ref.project, Level.READ):
                return None
            return run_service.get_run(conn, ref)

    def list_runs(
        self,
        entity: str,
        project: str,
        *,
        order: str = "-created_at",
        offset: int = 0,
        limit: int | None = 50,
        filters: Mapping[str, Any] | None = None,
    ) -> list[RunRecord]:
        self._sweep()
        with read_tx(self.engine) as conn:
            self._require(conn, entity, project, Level.READ)
            return run_service.list_runs(
                conn, entity, project, order=order, offset=offset, limit=limit, filters=filters
            )

    def count_runs(
        self, entity: str, project: str, filters: Mapping[str, Any] | None = None
    ) -> int:
        with read_tx(self.engine) as conn:
            self._require(conn, entity, project, Level.READ)
            return run_service.count_runs(conn, entity, project, filters)

    def run_value_counts(
        self,
        entity: str,
        project: str,
        fields: Sequence[str],
        filters: Mapping[str, Any] | None = None,
        limit: int = 200,
    ) -> dict[str, list[tuple[str | None, int]]]:
        """{field: [(value, runs)]} of the project's runs (that match ``filters``) for
        ``state``, ``job_type``, ``group``, ``user`` and ``tags``, most runs first: the
        choices of the web UI's filters and its group summaries, by SQL GROUP BY."""
        with read_tx(self.engine) as conn:
            self._require(conn, entity, project, Level.READ)
            return run_facets.value_counts(conn, entity, project, fields, filters, limit)

    def run_keys(self, entity: str, project: str, sample: int = 500) -> dict[str, list[str]]:
        """{"config": keys, "summary": keys} used by the project's latest ``sample`` runs
        (nested keys as dotted paths): the web UI's column choices."""
        with read_tx(self.engine) as conn:
            self._require(conn, entity, project, Level.READ)
            return run_facets.sample_keys(conn, entity, project, sample)

    def list_projects(self, entity: str | None = None) -> list[tuple[str, str, int]]:
        with read_tx(self.engine) as conn:
            found = run_service.list_projects(conn, entity)
            return [p for p in found if self.gate.can(conn, p[0], p[1], Level.READ)]

    def history_keys(self, ref: RunRef) -> list[str]:
        with read_tx(self.engine) as conn:
            self._require(conn, ref.entity, ref.project, Level.READ)
            return history_service.list_keys(conn, run_service.require_run_pk(conn, ref))

    def read_history(
        self,
        ref: RunRef,
        keys: list[str] | None = None,
        *,
        stream: str = "default",
        samples: int | None = None,
        min_step: int | None = None,
        max_step: int | None = None,
    ) -> dict[str, Column]:
        with read_tx(self.engine) as conn:
            self._require(conn, ref.entity, ref.project, Level.READ)
            pk = run_service.require_run_pk(conn, ref)
            if samples and min_step is None and max_step is None:
                return history_service.read_sampled_many(
                    conn, [pk], keys, samples, stream=stream
                ).get(pk, {})
            cols = history_service.read_columns(
                conn, pk, keys, stream=stream, min_step=min_step, max_step=max_step
            )
        if samples:
            cols = {k: history_service.downsample(c, samples) for k, c in cols.items()}
        return cols

    def read_histories(
        self,
        entity: str,
        project: str,
        run_ids: list[str],
        keys: list[str] | None = None,
        *,
        stream: str = "default",
        samples: int | None = None,
    ) -> dict[str, dict[str, Column]]:
        check_history_request(run_ids, samples, keys)
        with read_tx(self.engine) as conn:
            self._require(conn, entity, project, Level.READ)
            pks = run_service.run_pks(conn, entity, project, list(dict.fromkeys(run_ids)))
            if samples:
                by_pk = history_service.read_sampled_many(
                    conn, list(pks.values()), keys, samples, stream=stream
                )
            else:
                by_pk = history_service.read_columns_many(
                    conn, list(pks.values()), keys, stream=stream
                )
        return {run_id: by_pk.get(pk, {}) for run_id, pk in pks.items()}

    def update_run(self, ref: RunRef, changes: dict[str, Any]) -> None:
        with self._audited_tx() as conn:
            self._require(conn, ref.entity, ref.project, Level.WRITE)
            run_service.update_run(conn, ref, changes, self.who)

    def delete_run(self, ref: RunRef) -> None:
        """Members delete their own runs; team admins anyone's."""
        with self._audited_tx() as conn:
            level = self.gate.require(conn, ref.entity, ref.project, Level.WRITE)
            if level < Level.ADMIN and run_service.run_owner(conn, ref) != self.who.name:
                from stemma.errors import PermissionDenied

                raise PermissionDenied(
                    f"{ref.path} belongs to {run_service.run_owner(conn, ref)}: only they or "
                    "a team admin may delete it"
                )
            run_service.delete_run(conn, ref, self.who)

    # ------------------------------------------------------------ media
    def list_media(self, ref: RunRef, key: str | None = None) -> list[dict[str, Any]]:
        with read_tx(self.engine) as conn:
            self._require(conn, ref.entity, ref.project, Level.READ)
            return media_service.list_media(conn, run_service.require_run_pk(conn, ref), key)

    def count_media(self, ref: RunRef) -> int:
        """How many media items the run logged (the run page's tab count)."""
        with read_tx(self.engine) as conn:
            self._require(conn, ref.entity, ref.project, Level.READ)
            return media_service.count_media(conn, run_service.require_run_pk(conn, ref))

    def media_blob(self, ref: RunRef, digest: str) -> str:
        """The Content-Type of ``digest`` as a blob of the run's media (what the media
        route serves it as); NotFound when it is not one, or its bytes are not stored."""
        with read_tx(self.engine) as conn:
            self._require(conn, ref.entity, ref.project, Level.READ)
            pk = run_service.require_run_pk(conn, ref)
            content_type = media_service.content_type(conn, pk, digest)
        if content_type is None or not self.blobs.has(digest):
            raise NotFound(f"run {ref.path} has no media blob {digest}", digest=digest)
        return content_type

    def read_media(self, ref: RunRef, digest: str) -> bytes:
        self.media_blob(ref, digest)
        with self.blobs.open(digest) as fh:
            return bytes(fh.read())

    # ------------------------------------------------------------ artifacts

    def store_files(
        self, files: Sequence[tuple[StrPath, str | None]], progress: Progress = None
    ) -> list[tuple[str, int]]:
        known_digests = [d for _, d in files if d]
        with read_tx(self.engine) as conn:
            present = blob_service.present_blobs(conn, known_digests)
            present.update(chunk_service.complete_files(conn, known_digests))
        results: list[tuple[str, int] | None] = [None] * len(files)
        todo: list[int] = []
        for i, (_path, known) in enumerate(files):
            if known is not None and known in present:  # stored already: not even opened
                results[i] = (known, present[known])
                if progress is not None:
                    progress(present[known])
            else:
                todo.append(i)

        # Large files go as chunks (only the chunks the store lacks are written), one
        # file at a time: each is already cut and hashed on every core.
        large = [i for i in todo if self.blobs.wants_chunks(_file_size(files[i][0]))]
        for i in large:
            results[i] = self.blobs.store_chunked(files[i][0], progress)
        chunked = set(large)
        todo = [i for i in todo if i not in chunked]

        def put(indices: list[int]) -> None:
            for i in indices:
                digest, size = self.blobs.raw.put_file(files[i][0], files[i][1])
                results[i] = (digest, size)
                if progress is not None:
                    progress(size)

        for _attempt in range(3):
            self._in_batches(put, todo)
            stored = [results[i] for i in todo]
            with write_tx(self.engine) as conn:
                vanished = set(blob_service.register_blobs(conn, self.blobs.raw, stored))  # type: ignore[arg-type]
            # a gc deleted some bytes between storing and registering: store them again
            todo = [i for i in todo if results[i][0] in vanished]  # type: ignore[index]
            if not todo:
                break
        else:
            raise StoreError(
                "blobs keep vanishing while being stored (a gc running with --grace 0?); try again"
            )
        return [r for r in results if r is not None]

    @staticmethod
    def _in_batches(work: Any, indices: list[int]) -> None:
        """Run ``work`` over ``indices`` on a few threads, a batch per task: thousands of
        tiny files would otherwise cost more in task scheduling than in I/O."""
        if len(indices) <= 8:
            work(indices)
            return
        workers = min(16, 4 * (os.cpu_count() or 2))
        size = max(8, len(indices) // (workers * 4))
        batches = [indices[k : k + size] for k in range(0, len(indices), size)]
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for _ in pool.map(work, batches):
                pass

    # The server's side of uploads: the client cannot hand the server file paths.
    def missing_blobs(self, digests: list[str]) -> set[str]:
        with read_tx(self.engine) as conn:
            return blob_service.missing_blobs(conn, digests)

    def register_blobs(self, items: list[tuple[str, int]]) -> None:
        with write_tx(self.engine) as conn:
            vanished = blob_service.register_blobs(conn, self.blobs.raw, items)
        if vanished:
            raise Conflict(
                f"{len(vanished)} blob(s) are not in the store; upload them again",
                missing=vanished[:100],
            )

    def register_uploaded(self, items: list[tuple[str, int]]) -> None:
        """Register blobs a client uploaded straight to the object store, after checking
        the store really holds them at the declared size."""
        for digest, size in items:
            found = self.blobs.size(digest)
            if found is None:
                raise NotFound(f"blob {digest} was not uploaded", digest=digest)
            if found != size:
                raise Conflict(
                    f"blob {digest} is {found} bytes in the store, not {size}", digest=digest
                )
        self.register_blobs(items)

    # The server's side of chunked uploads and downloads.
    def chunks_missing(
        self, files: list[tuple[str, int]], chunk_digests: list[str]
    ) -> tuple[list[str], list[str]]:
        """(files already complete, chunks the store lacks)."""
        with read_tx(self.engine) as conn:
            done = blob_service.present_blobs(conn, [d for d, _ in files])
            done.update(chunk_service.complete_files(conn, [d for d, _ in files]))
            lacking = chunk_service.missing_chunks(conn, chunk_digests)
        return sorted(done), sorted(lacking)

    def register_packs(self, packs: list[str]) -> int:
        """Register uploaded packs after checking every chunk in them."""
        return sum(self.blobs.register_uploaded_pack(p) for p in packs)

    def register_chunked_file(self, digest: str, size: int, recipe: list[tuple[str, int]]) -> None:
        lacking = self.blobs.register_uploaded_file(digest, size, recipe)
        if lacking:
            raise Conflict(
                f"{len(lacking)} chunk(s) of {digest} are not in the store; upload them first",
                missing=lacking[:100],
            )

    def locate_file(self, digest: str) -> tuple[int, list[tuple[str, Any]]]:
        """(size, [(pack, PackedChunk)] in file order) of a chunked file."""
        with read_tx(self.engine) as conn:
            recipe = chunk_service.recipe(conn, digest)
            if recipe is None:
                raise NotFound(f"{digest} is not stored as chunks", digest=digest)
            where = chunk_service.locate(conn, [d for d, _ in recipe])
        missing = [d for d, _ in recipe if d not in where]
        if missing:
            raise NotFound(f"chunk {missing[0]} of {digest} is not in the store", digest=digest)
        return sum(n for _, n in recipe), [where[d] for d, _ in recipe]

    def commit_artifact(self, commit: ArtifactCommit) -> tuple[ArtifactRecord, bool]:
        with self._audited_tx() as conn:
            return artifact_service.commit_version(
                conn,
                self.blobs,
                entity=commit.entity,
                project=commit.project,
                name=commit.name,
                type_=commit.type,
                description=commit.description,
                metadata=commit.metadata,
                manifest=commit.manifest,
                aliases=commit.aliases,
                ttl_seconds=commit.ttl_seconds,
                run_ref=commit.run,
                creator=commit.creator,
                gate=self.gate,
            )

    def get_artifact(
        self,
        entity: str,
        project: str,
        name: str,
        selector: str | None,
        at: Any = None,
        with_manifest: bool = True,
    ) -> ArtifactRecord:
        with read_tx(self.engine) as conn:
            self._require(conn, entity, project, Level.READ)
            return artifact_service.get_artifact(
                conn, entity, project, name, selector, at, with_manifest
            )

    def list_artifact_versions(
        self, entity: str, project: str, name: str, include_deleted: bool = False
    ) -> list[ArtifactRecord]:
        with read_tx(self.engine) as conn:
            self._require(conn, entity, project, Level.READ)
            return artifact_service.list_versions(conn, entity, project, name, include_deleted)

    def list_artifact_collections(
        self, entity: str, project: str, type_: str | None = None
    ) -> list[dict[str, Any]]:
        with read_tx(self.engine) as conn:
            self._require(conn, entity, project, Level.READ)
            return artifact_service.list_collections(conn, entity, project, type_)

    def query_artifact_versions(
        self,
        entity: str,
        project: str,
        *,
        type_: str | None = None,
        name: str | None = None,
        filters: Mapping[str, Any] | None = None,
        order: str = "-created_at",
        offset: int = 0,
        limit: int | None = 50,
        include_deleted: bool = False,
    ) -> list[ArtifactRecord]:
        with read_tx(self.engine) as conn:
            self._require(conn, entity, project, Level.READ)
            return artifact_service.query_versions(
                conn,
                entity,
                project,
                type_=type_,
                name=name,
                filters=filters,
                order=order,
                offset=offset,
                limit=limit,
                include_deleted=include_deleted,
            )

    def count_artifact_versions(
        self,
        entity: str,
        project: str,
        *,
        type_: str | None = None,
        name: str | None = None,
        filters: Mapping[str, Any] | None = None,
        include_deleted: bool = False,
    ) -> int:
        with read_tx(self.engine) as conn:
            self._require(conn, entity, project, Level.READ)
            return artifact_service.count_versions(
                conn, entity, project, type_, name, filters, include_deleted
            )

    def artifact_types(self, entity: str, project: str) -> list[dict[str, Any]]:
        with read_tx(self.engine) as conn:
            self._require(conn, entity, project, Level.READ)
            return artifact_service.artifact_types(conn, entity, project)

    def update_artifact(self, ref: ArtifactRef, changes: dict[str, Any]) -> ArtifactRecord:
        with self._audited_tx() as conn:
            return artifact_service.update_version(conn, self.gate, ref, changes)

    def delete_artifact(self, ref: ArtifactRef, delete_aliases: bool = False) -> None:
        with self._audited_tx() as conn:
            artifact_service.delete_version(conn, self.gate, ref, delete_aliases)

    def use_artifact(self, run: RunRef, ref: ArtifactRef) -> None:
        with self._audited_tx() as conn:
            artifact_service.use_version(conn, self.gate, run, ref)

    def _readable(self, conn: Any, path: str) -> bool:
        entity, project = path.split("/", 2)[:2]
        return self.gate.can(conn, entity, project, Level.READ)

    def artifact_runs(self, ref: ArtifactRef) -> tuple[RunRecord | None, list[RunRecord]]:
        with read_tx(self.engine) as conn:
            self._require(conn, ref.entity, ref.project, Level.READ)
            logged, used = lineage_service.version_runs(conn, ref)
            if logged is not None and not self._readable(conn, logged.ref.path):
                logged = None
            return logged, [r for r in used if self._readable(conn, r.ref.path)]

    def run_artifacts(self, run: RunRef, direction: str) -> list[ArtifactRecord]:
        with read_tx(self.engine) as conn:
            self._require(conn, run.entity, run.project, Level.READ)
            found = lineage_service.run_artifacts(conn, run, direction)
            return [a for a in found if self._readable(conn, a.ref.path)]

    def artifact_lineage(
        self, ref: ArtifactRef, depth: int = 2, direction: str = "both"
    ) -> dict[str, Any]:
        """The graph, without the nodes (and their edges) the caller may not read."""
        with read_tx(self.engine) as conn:
            self._require(conn, ref.entity, ref.project, Level.READ)
            graph = lineage_service.lineage(conn, ref, depth, direction)
            keep = {n["id"] for n in graph["nodes"] if self._readable(conn, n["path"])}
        hidden = len(graph["nodes"]) - len(keep)
        graph["nodes"] = [n for n in graph["nodes"] if n["id"] in keep]
        graph["edges"] = [e for e in graph["edges"] if e["source"] in keep and e["target"] in keep]
        graph["hidden"] = hidden
        return graph

    def alias_history(
        self, entity: str, project: str, name: str, alias: str | None = None
    ) -> list[dict[str, Any]]:
        with read_tx(self.engine) as conn:
            self._require(conn, entity, project, Level.READ)
            return artifact_service.alias_history(conn, entity, project, name, alias)

    def artifact_diff(
        self, a: ArtifactRef, b: ArtifactRef, contents: bool = True
    ) -> dict[str, Any]:
        with read_tx(self.engine) as conn:
            self._require(conn, a.entity, a.project, Level.READ)
            self._require(conn, b.entity, b.project, Level.READ)
            return diff_service.diff_versions(conn, self.blobs, a, b, contents)

    def verify_blobs(self, digests: list[str], progress: Progress = None) -> list[str]:
        def check(digest: str) -> bool:
            ok = self.blobs.verify(digest)
            if progress is not None:
                progress(self.blobs.size(digest) or 0)
            return ok

        with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 2)) as pool:
            results = list(pool.map(check, digests))
        return [d for d, ok in zip(digests, results, strict=True) if not ok]

    def fetch_blob(self, digest: str, dest: Path, chunked: bool = False) -> None:
        del chunked  # the content store knows which files are chunked
        self.blobs.copy_to(digest, dest)

    def get_protected_aliases(self, entity: str, project: str) -> list[str]:
        with read_tx(self.engine) as conn:
            self._require(conn, entity, project, Level.READ)
            pid = artifact_service._project_id(conn, entity, project)
            if pid is None:
                return list(artifact_service.DEFAULT_PROTECTED)
            return artifact_service.protected_aliases(conn, pid)

    def set_protected_aliases(self, entity: str, project: str, aliases: list[str]) -> None:
        with self._audited_tx() as conn:
            artifact_service.set_protected_aliases(conn, self.gate, entity, project, aliases)

    def get_retention(self, entity: str, project: str) -> list[dict[str, Any]]:
        with read_tx(self.engine) as conn:
            self._require(conn, entity, project, Level.READ)
            return retention_service.get_retention(conn, entity, project)

    def set_retention(
        self,
        entity: str,
        project: str,
        name: str | None,
        keep_last: int | None,
        delete_unaliased_older_than: float | None,
        default_ttl: float | None = None,
    ) -> None:
        with self._audited_tx() as conn:
            retention_service.set_retention(
                conn,
                self.gate,
                entity,
                project,
                name,
                keep_last,
                delete_unaliased_older_than,
                default_ttl,
            )

    def gc(
        self, dry_run: bool = False, grace_seconds: float = 3600.0, repack_below: float = 0.5
    ) -> dict[str, Any]:
        """Delete expired versions, then unreferenced chunks and blobs; repack packfiles
        whose live fraction fell below ``repack_below``.

        Every deletion is two-phase (condemn under the lock commits share, then delete
        only what is still condemned), so an upload racing gc revives what it needs.
        """
        self.gate.require_instance_admin("run the garbage collector")
        if not 0 <= repack_below <= 1:
            raise UsageError(f"repack_below must be between 0 and 1, got {repack_below}")
        now = run_service.utcnow()
        report: dict[str, Any] = {
            "dry_run": dry_run,
            "versions": [],
            "blobs": 0,
            "bytes": 0,
            "chunks": 0,
            "chunk_bytes": 0,
            "repacked": 0,
            "temp_files": 0,
        }
        with self._audited_tx() as conn:
            expired = retention_service.expired_versions(conn, now)
            report["versions"] = [{"artifact": ref.path, "reason": why} for ref, why in expired]
            if not dry_run:
                gc_gate = Gate(Principal(name="gc", kind="system", is_admin=True))
                for ref, why in expired:
                    artifact_service.delete_version(
                        conn, gc_gate, ref, delete_aliases=True, reason=why
                    )
        if dry_run:  # what would go: chunks first, then blobs (emptied packs not counted)
            with read_tx(self.engine) as conn:
                live = retention_service.live_digests(conn)
                gone = set(chunk_service.dead_recipes(conn, live, grace_seconds, now))
                dead_chunks = chunk_service.unreferenced(
                    conn, chunk_service.live_chunks(conn, gone), grace_seconds, now
                )
                dead = blob_service.unreferenced(
                    conn, live | chunk_service.live_packs(conn), grace_seconds, now
                )
            report["chunks"] = len(dead_chunks)
            report["chunk_bytes"] = sum(size for _, size in dead_chunks)
            report["blobs"] = len(dead)
            report["bytes"] = sum(size for _, size in dead)
            return report
        # Chunks: forget recipes no version uses, condemn chunks no recipe uses (under
        # the write lock: no commit can interleave), then drop rows still condemned.
        with write_tx(self.engine) as conn:
            blob_service.lock_against_commits(conn)
            live = retention_service.live_digests(conn)
            chunk_service.drop_recipes(
                conn, chunk_service.dead_recipes(conn, live, grace_seconds, now)
            )
            sizes = dict(
                chunk_service.unreferenced(
                    conn, chunk_service.live_chunks(conn), grace_seconds, now
                )
            )
            condemned = list(sizes)
            chunk_service.condemn(conn, condemned)
        for i in range(0, len(condemned), 500):
            batch = condemned[i : i + 500]
            with write_tx(self.engine) as conn:
                dropped = chunk_service.take_condemned(conn, batch)
            report["chunks"] += len(dropped)
            report["chunk_bytes"] += sum(sizes.get(d, 0) for d in dropped)
        report["repacked"] = self._repack(repack_below, grace_seconds, now)
        # Blobs (packs included, alive while a chunk row points into them): condemn.
        with write_tx(self.engine) as conn:
            blob_service.lock_against_commits(conn)
            live = retention_service.live_digests(conn) | chunk_service.live_packs(conn)
            dead = blob_service.condemn_unreferenced(conn, live, grace_seconds, now)
        # Delete bytes whose row is still condemned, a batch per transaction.
        for i in range(0, len(dead), 500):
            batch = [d for d, _ in dead[i : i + 500]]
            with write_tx(self.engine) as conn:
                for digest in blob_service.take_condemned(conn, batch):
                    size = self.blobs.raw.size(digest) or 0
                    self.blobs.raw.delete(digest)
                    report["blobs"] += 1
                    report["bytes"] += size
        # Bytes with no row at all (a process killed between storing a file and
        # registering it), once older than the grace period.
        with write_tx(self.engine) as conn:
            blob_service.lock_against_commits(conn)  # no registration between read and delete
            known = blob_service.known_digests(conn)
            for digest, size in self.blobs.raw.orphans(known, grace_seconds):
                self.blobs.raw.delete(digest)
                report["blobs"] += 1
                report["bytes"] += size
        # Temporary files are writes in progress (or of crashed writers): only those an
        # hour old are certainly abandoned, whatever grace the caller chose for blobs.
        report["temp_files"] = self.blobs.raw.clear_temp(max(grace_seconds, TEMP_AGE))
        return report

    def _repack(self, below: float, grace_seconds: float, now: Any) -> int:
        """Copy the live chunks of packs mostly dead into new packs and point their rows
        there; the old packs then have no rows and go with the blobs. Returns how many
        packs were repacked. Packs younger than the grace period are left alone (an
        upload may still be registering them)."""
        with read_tx(self.engine) as conn:
            usage = chunk_service.pack_usage(conn)
            ages = blob_service.blob_ages(conn, list(usage))
        cutoff = now - dt.timedelta(seconds=grace_seconds)
        todo = []
        for pack, (used, _count) in usage.items():
            size, created = ages.get(pack, (None, None))
            if size and created is not None and created <= cutoff and used < below * size:
                todo.append(pack)
        for pack in todo:
            with read_tx(self.engine) as conn:
                index = chunk_service.chunks_in(conn, pack)
            if not index:
                continue
            builder = PackBuilder(self.blobs.params.pack_size)
            for c in sorted(index, key=lambda c: c.offset):
                builder.add(
                    c.digest,
                    self.blobs.raw.read_range(pack, c.offset, c.stored_size),
                    c.size,
                    c.codec,
                )
            body, new_index = builder.finish()
            new = self.blobs.raw.put_bytes(body)
            with write_tx(self.engine) as conn:
                blob_service.share_with_gc(conn)
                blob_service.register_blobs(conn, self.blobs.raw, [(new, len(body))])
                chunk_service.move_chunks(conn, pack, new, new_index)
        return len(todo)

    def storage_stats(
        self, entity: str | None = None, project: str | None = None
    ) -> list[dict[str, Any]]:
        with read_tx(self.engine) as conn:
            stats = retention_service.storage_stats(conn, entity, project)
            return [s for s in stats if self.gate.can(conn, s["entity"], s["project"], Level.READ)]

    # ------------------------------------------------------------ people and teams
    def whoami(self) -> dict[str, Any]:
        with read_tx(self.engine) as conn:
            out = identity_service.whoami(conn, self.who)
        out["entity"] = self.default_entity()
        return out

    def has_users(self) -> bool:
        with read_tx(self.engine) as conn:
            return identity_service.has_users(conn)

    def create_user(
        self,
        email: str,
        *,
        display_name: str | None = None,
        username: str | None = None,
        is_admin: bool = False,
        password: str | None = None,
    ) -> tuple[dict[str, Any], str]:
        with self._audited_tx() as conn:
            return identity_service.create_user(
                conn,
                self.gate,
                email,
                display_name=display_name,
                username=username,
                is_admin=is_admin,
                password=password,
            )

    def create_user_with_key(
        self,
        email: str,
        *,
        display_name: str | None = None,
        username: str | None = None,
        is_admin: bool = False,
        password: str | None = None,
    ) -> tuple[dict[str, Any], str, str]:
        """The user and a first key in one transaction: both or neither."""
        with self._audited_tx() as conn:
            user, pw = identity_service.create_user(
                conn,
                self.gate,
                email,
                display_name=display_name,
                username=username,
                is_admin=is_admin,
                password=password,
            )
            _info, key = identity_service.create_key(
                conn, self.gate, user["username"], name="initial"
            )
        return user, pw, key

    def login(
        self, email: str, password: str, source: str | None = None
    ) -> tuple[str, str, Principal]:
        """Check a password (rate-limited); returns (session token, CSRF token, who)."""
        from stemma.errors import Unauthenticated

        try:
            with self._audited_tx() as conn:
                return identity_service.login(conn, email, password, source)
        except Unauthenticated:
            with self._audited_tx() as conn:
                identity_service.record_login_failure(conn, email, source)
            raise

    def session(self, token: str, source: str | None = None) -> tuple[Principal, str] | None:
        """(who, CSRF token) of a live session cookie, or None."""
        with read_tx(self.engine) as conn:
            return identity_service.session_principal(conn, token, source)

    def logout(self, token: str) -> None:
        with self._audited_tx() as conn:
            found = identity_service.session_principal(conn, token)
            identity_service.logout(conn, token)
            if found is not None:
                audit_service.append(
                    conn, found[0], "session.logout", found[0].name, entity=found[0].name
                )

    def list_users(self) -> list[dict[str, Any]]:
        with read_tx(self.engine) as conn:
            return identity_service.list_users(conn, self.gate)

    def set_user_disabled(self, user: str, disabled: bool = True) -> None:
        with self._audited_tx() as conn:
            identity_service.set_user_disabled(conn, self.gate, user, disabled)

    def set_password(self, user: str, password: str | None = None) -> str:
        with self._audited_tx() as conn:
            return identity_service.set_password(conn, self.gate, user, password)

    def create_api_key(
        self, user: str | None = None, name: str | None = None, expires_in: float | None = None
    ) -> tuple[dict[str, Any], str]:
        import datetime as dt

        life = None if expires_in is None else dt.timedelta(seconds=expires_in)
        with self._audited_tx() as conn:
            return identity_service.create_key(conn, self.gate, user, name=name, expires_in=life)

    def list_api_keys(self, user: str | None = None) -> list[dict[str, Any]]:
        with read_tx(self.engine) as conn:
            return identity_service.list_keys(conn, self.gate, user)

    def revoke_api_key(self, prefix: str) -> dict[str, Any]:
        with self._audited_tx() as conn:
            return identity_service.revoke_key(conn, self.gate, prefix)

    def create_team(self, name: str) -> dict[str, Any]:
        with self._audited_tx() as conn:
            return identity_service.create_team(conn, self.gate, name)

    def list_teams(self) -> list[dict[str, Any]]:
        with read_tx(self.engine) as conn:
            return identity_service.list_teams(conn, self.gate)

    def team_members(self, team: str) -> dict[str, Any]:
        with read_tx(self.engine) as conn:
            return identity_service.team_members(conn, self.gate, team)

    def add_member(self, team: str, email: str, role: str = "member") -> dict[str, Any]:
        with self._audited_tx() as conn:
            return identity_service.add_member(conn, self.gate, team, email, role)

    def remove_member(self, team: str, user: str) -> dict[str, Any]:
        with self._audited_tx() as conn:
            return identity_service.remove_member(conn, self.gate, team, user)

    def create_service_account(
        self, team: str, name: str, role: str = "member"
    ) -> tuple[dict[str, Any], str]:
        with self._audited_tx() as conn:
            return identity_service.create_service_account(conn, self.gate, team, name, role)

    def delete_service_account(self, team: str, name: str) -> None:
        with self._audited_tx() as conn:
            identity_service.delete_service_account(conn, self.gate, team, name)

    def set_project_visibility(self, entity: str, project: str, visibility: str) -> None:
        with self._audited_tx() as conn:
            identity_service.set_visibility(conn, self.gate, entity, project, visibility)

    # ------------------------------------------------------------ audit
    def audit_log(
        self,
        *,
        entity: str | None = None,
        actor: str | None = None,
        action: str | None = None,
        target: str | None = None,
        since: Any = None,
        until: Any = None,
        limit: int = 100,
        before_seq: int | None = None,
    ) -> list[dict[str, Any]]:
        """Entries, newest first: everything for instance admins, their teams' entries
        (and their own entity's) for team admins, nothing otherwise."""
        with read_tx(self.engine) as conn:
            scope = identity_service.audit_scope(conn, self.gate, entity)
            return audit_service.query(
                conn,
                entities=scope,
                actor=actor,
                action=action,
                target=target,
                since=since,
                until=until,
                limit=limit,
                before_seq=before_seq,
            )

    def audit_verify(self) -> dict[str, Any]:
        self.gate.require_instance_admin("verify the audit chain")
        with read_tx(self.engine) as conn:
            return audit_service.verify(conn)

    # ------------------------------------------------------------ promotions
    def request_promotion(
        self, ref: ArtifactRef, alias: str, comment: str | None = None
    ) -> dict[str, Any]:
        with self._audited_tx() as conn:
            return promotion_service.request(conn, self.gate, ref, alias, comment)

    def list_promotions(
        self,
        entity: str,
        project: str,
        name: str | None = None,
        state: str | None = "pending",
    ) -> list[dict[str, Any]]:
        with read_tx(self.engine) as conn:
            return promotion_service.list_requests(conn, self.gate, entity, project, name, state)

    def decide_promotion(
        self,
        request_id: int,
        approve: bool,
        comment: str | None = None,
        project: tuple[str, str] | None = None,
    ) -> dict[str, Any]:
        """Approve or reject; ``project`` (entity, name), when given, must be the one the
        request belongs to."""
        with self._audited_tx() as conn:
            return promotion_service.decide(conn, self.gate, request_id, approve, comment, project)

    # ------------------------------------------------------------ reports
    def save_report(
        self, entity: str, project: str, spec: dict[str, Any], report_id: str | None = None
    ) -> dict[str, Any]:
        with self._audited_tx() as conn:
            return report_service.save(conn, self.gate, entity, project, spec, report_id)

    def get_report(self, report_id: str, revision: int | None = None) -> dict[str, Any]:
        with read_tx(self.engine) as conn:
            return report_service.get(conn, self.gate, report_id, revision)

    def report_location(self, report_id: str) -> tuple[str, str]:
        """(entity, project) of a report the caller may read (the server's PUT route)."""
        with read_tx(self.engine) as conn:
            return report_service.location(conn, self.gate, report_id)

    def list_reports(self, entity: str, project: str) -> list[dict[str, Any]]:
        with read_tx(self.engine) as conn:
            return report_service.list_reports(conn, self.gate, entity, project)

    def report_revisions(self, report_id: str) -> list[dict[str, Any]]:
        with read_tx(self.engine) as conn:
            return report_service.revisions(conn, self.gate, report_id)

    def delete_report(self, report_id: str) -> None:
        with self._audited_tx() as conn:
            report_service.delete_report(conn, self.gate, report_id)

    def set_report_share(self, report_id: str, enabled: bool) -> dict[str, Any]:
        with self._audited_tx() as conn:
            return report_service.set_share(conn, self.gate, report_id, enabled)

    def report_sharing_allowed(self, entity: str, project: str) -> bool:
        with read_tx(self.engine) as conn:
            return report_service.get_sharing_allowed(conn, self.gate, entity, project)

    def set_report_sharing_allowed(self, entity: str, project: str, allowed: bool) -> None:
        with self._audited_tx() as conn:
            report_service.set_sharing_allowed(conn, self.gate, entity, project, allowed)

    # ------------------------------------------------------------ webhooks
    def add_webhook(
        self,
        team: str,
        url: str,
        events: Sequence[str],
        alias: str | None = None,
        secret: str | None = None,
        *,
        reached_at: Sequence[tuple[str, int]] = (),
    ) -> tuple[dict[str, Any], str]:
        """``reached_at``: (host, port) the server was reached at (a webhook may not
        point there)."""
        with read_tx(self.engine) as conn:  # who may, before looking any name up
            webhook_service.require_admin(conn, self.gate, team)
        own = [*reached_at, *webhook_service.server_endpoints()]
        target = webhook_service.check_url(url, own=own)  # DNS: outside the write lock
        with self._audited_tx() as conn:
            return webhook_service.register(conn, self.gate, team, target, events, alias, secret)

    def list_webhooks(self, team: str) -> list[dict[str, Any]]:
        with read_tx(self.engine) as conn:
            return webhook_service.list_webhooks(conn, self.gate, team)

    def delete_webhook(self, team: str, webhook_id: int) -> None:
        with self._audited_tx() as conn:
            webhook_service.delete_webhook(conn, self.gate, team, webhook_id)

    def test_webhook(self, team: str, webhook_id: int) -> dict[str, Any]:
        with write_tx(self.engine) as conn:
            return webhook_service.ping(conn, self.gate, team, webhook_id)

    def webhook_deliveries(
        self, team: str, webhook_id: int, limit: int = 20
    ) -> list[dict[str, Any]]:
        with read_tx(self.engine) as conn:
            return webhook_service.deliveries(conn, self.gate, team, webhook_id, limit)

    def report_by_share_token(
        self, token: str, source: str | None = None
    ) -> tuple[dict[str, Any], Principal]:
        """(record, principal) of a live share link, for the public share page: the
        principal reads only the report's project (``self.as_principal(principal)``
        is the store to evaluate the report with). NotFound for an unknown or revoked
        token, or when the project's admins switched share links off. Server side only:
        no HTTP client method (the token is the credential, checked here)."""
        with read_tx(self.engine) as conn:
            return report_service.by_share_token(conn, token, source)

    def close(self) -> None:
        self.engine.dispose()


def _os_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry (some containers)
        return "local"


TEMP_AGE = 3600.0  # a temporary file this old belongs to no live write


def _file_size(path: StrPath) -> int:
    return os.stat(path).st_size


def _open_blob_store(settings: Settings) -> Any:
    """A local directory (path or file:// URL) or an S3 bucket (s3://bucket/prefix)."""
    url = settings.storage_url
    if url is None:
        return LocalBlobStore(settings.dir / "blobs")
    if url.startswith("file://"):
        return LocalBlobStore(Path(url[len("file://") :]))
    if url.startswith("s3://"):
        from stemma.storage.blobs.s3 import S3BlobStore

        return S3BlobStore(url)
    if "://" not in url:
        return LocalBlobStore(Path(url).expanduser())
    raise StoreError(
        f"STEMMA_STORAGE_URL={url!r}: use a directory, a file:// URL or s3://bucket/prefix",
        url=url,
    )

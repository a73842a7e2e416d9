"""``stemma.Artifact``: a versioned set of files, logged by a run and used by others.

Building an artifact only records paths and their stat; nothing is copied until
``run.log_artifact``, which hashes (skipping files the stat cache already knows),
stores only the blobs the store lacks, and commits the manifest in one transaction.
A committed version is immutable: ``save()`` may move aliases, change the description
and TTL, and add (never change) metadata keys.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from stemma.errors import Conflict, InvalidValueError, NotFound, UsageError
from stemma.wire.manifest import Entry, Manifest, check_entry_path
from stemma.wire.names import check_name
from stemma.wire.records import ArtifactRecord, ArtifactRef, RunRef
from stemma.wire.values import to_storable

if TYPE_CHECKING:
    from stemma.api.public import ApiRun
    from stemma.backend.base import Backend, StrPath
    from stemma.settings import Settings


class ManifestEntry:
    """One file of an artifact, as ``artifact.get_entry(name)`` returns it."""

    def __init__(self, artifact: Artifact, entry: Entry) -> None:
        self._artifact = artifact
        self.path = entry.path
        self.digest = entry.digest
        self.size = entry.size
        self.ref = entry.ref
        self.extra = dict(entry.extra or {})
        # (sha256, size) of each chunk in file order when the store keeps the file as
        # content-defined chunks (files of STEMMA_CHUNK_THRESHOLD and over); else None
        self.chunks = entry.chunks
        self._entry = entry

    def download(self, root: str | os.PathLike[str] | None = None) -> str:
        """Write this one file under ``root`` (default: the artifact's directory)."""
        base = Path(root) if root is not None else self._artifact._default_root()
        target = _inside(base, self.path)
        self._artifact._fetch(self._entry, target)
        return str(target)

    def __repr__(self) -> str:
        return f"<ManifestEntry {self.path} {self.size} bytes>"


def _inside(root: Path, name: str, parents: dict[str, str] | None = None) -> Path:
    """``root/name``, refusing any name that would land outside ``root``, even through
    a symbolic link already in the tree. ``parents`` caches resolved directories, so a
    download of thousands of files resolves each directory once."""
    clean = check_entry_path(name)
    parents = {} if parents is None else parents
    real_root = parents.get("")
    if real_root is None:
        real_root = parents[""] = os.path.realpath(root)
    head, _, tail = clean.rpartition("/")
    real_dir = parents.get(head)
    if real_dir is None:
        real_dir = os.path.realpath(os.path.join(real_root, head)) if head else real_root
        if real_dir != real_root and not real_dir.startswith(real_root + os.sep):
            raise InvalidValueError(f"entry {name!r} would be written outside {root}", name=name)
        parents[head] = real_dir
    target = os.path.join(real_dir, tail)
    if os.path.islink(target):
        real = os.path.realpath(target)
        if not real.startswith(real_root + os.sep):
            raise InvalidValueError(f"entry {name!r} would be written outside {root}", name=name)
    return Path(target)


class Artifact:
    """A named, typed set of files with metadata; versions v0, v1, ... per name."""

    def __init__(
        self,
        name: str,
        type: str,
        description: str | None = None,
        metadata: dict[str, Any] | None = None,
        incremental: bool = False,
        use_as: str | None = None,
    ) -> None:
        del incremental, use_as
        self._name = check_name(name, "artifact")
        self.type = check_name(type, "artifact type")
        self.description = description
        self._metadata: dict[str, Any] = {}
        if metadata:
            to_storable(metadata, "metadata")  # refuse what cannot be stored, now
            self._metadata = dict(metadata)
        self._local: dict[str, tuple[str, os.stat_result]] = {}  # name -> (abs path, stat)
        self._refs: dict[str, Entry] = {}
        self._record: ArtifactRecord | None = None
        self._manifest: Manifest | None = None
        self._saved_aliases: list[str] = []
        self._saved_metadata: dict[str, Any] = {}
        self.aliases: list[str] = []
        self._ttl: dt.timedelta | None = None
        self._backend: Backend | None = None
        self._settings: Settings | None = None
        self._tmpdir: tempfile.TemporaryDirectory[str] | None = None
        self._download_root: Path | None = None

    # ------------------------------------------------------------------ identity
    @property
    def committed(self) -> bool:
        return self._record is not None

    @property
    def state(self) -> str:
        if self._record is None:
            return "PENDING"
        return "COMMITTED" if self._record.state == "committed" else "DELETED"

    @property
    def source_name(self) -> str:
        """The name without a version (``bert-classifier``)."""
        return self._name

    @property
    def name(self) -> str:
        """``name:vN`` once committed (as W&B), the plain name before."""
        if self._record is None:
            return self._name
        return f"{self._name}:v{self._record.version}"

    @property
    def version(self) -> str | None:
        return None if self._record is None else f"v{self._record.version}"

    @property
    def qualified_name(self) -> str:
        r = self._require_committed("qualified_name")
        return f"{r.entity}/{r.project}/{self.name}"

    @property
    def entity(self) -> str | None:
        return None if self._record is None else self._record.entity

    @property
    def project(self) -> str | None:
        return None if self._record is None else self._record.project

    @property
    def id(self) -> str | None:
        return None if self._record is None else self._record.ref.path

    @property
    def ref(self) -> ArtifactRef:
        return self._require_committed("ref").ref

    @property
    def digest(self) -> str:
        if self._record is not None:
            return self._record.digest
        return self._build_manifest(hash_local=True)[0].digest()

    @property
    def size(self) -> int:
        if self._record is not None:
            return self._record.size
        return sum(st.st_size for _, st in self._local.values()) + sum(
            e.size or 0 for e in self._refs.values()
        )

    @property
    def created_at(self) -> dt.datetime | None:
        return None if self._record is None else self._record.created_at

    @property
    def creator(self) -> dict[str, Any]:
        return {} if self._record is None else dict(self._record.creator)

    @property
    def metadata(self) -> dict[str, Any]:
        return self._metadata

    @metadata.setter
    def metadata(self, value: dict[str, Any]) -> None:
        to_storable(value, "metadata")
        self._metadata = dict(value)

    @property
    def ttl(self) -> dt.timedelta | None:
        return self._ttl

    @ttl.setter
    def ttl(self, value: dt.timedelta | None) -> None:
        if value is not None:
            if not isinstance(value, dt.timedelta):
                raise UsageError(
                    "ttl must be a datetime.timedelta (e.g. stemma.util.parse_time('7d')) or None"
                )
            if value.total_seconds() <= 0:
                raise UsageError("ttl must be positive")
        self._ttl = value

    @property
    def manifest(self) -> dict[str, Any]:
        """``{"version": 2, "contents": {path: {"digest", "size", ...}}}`` (a large file stored as
        chunks also lists ``chunks``: [[sha256, size], ...] in file order)."""
        if self._manifest is not None:
            return self._manifest.to_json()
        return self._build_manifest(hash_local=True)[0].to_json()

    def __repr__(self) -> str:
        return f"<Artifact {self.name} type={self.type} state={self.state}>"

    # ------------------------------------------------------------------ building
    def _require_pending(self, what: str) -> None:
        if self._record is not None:
            raise UsageError(
                f"cannot {what}: artifact {self.name} is committed and immutable; "
                "create a new Artifact with the same name for a new version"
            )

    def _require_committed(self, what: str) -> ArtifactRecord:
        if self._record is None:
            raise UsageError(f"{what} is only known once the artifact is logged")
        return self._record

    def _claim(self, name: str, overwrite: bool) -> str:
        clean = check_entry_path(name)
        if not overwrite and (clean in self._local or clean in self._refs):
            raise UsageError(
                f"artifact already has an entry {clean!r} (overwrite=True replaces it)", name=clean
            )
        self._refs.pop(clean, None)
        self._local.pop(clean, None)
        return clean

    def add_file(
        self,
        local_path: str | os.PathLike[str],
        name: str | None = None,
        is_tmp: bool = False,
        skip_cache: bool | None = None,
        policy: str | None = None,
        overwrite: bool = False,
    ) -> ManifestEntry:
        """Add one file (as ``name``, default its base name). Nothing is copied yet."""
        del is_tmp, skip_cache, policy
        self._require_pending("add files")
        path = Path(local_path)
        try:
            st = path.stat()
        except FileNotFoundError:
            raise NotFound(f"cannot add {path}: no such file", path=str(path)) from None
        if not path.is_file():
            raise UsageError(
                f"cannot add {path}: not a regular file (use add_dir for directories)",
                path=str(path),
            )
        clean = self._claim(name or path.name, overwrite)
        self._local[clean] = (str(path.resolve()), st)
        return ManifestEntry(self, Entry(clean, None, st.st_size))

    def add_dir(
        self,
        local_path: str | os.PathLike[str],
        name: str | None = None,
        skip_cache: bool | None = None,
        policy: str | None = None,
    ) -> None:
        """Add every file under a directory (as ``name/relative/path``)."""
        del skip_cache, policy
        self._require_pending("add files")
        if not os.path.isdir(local_path):
            raise NotFound(f"cannot add {local_path}: no such directory", path=str(local_path))
        root = os.path.realpath(local_path)  # resolved once, not once per file
        prefix = check_entry_path(name) + "/" if name else ""
        stack = [("", root)]
        while stack:
            rel_dir, abs_dir = stack.pop()
            with os.scandir(abs_dir) as entries:
                for entry in entries:
                    rel = f"{rel_dir}{entry.name}"
                    try:
                        if entry.is_dir():
                            stack.append((rel + "/", entry.path))
                            continue
                        if not entry.is_file():
                            continue  # sockets, fifos, dangling links
                        st = entry.stat()
                    except FileNotFoundError:
                        continue  # vanished while walking
                    clean = self._claim(prefix + rel, True)
                    self._local[clean] = (entry.path, st)

    def add_reference(
        self,
        uri: str,
        name: str | None = None,
        checksum: bool = True,
        max_objects: int | None = None,
    ) -> list[ManifestEntry]:
        """Track a file:// , s3:// or http(s):// location without copying it."""
        from stemma.sdk.references import reference_entries

        self._require_pending("add references")
        entries = reference_entries(uri, name, checksum, max_objects, self._cache())
        for e in entries:
            self._claim(e.path, True)
            self._refs[e.path] = e
        return [ManifestEntry(self, e) for e in entries]

    @contextlib.contextmanager
    def new_file(
        self, name: str, mode: str = "x", encoding: str | None = None
    ) -> Iterator[IO[Any]]:
        """Write a new file straight into the artifact: ``with a.new_file("x.txt") as f``."""
        self._require_pending("add files")
        clean = check_entry_path(name)
        if clean in self._local or clean in self._refs:
            raise UsageError(f"artifact already has an entry {clean!r}", name=clean)
        if self._tmpdir is None:
            self._tmpdir = tempfile.TemporaryDirectory(prefix="stemma-artifact-")
        path = Path(self._tmpdir.name) / clean
        path.parent.mkdir(parents=True, exist_ok=True)
        if "b" not in mode and encoding is None:
            encoding = "utf-8"
        with open(path, mode, encoding=encoding) as fh:
            yield fh
        self.add_file(path, clean)

    def remove(self, item: str | ManifestEntry) -> None:
        self._require_pending("remove files")
        name = item.path if isinstance(item, ManifestEntry) else check_entry_path(item)
        if self._local.pop(name, None) is None and self._refs.pop(name, None) is None:
            raise NotFound(f"artifact has no entry {name!r}", name=name)

    # ------------------------------------------------------------------ manifest
    def _build_manifest(self, hash_local: bool) -> tuple[Manifest, list[tuple[str, str]]]:
        """(manifest, local files still to store). Checks no file changed since add."""
        from stemma.sdk.statcache import StatCache

        manifest = Manifest(self._refs.values())
        todo: list[tuple[str, str]] = []
        for name, (path, st) in self._local.items():
            try:
                now = os.stat(path)
            except FileNotFoundError:
                raise NotFound(
                    f"{path} (entry {name!r}) was removed after it was added", path=str(path)
                ) from None
            if (now.st_size, now.st_mtime_ns, now.st_ino) != (
                st.st_size,
                st.st_mtime_ns,
                st.st_ino,
            ):
                raise InvalidValueError(
                    f"{path} (entry {name!r}) changed after it was added to the artifact; add "
                    "it again to log the new contents",
                    path=str(path),
                )
            todo.append((name, path))
        if hash_local and todo:
            cache = StatCache(self._settings_or_env().dir / "statcache.db")
            known = cache.lookup((str(p), self._local[n][1]) for n, p in todo)
            from stemma.hashing import hash_path

            rows = []
            for name, path in todo:
                digest = known.get(str(path))
                if digest is None:
                    digest = hash_path(path)
                    rows.append((str(path), self._local[name][1], digest))
                manifest.add(Entry(name, digest, self._local[name][1].st_size))
            cache.record(rows)
            cache.close()
            todo = []
        return manifest, todo

    def _settings_or_env(self) -> Settings:
        if self._settings is None:
            from stemma.settings import Settings

            self._settings = Settings.from_env()
        return self._settings

    def _cache(self):
        from stemma.sdk.cache import open_cache

        settings = self._settings_or_env()
        return open_cache(settings.cache_dir)

    def _store_and_commit(
        self,
        backend: Backend,
        settings: Settings,
        entity: str,
        project: str,
        run: RunRef | None,
        aliases: list[str],
        creator: dict[str, Any],
    ) -> bool:
        """Store what the store lacks, then commit; returns True for a new version."""
        from stemma.sdk.statcache import StatCache
        from stemma.wire.records import ArtifactCommit

        self._settings = settings
        for attempt in range(2):
            manifest, todo = self._build_manifest(hash_local=False)
            cache = StatCache(settings.dir / "statcache.db")
            try:
                known = cache.lookup((str(p), self._local[n][1]) for n, p in todo)
                files = [(p, known.get(str(p)) if attempt == 0 else None) for _, p in todo]
                results = _store_with_progress(
                    backend, files, sum(self._local[n][1].st_size for n, _ in todo)
                )
                cache.record(  # only what was hashed now: the rest is recorded already
                    (str(p), self._local[n][1], d)
                    for (n, p), (d, _) in zip(todo, results, strict=True)
                    if known.get(str(p)) is None
                )
            finally:
                cache.close()
            for (name, _path), (digest, size) in zip(todo, results, strict=True):
                if size != self._local[name][1].st_size:
                    raise InvalidValueError(
                        f"{_path} changed while it was being stored; nothing was committed",
                        path=str(_path),
                    )
                manifest.add(Entry(name, digest, size))
            commit = ArtifactCommit(
                entity=entity,
                project=project,
                name=self._name,
                type=self.type,
                description=self.description,
                metadata=self._metadata,
                manifest=manifest,
                aliases=list(aliases),
                run=run,
                creator=creator,
                ttl_seconds=None if self._ttl is None else self._ttl.total_seconds(),
            )
            try:
                record, created = backend.commit_artifact(commit)
            except Conflict as exc:
                # gc condemned a blob between our upload and the commit: store again.
                if attempt == 0 and exc.context.get("missing"):
                    continue
                raise
            self._bind(backend, settings, record, manifest)
            return created
        raise AssertionError("unreachable")

    def _bind(
        self,
        backend: Backend,
        settings: Settings,
        record: ArtifactRecord,
        manifest: Manifest | None,
    ) -> None:
        self._backend = backend
        self._settings = settings
        self._record = record
        self._manifest = manifest if manifest is not None else record.manifest
        self.type = record.type
        self.description = record.description
        self._metadata = dict(record.metadata)
        self._saved_metadata = dict(record.metadata)
        self.aliases = list(record.aliases)
        self._saved_aliases = list(record.aliases)
        self._ttl = None if record.ttl_seconds is None else dt.timedelta(seconds=record.ttl_seconds)
        self._local.clear()
        self._refs.clear()

    @classmethod
    def _from_record(
        cls, backend: Backend | None, settings: Settings, record: ArtifactRecord
    ) -> Artifact:
        art = cls(record.name, record.type)
        art._bind(backend, settings, record, record.manifest)  # type: ignore[arg-type]
        if backend is not None and record.manifest is not None:
            from stemma.sdk.offline import RecordIndex

            with contextlib.suppress(OSError):  # the offline index is a convenience
                RecordIndex(art._cache()).save(record)
        return art

    # ------------------------------------------------------------------ reading
    def _committed_manifest(self) -> Manifest:
        rec = self._require_committed("reading files")
        if self._manifest is None:
            assert self._backend is not None
            full = self._backend.get_artifact(rec.entity, rec.project, rec.name, f"v{rec.version}")
            self._manifest = full.manifest
        if self._manifest is None:
            raise NotFound(f"artifact {self.qualified_name} was deleted; its files are gone")
        return self._manifest

    def files(self) -> list[ManifestEntry]:
        if self._record is None:
            return [ManifestEntry(self, e) for e in self._build_manifest(hash_local=True)[0]]
        return [ManifestEntry(self, e) for e in self._committed_manifest()]

    def get_entry(self, name: str) -> ManifestEntry:
        manifest = (
            self._committed_manifest()
            if self._record is not None
            else self._build_manifest(hash_local=True)[0]
        )
        entry = manifest.get(check_entry_path(name))
        if entry is None:
            shown = ", ".join(sorted(manifest.entries)[:20])
            raise NotFound(
                f"artifact {self.name} has no entry {name!r} (entries: {shown})", name=name
            )
        return ManifestEntry(self, entry)

    get_path = get_entry

    def _default_root(self) -> Path:
        return self._download_root or Path("artifacts") / self.name

    def _fetch(self, entry: Entry, target: Path) -> None:
        """Write one entry to ``target`` unless an identical file is already there."""
        self._fetch_many([(entry, target)])

    def _fetch_many(
        self, pairs: list[tuple[Entry, Path]], progress: Callable[[int], None] | None = None
    ) -> None:
        """Write entries to their targets, skipping files the stat cache shows are
        already right; one stat-cache connection and one commit for the whole batch."""
        from stemma.sdk.references import fetch_reference
        from stemma.sdk.statcache import StatCache

        settings = self._settings_or_env()
        cache = StatCache(settings.dir / "statcache.db")
        try:
            existing: dict[str, os.stat_result] = {}
            for entry, target in pairs:
                if entry.digest is not None:
                    with contextlib.suppress(FileNotFoundError):
                        existing[str(target)] = target.stat()
            known = cache.lookup(existing.items())
            todo = []
            for entry, target in pairs:
                st = existing.get(str(target))
                if (
                    st is not None
                    and st.st_size == entry.size
                    and known.get(str(target)) == entry.digest
                ):
                    if progress is not None:
                        progress(entry.size or 0)
                    continue
                todo.append((entry, target))
            # Stamp each file with the version's commit time (as tar and rsync keep
            # times): the stat cache can trust an entry the moment it is written, and
            # any later edit moves the mtime, so the next download or verify re-hashes.
            stamp = (self.created_at or dt.datetime.now(dt.UTC)).timestamp()

            cache_holder: list[Any] = []  # the download cache, opened once if needed

            def download_cache() -> Any:
                if not cache_holder:
                    cache_holder.append(self._cache())
                return cache_holder[0]

            def fetch(item: tuple[Entry, Path]) -> tuple[str, os.stat_result, str] | None:
                entry, target = item
                if entry.ref is not None:
                    fetch_reference(entry, target, download_cache())
                elif self._backend is not None:
                    self._backend.fetch_blob(
                        entry.digest or "", target, chunked=entry.chunks is not None
                    )
                else:  # offline: what the download cache holds (or a local store's bytes)
                    cache = download_cache()
                    if not cache.has(entry.digest or "") and not settings.base_url:
                        from stemma.backend import get_backend

                        get_backend(settings).fetch_blob(
                            entry.digest or "", target, chunked=entry.chunks is not None
                        )
                    elif not cache.has(entry.digest or ""):
                        raise NotFound(
                            f"{self.name}: {entry.path} is not in the download cache and this "
                            "run is offline; download the version once while online",
                            path=entry.path,
                        )
                    else:
                        cache.copy_out(entry.digest, target)
                if progress is not None:
                    progress(entry.size or 0)
                if entry.digest is None:
                    return None
                os.utime(target, (stamp, stamp))
                return str(target), target.stat(), entry.digest

            if len(todo) > 1:
                with ThreadPoolExecutor(max_workers=min(8, 2 * (os.cpu_count() or 2))) as pool:
                    rows = list(pool.map(fetch, todo))
            else:
                rows = [fetch(item) for item in todo]
            cache.record([r for r in rows if r is not None], trusted=True)
        finally:
            cache.close()

    def download(
        self,
        root: str | os.PathLike[str] | None = None,
        skip_cache: bool | None = None,
        path_prefix: str | None = None,
    ) -> str:
        """Write the version's files under ``root`` (default ``./artifacts/NAME:vN``).

        Files already there with the right contents (per the stat cache) are not copied
        again; entry names can never escape ``root``.
        """
        del skip_cache
        manifest = self._committed_manifest()
        base = Path(root) if root is not None else self._default_root()
        base.mkdir(parents=True, exist_ok=True)
        entries = [e for e in manifest if path_prefix is None or e.path.startswith(path_prefix)]
        parents: dict[str, str] = {}
        targets = [(e, _inside(base, e.path, parents)) for e in entries]
        total = sum(e.size or 0 for e in entries)
        from stemma.sdk.progress import progress

        prog, task = progress(total, f"downloading {self.name}")
        with prog:
            self._fetch_many(targets, lambda n: prog.advance(task, n))
        self._download_root = base
        return str(base)

    def verify(self, root: str | os.PathLike[str] | None = None) -> None:
        """Check the files under ``root`` against the manifest; raise ValueError listing
        what is missing, changed or extra."""
        from stemma.hashing import hash_path

        manifest = self._committed_manifest()
        base = Path(root) if root is not None else self._default_root()
        problems = []
        seen = set()
        for entry in manifest:
            target = _inside(base, entry.path)
            seen.add(target)
            if not target.is_file():
                problems.append(f"missing: {entry.path}")
                continue
            if entry.digest is None:
                continue
            if hash_path(target) != entry.digest:
                problems.append(f"changed: {entry.path}")
        if base.is_dir():
            for dirpath, _d, fnames in os.walk(base):
                for f in fnames:
                    p = (Path(dirpath) / f).resolve()
                    if p not in seen:
                        problems.append(f"extra: {p.relative_to(base.resolve()).as_posix()}")
        if problems:
            raise InvalidValueError(
                f"{base} does not match {self.name}: " + "; ".join(problems), problems=problems
            )

    # ------------------------------------------------------------------ changes
    def save(self) -> None:
        """Push alias, description, TTL and new-metadata changes of a committed version;
        log a new artifact with the current run."""
        if self._record is None:
            from stemma.sdk import lifecycle

            run = lifecycle.current()
            if run is None:
                raise UsageError(
                    "a new artifact is saved by logging it: run.log_artifact(artifact)"
                )
            run.log_artifact(self)
            return
        assert self._backend is not None
        changes: dict[str, Any] = {}
        if self.aliases != self._saved_aliases:
            changes["aliases"] = list(dict.fromkeys(self.aliases))
        if self.description != self._record.description:
            changes["description"] = self.description
        ttl = None if self._ttl is None else self._ttl.total_seconds()
        if ttl != self._record.ttl_seconds:
            changes["ttl_seconds"] = ttl
        if self._metadata != self._saved_metadata:
            changes["metadata"] = dict(self._metadata)
        if not changes:
            return
        record = self._backend.update_artifact(self._record.ref, changes)
        manifest = self._manifest
        self._bind(self._backend, self._settings_or_env(), record, manifest)

    def delete(self, delete_aliases: bool = False) -> None:
        rec = self._require_committed("delete")
        assert self._backend is not None
        self._backend.delete_artifact(rec.ref, delete_aliases)
        self._record = self._backend.get_artifact(
            rec.entity, rec.project, rec.name, f"v{rec.version}", with_manifest=False
        )
        self._manifest = None

    def wait(self, timeout: float | None = None) -> Artifact:
        """Logging is synchronous here; kept for W&B compatibility."""
        del timeout
        return self

    def logged_by(self) -> ApiRun | None:
        from stemma.api.public import ApiRun

        rec = self._require_committed("logged_by")
        assert self._backend is not None
        logged, _ = self._backend.artifact_runs(rec.ref)
        return None if logged is None else ApiRun(self._backend, logged)

    def used_by(self) -> list[ApiRun]:
        from stemma.api.public import ApiRun

        rec = self._require_committed("used_by")
        assert self._backend is not None
        _, users = self._backend.artifact_runs(rec.ref)
        return [ApiRun(self._backend, r) for r in users]

    def lineage(self, depth: int = 2, direction: str = "both") -> dict[str, Any]:
        """The lineage graph around this version (nodes and edges)."""
        rec = self._require_committed("lineage")
        assert self._backend is not None
        return self._backend.artifact_lineage(rec.ref, depth, direction)


def _store_with_progress(
    backend: Backend, files: Sequence[tuple[StrPath, str | None]], total: int
) -> list[tuple[str, int]]:
    from stemma.sdk.progress import progress

    prog, task = progress(total, "storing files")
    if total < 256 << 20 and len(files) < 2000:
        prog.disable = True
    with prog:
        return backend.store_files(files, lambda n: prog.advance(task, n))


def parse_artifact_path(path: str, entity: str, project: str) -> tuple[str, str, str, str]:
    """``[[entity/]project/]name[:selector]`` -> (entity, project, name, selector)."""
    if not isinstance(path, str) or not path:
        raise UsageError(f"invalid artifact path {path!r}")
    body, _, selector = path.partition(":")
    parts = body.split("/")
    if len(parts) == 1:
        name = parts[0]
    elif len(parts) == 2:
        project, name = parts
    elif len(parts) == 3:
        entity, project, name = parts
    else:
        raise UsageError(
            f"invalid artifact path {path!r}: use name[:version], project/name or "
            "entity/project/name",
            path=path,
        )
    check_name(name, "artifact")
    return entity, project, name, selector or "latest"

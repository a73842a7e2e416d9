"""A live run: ``stemma.init`` returns one; ``log``, ``config``, ``summary``, ``finish``.

The hot path is :meth:`Run.log`: check the values (a type test per value), stamp the
row, append it to the writer's queue. Everything slower (encoding, the spool, the
store) happens on the writer thread, and everything slow at start-up (opening the
store, asking git) is deferred there too, so ``init`` returns in milliseconds.
"""

from __future__ import annotations

import operator
import sys
import time
import uuid
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from stemma.errors import InvalidValueError, StemmaError, StoreError, UsageError
from stemma.sdk import capture, mediastore
from stemma.sdk.config import Config
from stemma.sdk.media import Image, Media, image_list_ref
from stemma.sdk.spool import SUFFIX
from stemma.sdk.summary import Summary
from stemma.sdk.writer import RunWriter
from stemma.settings import Settings
from stemma.wire.records import RunRecord, RunRef

_RESERVED = frozenset(("_step", "_runtime", "_timestamp"))
MAX_KEY_LENGTH = 512


def _convert_value(key: str, value: Any, media: list[Media]) -> Any:
    """A loggable value for ``value``, or InvalidValueError naming ``key``.

    A media object (or a list of images) becomes its reference dict and is added to
    ``media``, whose bytes ``run.log`` keeps once the whole row has been checked.
    """
    t = type(value)
    if t is str and "\x00" in value:
        raise InvalidValueError(
            f"cannot log {key!r}: the string contains a NUL character, which the store "
            "cannot keep (PostgreSQL text refuses it)",
            key=key,
        )
    if t is float or t is int or t is str or t is bool or value is None:
        return value
    if isinstance(value, Media):  # Image, Table, Plotly, Html
        ref = value._to_log(key)
        media.append(value)
        return ref
    if t is list or t is tuple:
        if value and all(isinstance(v, Image) for v in value):
            media.extend(value)
            return image_list_ref(value)
        raise InvalidValueError(
            f"cannot log {key!r}: a {t.__name__} can only be logged when it is a list of "
            "stemma.Image (log numbers under keys of their own, or use a stemma.Table)",
            key=key,
            type=t.__name__,
        )
    module = t.__module__
    if module.startswith(("numpy", "torch", "jax", "tensorflow")):
        size = getattr(value, "size", None)
        shape = getattr(value, "shape", ())
        if (shape == () or size == 1) and hasattr(value, "item"):
            if callable(size):  # torch: size() is a method
                pass
            return _convert_value(key, value.item(), media)
    for base in (bool, int, float, str):
        if isinstance(value, base):
            return base(value)
    raise InvalidValueError(
        f"cannot log {key!r}: a {t.__name__} is not a number, string, bool or media object "
        "(log a scalar, e.g. float(x), or wrap arrays in stemma.Image / stemma.Table)",
        key=key,
        type=t.__name__,
    )


def _flatten(data: Mapping[Any, Any], prefix: str, out: dict[str, Any], media: list[Media]) -> None:
    for k, v in data.items():
        if type(k) is not str:
            raise InvalidValueError(
                f"metric keys must be strings, got {k!r} ({type(k).__name__})", key=repr(k)
            )
        if not k:
            raise InvalidValueError(
                f"metric keys must not be empty (under {prefix!r})"
                if prefix
                else "metric keys must not be empty",
                key=prefix + k,
            )
        key = prefix + k
        if "\x00" in key:
            raise InvalidValueError(f"metric key {key!r} contains a NUL character", key=key)
        if key in _RESERVED:
            raise InvalidValueError(f"{key!r} is set by Stemma and cannot be logged", key=key)
        if len(key) > MAX_KEY_LENGTH:
            raise InvalidValueError(
                f"metric key {key[:40]!r}... is {len(key)} characters; at most "
                f"{MAX_KEY_LENGTH} are allowed",
                key=key[:80],
            )
        if isinstance(v, Mapping):
            _flatten(v, key + "/", out, media)
        else:
            out[key] = _convert_value(key, v, media)


class _NullWriter:
    """Stands in for the writer in ``mode="disabled"``: accepts and drops everything."""

    applied_offset = 0
    fatal = None
    last_error = None
    all_applied = True

    def put(self, item: Any) -> None:
        pass

    def stop(self, timeout: float | None = None) -> None:
        pass

    def start(self) -> None:
        pass


class Run:
    """One run. Usable as a context manager: an exception inside marks it failed."""

    def __init__(
        self,
        *,
        settings: Settings,
        ref: RunRef,
        name: str,
        job_type: str | None,
        group: str | None,
        tags: list[str],
        notes: str | None,
        config: Mapping[str, Any] | None,
        resumed: RunRecord | None,
        resume: str | None,
    ) -> None:
        self.settings = settings
        self._ref = ref
        self._name = name
        self.job_type = job_type
        self.group = group
        self._tags = list(tags)
        self._notes = notes
        self._finished = False
        self._warned_step = False
        self._pending: dict[str, Any] | None = None
        self.start_time = time.time()
        self.resumed = resumed is not None
        self._step = 0 if resumed is None else resumed.last_step + 1
        self._runtime_offset = 0.0 if resumed is None else resumed.runtime
        self._spool_id = uuid.uuid4().hex
        self.dir = settings.spool_root / ref.entity / ref.project / ref.run_id
        self._sampler: Any = None
        self._media_store: Any = None  # where logged media waits for upload (first use)
        self._git: dict[str, Any] | None = None
        if settings.mode == "disabled":
            self._writer: Any = _NullWriter()
        else:
            self._writer = RunWriter(
                settings,
                ref,
                self.dir / f"spool-{self._spool_id}{SUFFIX}",
                self._spool_id,
                self.start_time,
            )
        put = self._writer.put
        self._put = put
        base_config = dict(resumed.config) if resumed else {}
        self.config = Config(base_config)
        if config:
            self.config.update(config)
        self.summary = Summary(
            dict(resumed.summary) if resumed else {},
            on_set=lambda s, d: put({"t": "summary", "set": s, "del": d}),
        )
        meta = capture.static_metadata()
        put(
            {
                "t": "run",
                "entity": ref.entity,
                "project": ref.project,
                "run_id": ref.run_id,
                "name": name,
                "job_type": job_type,
                "group": group,
                "tags": self._tags,
                "notes": notes,
                "config": self.config.as_dict(),
                "user": meta["user"],
                "host": meta["host"],
                "metadata": meta,
                "created_at": self.start_time,
                "resume": resume,
            }
        )
        if resumed is not None:  # a resumed run keeps its fields unless new ones were given
            put(
                {
                    "t": "update",
                    "name": name,
                    "tags": self._tags,
                    "notes": notes,
                    "group": group,
                    "job_type": job_type,
                }
            )
        object.__setattr__(self.config, "_on_change", lambda d: put({"t": "config", "data": d}))
        self._writer.start()
        if settings.mode != "disabled":
            put({"t": "meta", "data": {}, "git_cwd": meta["cwd"]})
            if settings.system_metrics:
                self._start_sampler()

    # ------------------------------------------------------------------ identity
    @property
    def id(self) -> str:
        return self._ref.run_id

    @property
    def entity(self) -> str:
        return self._ref.entity

    @property
    def project(self) -> str:
        return self._ref.project

    @property
    def path(self) -> str:
        """``entity/project/run_id``, accepted by ``Api().run``."""
        return self._ref.path

    @property
    def ref(self) -> RunRef:
        return self._ref

    @property
    def name(self) -> str:
        return self._name

    @name.setter
    def name(self, value: str) -> None:
        self._name = str(value)
        self._writer.put({"t": "update", "name": self._name})

    display_name = name

    @property
    def tags(self) -> tuple[str, ...]:
        return tuple(self._tags)

    @tags.setter
    def tags(self, value: Any) -> None:
        self._tags = _check_tags(value)
        self._writer.put({"t": "update", "tags": self._tags})

    @property
    def notes(self) -> str | None:
        return self._notes

    @notes.setter
    def notes(self, value: str | None) -> None:
        self._notes = value
        self._writer.put({"t": "update", "notes": value})

    @property
    def step(self) -> int:
        """The step the next committed row will get."""
        return self._step

    @property
    def mode(self) -> str:
        return self.settings.mode

    @property
    def finished(self) -> bool:
        return self._finished

    def __repr__(self) -> str:
        return f"<Run {self.path} name={self._name!r} step={self._step}>"

    # ------------------------------------------------------------------ logging
    def log(
        self, data: Mapping[str, Any], step: int | None = None, commit: bool | None = None
    ) -> None:
        """Log a row of metrics (``{"loss": 0.1}``) at the current (or given) step.

        Values are numbers, strings, bools, None, numpy/torch scalars or media
        (``stemma.Image``, ``Table``, ``Plotly``, ``Html``, or a list of images, whose
        bytes are written next to the spool before this returns and uploaded ahead of
        the row). Nested dicts become ``a/b`` keys. With ``step``, rows logged at the
        same step merge and the row is written when a higher step arrives (as W&B
        does); a step lower than the current one is dropped with a warning.
        ``commit=False`` accumulates into the current step without advancing it.
        """
        if self._finished:
            raise UsageError(f"run {self.path} is finished; call stemma.init() to start another")
        if type(data) is not dict and not isinstance(data, Mapping):
            raise InvalidValueError(
                f"run.log() takes a dict of {{key: value}}, not {type(data).__name__}",
                type=type(data).__name__,
            )
        row: dict[str, Any] | None = None
        media: list[Media] = []
        for k, v in data.items():
            t = type(v)
            if (
                (t is float or t is int or t is bool or (t is str and "\x00" not in v))
                and type(k) is str
                and k
                and k not in _RESERVED
                and len(k) <= MAX_KEY_LENGTH
                and "\x00" not in k
            ):
                continue
            row = {}
            _flatten(data, "", row, media)
            break
        if row is None:
            row = dict(data)
        if step is not None:
            try:
                step = operator.index(step)
            except TypeError:
                raise InvalidValueError(
                    f"step must be an integer, got {step!r} ({type(step).__name__})",
                    key="_step",
                ) from None
            if step < self._step:
                if not self._warned_step:
                    self._warned_step = True
                    warnings.warn(
                        f"stemma: step {step} is lower than the current step {self._step} of "
                        f"run {self.path}; rows logged at lower steps are dropped "
                        "(this warning is shown once per run)",
                        stacklevel=2,
                    )
                return
            if step > self._step:
                if self._pending is not None:
                    self._commit()
                self._step = step
        if media:
            self._keep_media(media)  # queued before the row that references it
        if self._pending is None:
            self._pending = row
        else:
            self._pending.update(row)
        if commit or (commit is None and step is None):
            self._commit()

    def _keep_media(self, items: list[Media]) -> None:
        """Write the media's bytes beside the spool (the only wait ``run.log`` has for
        media) and queue a ``blobs`` event naming them, which the frame's applier
        uploads before the rows that reference them (see :mod:`stemma.sdk.mediastore`)."""
        if self.settings.mode == "disabled":
            return
        if self._media_store is None:
            self._media_store = mediastore.open_store(self.dir)
        store = self._media_store
        digests: dict[str, None] = {}
        try:
            for item in items:
                for digest, data in item._payloads():
                    if digest not in digests:
                        digests[digest] = None
                        if not store.has(digest):
                            store.put_chunks([data], expected=digest)
        except OSError as exc:
            raise StoreError(
                f"cannot keep logged media of run {self.path} in {store.root}: {exc}; "
                "nothing of this log call was recorded",
                path=str(store.root),
            ) from exc
        self._put(mediastore.blobs_event(digests))

    def _commit(self) -> None:
        row = self._pending
        if row is None:
            return
        self._pending = None
        ts = time.time()
        step = self._step
        rt = ts - self.start_time + self._runtime_offset
        self._put((step, ts, rt, row))
        sd = self.summary._data
        sd.update(row)
        sd["_step"] = step
        sd["_runtime"] = rt
        sd["_timestamp"] = ts
        self._step = step + 1

    def _start_sampler(self) -> None:
        from stemma.sdk.system_metrics import SystemSampler

        counter = [0]

        def emit(values: dict[str, Any]) -> None:
            ts = time.time()
            self._writer.put({"t": "sysrow", "row": (counter[0], ts, ts - self.start_time, values)})
            counter[0] += 1

        self._sampler = SystemSampler(emit, self.settings.system_metrics_interval)
        self._sampler.start()

    # ------------------------------------------------------------------ artifacts
    def _artifact_backend(self, what: str) -> Any:
        if self._finished:
            raise UsageError(f"run {self.path} is finished; {what} needs an open run")
        self._writer.wait_stored()  # the run must exist in the store for lineage edges
        from stemma.backend import get_backend

        return get_backend(self.settings)

    def _creator(self) -> dict[str, Any]:
        """Who, where, when and which code made an artifact: recorded with every version."""
        if self._git is None:
            self._git = capture.git_metadata().get("git", {})
        meta = capture.static_metadata()
        return {
            "user": meta["user"],
            "host": meta["host"],
            "run": self.path,
            "program": meta["program"],
            "python": meta["python"],
            "git_commit": self._git.get("commit"),
            "git_dirty": self._git.get("dirty"),
            "git_remote": self._git.get("remote"),
            "logged_at": time.time(),
        }

    def log_artifact(
        self,
        artifact_or_path: Any,
        name: str | None = None,
        type: str | None = None,
        aliases: list[str] | None = None,
        tags: list[str] | None = None,
    ) -> Any:
        """Commit an artifact (or a file/directory path) as the next version of its name.

        Identical contents to an existing version create no new version: that version is
        returned (with ``aliases`` added). ``latest`` always moves to the newest.
        """
        from stemma.sdk.artifact import Artifact

        del tags
        art = artifact_or_path
        if not isinstance(art, Artifact):
            path = Path(artifact_or_path)
            art = Artifact(name or path.name.replace(" ", "_"), type or "unspecified")
            if path.is_dir():
                art.add_dir(path)
            else:
                art.add_file(path)
        if art.committed:
            raise UsageError(
                f"artifact {art.name} is already logged; create a new Artifact for a new version"
            )
        if aliases is not None and (isinstance(aliases, str) or not isinstance(aliases, list)):
            aliases = [aliases] if isinstance(aliases, str) else list(aliases)
        if self.settings.mode == "disabled":
            return art
        if self.settings.mode == "offline":
            self._log_artifact_offline(art, list(aliases or []) + list(art.aliases))
            return art
        backend = self._artifact_backend("log_artifact")
        art._store_and_commit(
            backend,
            self.settings,
            self.entity,
            self.project,
            self._ref,
            list(aliases or []) + list(art.aliases),
            self._creator(),
        )
        return art

    def use_artifact(
        self,
        artifact_or_name: Any,
        type: str | None = None,
        aliases: list[str] | None = None,
        use_as: str | None = None,
    ) -> Any:
        """Fetch ``name``, ``name:alias``, ``name:vN``, ``project/name:v`` or
        ``entity/project/name:v`` and record this run as its user (a lineage edge)."""
        from stemma.sdk.artifact import Artifact, parse_artifact_path

        del use_as
        if self.settings.mode == "disabled":
            raise UsageError("use_artifact needs a store; this run is disabled")
        if self.settings.mode == "offline":
            return self._use_artifact_offline(artifact_or_name, type)
        backend = self._artifact_backend("use_artifact")
        if isinstance(artifact_or_name, Artifact):
            art = artifact_or_name
            if not art.committed:  # an input built locally: commit it, then use it
                art._store_and_commit(
                    backend,
                    self.settings,
                    self.entity,
                    self.project,
                    None,
                    list(art.aliases),
                    self._creator(),
                )
        else:
            entity, project, name, selector = parse_artifact_path(
                artifact_or_name, self.entity, self.project
            )
            record = backend.get_artifact(entity, project, name, selector)
            art = Artifact._from_record(backend, self.settings, record)
        if type is not None and art.type != type:
            raise UsageError(
                f"artifact {art.qualified_name} has type {art.type!r}, not {type!r}",
                expected=type,
                got=art.type,
            )
        backend.use_artifact(self._ref, art.ref)
        if aliases:
            art.aliases.extend(a for a in aliases if a not in art.aliases)
            art.save()
        return art

    def _log_artifact_offline(self, art: Any, aliases: list[str]) -> None:
        """Keep the bytes in the pending store and the commit in the spool, for sync."""
        from stemma.sdk.offline import artifact_event, pending_dir, pending_store
        from stemma.wire.manifest import Entry
        from stemma.wire.records import ArtifactCommit

        manifest, todo = art._build_manifest(hash_local=False)
        where = pending_dir(self.settings.dir)
        pending = pending_store(where)
        for name, path in todo:
            digest, size = pending.put_file(Path(path))
            manifest.add(Entry(name, digest, size))
        commit = ArtifactCommit(
            entity=self.entity,
            project=self.project,
            name=art.source_name,
            type=art.type,
            description=art.description,
            metadata=art.metadata,
            manifest=manifest,
            aliases=aliases,
            run=self._ref,
            creator=self._creator(),
            ttl_seconds=None if art.ttl is None else art.ttl.total_seconds(),
        )
        self._writer.put(artifact_event(commit, where))

    def _use_artifact_offline(self, name_or_artifact: Any, type_: str | None) -> Any:
        """Resolve from records seen online; bytes come from the download cache."""
        from stemma.sdk.artifact import Artifact, parse_artifact_path
        from stemma.sdk.cache import open_cache
        from stemma.sdk.offline import RecordIndex, use_event

        if isinstance(name_or_artifact, Artifact):
            raise UsageError("offline, use_artifact takes a name such as 'dataset:v3'")
        entity, project, name, selector = parse_artifact_path(
            name_or_artifact, self.entity, self.project
        )
        cache = open_cache(self.settings.cache_dir)
        record = RecordIndex(cache).load(entity, project, name, selector)
        if type_ is not None and record.type != type_:
            raise UsageError(
                f"artifact {record.ref.path} has type {record.type!r}, not {type_!r}",
                expected=type_,
                got=record.type,
            )
        art = Artifact._from_record(None, self.settings, record)
        self._writer.put(use_event(record.ref))
        return art

    def used_artifacts(self) -> list[Any]:
        return self._run_artifacts("input")

    def logged_artifacts(self) -> list[Any]:
        return self._run_artifacts("output")

    def _run_artifacts(self, direction: str) -> list[Any]:
        from stemma.sdk.artifact import Artifact

        backend = self._artifact_backend("listing artifacts")
        return [
            Artifact._from_record(backend, self.settings, r)
            for r in backend.run_artifacts(self._ref, direction)
        ]

    # ------------------------------------------------------------------ finishing
    def finish(self, exit_code: int | None = None, quiet: bool | None = None) -> None:
        """Write everything, mark the run finished (or failed for a non-zero code)."""
        if self._finished:
            return
        self._commit()
        if self._sampler is not None:
            self._sampler.stop()
        code = int(exit_code or 0)
        self._writer.put(
            {
                "t": "finish",
                "state": "finished" if code == 0 else "failed",
                "exit_code": code,
                "at": time.time(),
            }
        )
        self._writer.stop()
        self._finished = True
        from stemma.sdk import lifecycle

        lifecycle.unregister(self)
        self._report_end(quiet)

    def _report_end(self, quiet: bool | None) -> None:
        w = self._writer
        if self.settings.mode == "disabled":
            return
        spool = getattr(w, "spool", None)
        if self.settings.mode == "offline":
            self._say(
                f"offline run {self.path} saved to {spool.path if spool else '?'}; "
                f"upload it with: stemma sync {self.dir}",
                quiet,
            )
            return
        if w.fatal is not None or not w.all_applied:
            reason = w.fatal.message if isinstance(w.fatal, StemmaError) else w.last_error
            self._say(
                f"run {self.path} could not be fully stored ({reason}); everything "
                f"logged is kept in {spool.path if spool else self.dir}. "
                f"Upload it with: stemma sync {self.dir}",
                False,
            )
            return
        if spool is not None and not self.settings.keep_spool:
            spool.path.unlink(missing_ok=True)
            mediastore.discard_if_done(self.dir)  # every media blob is in the store now
            for parent in (self.dir, self.dir.parent, self.dir.parent.parent):
                try:
                    parent.rmdir()
                except OSError:
                    break
        self._say(f"finished run {self._name} ({self.path}) at step {self._step}", quiet)

    def _say(self, message: str, quiet: bool | None) -> None:
        if not (quiet or self.settings.silent):
            print(f"stemma: {message}", file=sys.stderr)

    def __enter__(self) -> Run:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.finish(exit_code=1 if exc_type is not None else 0)


def _check_tags(tags: Any) -> list[str]:
    if tags is None:
        return []
    if isinstance(tags, str):
        raise UsageError("tags must be a list of strings, not one string", tags=tags)
    out = []
    for t in tags:
        if not isinstance(t, str) or not t or len(t) > 128 or "\x00" in t:
            raise UsageError(
                f"invalid tag {t!r}: tags are non-empty strings of at most 128 characters",
                tag=repr(t),
            )
        if t not in out:
            out.append(t)
    return out

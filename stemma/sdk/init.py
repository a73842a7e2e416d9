"""``stemma.init``: start (or resume) a run.

The common case (a new run with a generated id) touches no store: it validates the
arguments, creates the spool and starts the writer, which opens the store in the
background. Only an explicit ``id`` or ``resume`` needs the store now, to know whether
the run exists and where it stopped.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Mapping
from typing import Any

from stemma.errors import AlreadyExists, NotFound, UsageError
from stemma.sdk import capture, lifecycle
from stemma.sdk.names import new_run_id, new_run_name
from stemma.sdk.run import Run, _check_tags
from stemma.sdk.sync import run_spools, sync_spool
from stemma.settings import Settings
from stemma.wire.names import check_name, check_run_id, split_project
from stemma.wire.records import RunRecord, RunRef

RESUME_MODES = ("allow", "must", "never")
DEFAULT_PROJECT = "uncategorized"


def _resume_mode(resume: bool | str | None) -> str | None:
    if resume is None or resume is False:
        return None
    if resume is True or resume == "auto":
        return "allow"
    if resume in RESUME_MODES:
        return str(resume)
    raise UsageError(
        f"resume must be one of {', '.join(RESUME_MODES)}, True or None, got {resume!r}",
        resume=repr(resume),
    )


def init(
    project: str | None = None,
    entity: str | None = None,
    name: str | None = None,
    job_type: str | None = None,
    group: str | None = None,
    tags: list[str] | tuple[str, ...] | None = None,
    notes: str | None = None,
    config: Mapping[str, Any] | Any | None = None,
    id: str | None = None,
    resume: bool | str | None = None,
    mode: str | None = None,
    dir: str | None = None,
    reinit: bool | None = None,
    settings: Settings | Mapping[str, Any] | None = None,
) -> Run:
    """Start a run and make it the current one; returns the :class:`Run`.

    ``project`` may be ``"entity/project"``. ``resume="allow"`` continues run ``id`` if it
    exists, ``"must"`` requires it to, ``"never"`` refuses an existing one; steps,
    runtime, config and summary carry on. ``mode`` is ``online`` (the default, or
    ``STEMMA_MODE``), ``offline`` (spool only, upload later with ``stemma sync``) or
    ``disabled`` (nothing is written). ``dir`` is where the run's spool is written.
    ``reinit`` is accepted for W&B compatibility: several runs may always be open.
    """
    del reinit
    overrides: dict[str, Any] = {}
    if isinstance(settings, Settings):
        overrides = {f.name: getattr(settings, f.name) for f in dataclasses.fields(settings)}
    elif settings:
        overrides = dict(settings)
    if mode is not None:
        overrides["mode"] = mode
    if dir is not None:
        overrides["dir"] = dir
    st = Settings.from_env(**overrides)

    # A path's entity ("team-a/pretraining") beats the default one (STEMMA_ENTITY) and
    # conflicts only with an explicit entity= argument.
    ent, proj = split_project(project or st.project or DEFAULT_PROJECT, entity)
    ent = ent or st.entity or _home_entity(st) or capture.current_user()
    check_name(ent, "entity")
    check_name(proj, "project")
    run_id = check_run_id(id) if id is not None else new_run_id()
    mode_resume = _resume_mode(resume)
    if mode_resume == "must" and id is None:
        raise UsageError("resume='must' needs the id of the run to resume (id=...)")
    tag_list = _check_tags(tags)
    if name is not None and (
        not isinstance(name, str) or not name or len(name) > 256 or "\x00" in name
    ):
        raise UsageError(
            f"run name must be a non-empty string of at most 256 characters, got {name!r}",
            name=repr(name),
        )
    for label, value, limit in (
        ("job_type", job_type, 128),
        ("group", group, 256),
        ("notes", notes, 1 << 20),
    ):
        if value is not None and (
            not isinstance(value, str) or len(value) > limit or "\x00" in value
        ):
            raise UsageError(
                f"{label} must be a string of at most {limit} characters without NUL, "
                f"got {value!r:.80}",
                field=label,
            )
    if config is not None and not isinstance(config, Mapping):
        config = vars(config) if hasattr(config, "__dict__") else config
        if not isinstance(config, Mapping):
            raise UsageError(f"config must be a dict, got {type(config).__name__}")

    ref = RunRef(ent, proj, run_id)
    resumed: RunRecord | None = None
    if id is not None and st.mode == "online":
        resumed = _existing(st, ref, mode_resume)
    elif mode_resume == "must":
        raise UsageError(f"resume='must' cannot be checked in {st.mode} mode", mode=st.mode)

    run = Run(
        settings=st,
        ref=ref,
        name=name or (resumed.name if resumed else new_run_name()),
        job_type=job_type if job_type is not None else (resumed.job_type if resumed else None),
        group=group if group is not None else (resumed.group if resumed else None),
        tags=tag_list or (list(resumed.tags) if resumed else []),
        notes=notes if notes is not None else (resumed.notes if resumed else None),
        config=config,
        resumed=resumed,
        resume=mode_resume if resumed is not None else None,
    )
    lifecycle.register(run)
    if not st.silent and st.mode != "disabled":
        verb = "resumed" if resumed else "started"
        where = st.base_url or (st.database_url or str(st.dir / "stemma.db"))
        if st.mode == "offline":
            where = f"offline spool in {run.dir}"
        print(f"stemma: {verb} run {run.name} ({ref.path}) -> {where}", file=sys.stderr)
    return run


def _home_entity(st: Settings) -> str | None:
    """With an API key, runs go where the server says the key's owner lives (a service
    account's team, a person's own entity); asked once per process."""
    if not (st.base_url and st.api_key and st.mode == "online"):
        return None
    from stemma.backend import get_backend
    from stemma.errors import StemmaError, Unauthenticated

    backend = get_backend(st)
    try:
        with backend.retry_budget(10.0):
            return backend.default_entity()
    except Unauthenticated as exc:  # a wrong key: say so now, not at the first log
        raise Unauthenticated(
            f"{st.base_url} refused the API key ({exc}); check STEMMA_API_KEY or run "
            "`stemma login --relogin`"
        ) from None
    except StemmaError as exc:
        if not st.silent:
            print(
                f"stemma: cannot ask {st.base_url} for your entity ({exc}); using your user "
                "name (set STEMMA_ENTITY to choose)",
                file=sys.stderr,
            )
        return None


def _existing(st: Settings, ref: RunRef, mode: str | None) -> RunRecord | None:
    """Look the run up (after uploading any local spool it left), per the resume mode."""
    from stemma.backend import get_backend

    backend = get_backend(st)
    run_dir = st.spool_root / ref.entity / ref.project / ref.run_id
    for path in run_spools(run_dir):  # a killed earlier process may have left data here
        sync_spool(backend, path)
    existing = backend.get_run(ref)
    if existing is None:
        if mode == "must":
            raise NotFound(
                f"run {ref.path} does not exist and resume='must' was given", path=ref.path
            )
        return None
    if mode is None:
        raise AlreadyExists(
            f"run {ref.path} already exists; pass resume='allow' to continue it or choose "
            "another id",
            path=ref.path,
        )
    if mode == "never":
        raise AlreadyExists(
            f"run {ref.path} already exists and resume='never' was given", path=ref.path
        )
    return existing

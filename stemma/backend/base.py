"""The backend interface: everything the SDK and the read API ask of a store.

Two implementations: :mod:`stemma.backend.embedded` (in-process, SQL + local files) and,
next, an HTTP client for a Stemma server. Methods take and return plain records from
:mod:`stemma.wire`, never ORM objects or connections, so that every method can travel
over HTTP unchanged. Writes to runs go through one batch operation, :meth:`apply`; the
SDK's conveniences (log, config, summary, finish) are events inside it.
"""

from __future__ import annotations

import abc
import contextlib
import os
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from stemma.wire.chunks import Column
from stemma.wire.records import (
    ApplyResult,
    ArtifactCommit,
    ArtifactRecord,
    ArtifactRef,
    RunRecord,
    RunRef,
)

Progress = Callable[[int], None] | None
MAX_HISTORY_RUNS = 1000  # runs per multi-run history read


def check_history_request(
    run_ids: list[str], samples: int | None, keys: list[str] | None = None
) -> None:
    """The limits of a multi-run history read, checked the same by every transport."""
    from stemma.errors import UsageError

    if keys is not None and (
        not isinstance(keys, list | tuple) or not all(isinstance(k, str) for k in keys)
    ):
        raise UsageError(f"keys must be a list of strings, got {keys!r}"[:300])
    if len(run_ids) > MAX_HISTORY_RUNS:
        raise UsageError(
            f"at most {MAX_HISTORY_RUNS} runs per history request, got {len(run_ids)}",
            runs=len(run_ids),
        )
    if samples is not None and samples < 1:
        raise UsageError("samples must be at least 1", samples=samples)


StrPath = str | os.PathLike[str]


class Backend(abc.ABC):
    """A store of runs (and, later, artifacts, users, reports...)."""

    @abc.abstractmethod
    def default_entity(self) -> str:
        """The entity new runs go to when none is given."""

    @abc.abstractmethod
    def apply(
        self, ref: RunRef, spool_id: str, start: int, end: int, events: list[dict[str, Any]]
    ) -> ApplyResult:
        """Apply spool frame ``[start, end)`` to ``ref`` atomically and at most once."""

    @abc.abstractmethod
    def committed_offset(self, ref: RunRef, spool_id: str) -> int:
        """How many bytes of that spool were applied (0 when none or no such run)."""

    @abc.abstractmethod
    def heartbeat(self, ref: RunRef) -> None:
        """Record that the run's process is alive."""

    @abc.abstractmethod
    def get_run(self, ref: RunRef) -> RunRecord | None:
        """One run, or None."""

    @abc.abstractmethod
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
        """A page of a project's runs (those matching ``filters``, a MongoDB-style
        document: see :mod:`stemma.wire.filters`)."""

    @abc.abstractmethod
    def count_runs(
        self, entity: str, project: str, filters: Mapping[str, Any] | None = None
    ) -> int:
        """How many runs the project has (that match ``filters``)."""

    @abc.abstractmethod
    def list_projects(self, entity: str | None = None) -> list[tuple[str, str, int]]:
        """(entity, project, run count) of every project (of ``entity``)."""

    @abc.abstractmethod
    def history_keys(self, ref: RunRef) -> list[str]:
        """Every history key the run has logged (system/* included)."""

    @abc.abstractmethod
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
        """History columns of one run, optionally downsampled per key to ``samples``."""

    @abc.abstractmethod
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
        """The same keys of up to MAX_HISTORY_RUNS runs at once, each downsampled per key
        to ``samples`` points when given: {run_id: {key: Column}} (unknown ids absent)."""

    @abc.abstractmethod
    def update_run(self, ref: RunRef, changes: dict[str, Any]) -> None:
        """Edit name, tags, notes, group, job type or summary."""

    @abc.abstractmethod
    def delete_run(self, ref: RunRef) -> None:
        """Delete a run and its history."""

    # ------------------------------------------------------------ media
    @abc.abstractmethod
    def list_media(self, ref: RunRef, key: str | None = None) -> list[dict[str, Any]]:
        """The media a run logged (under ``key``), by key then step: dicts of ``key``,
        ``step``, ``kind`` (image, images, table, plotly, html), ``digest``, ``size``,
        ``caption`` and ``meta`` (the rest of the reference: width, height, format,
        nrows, ncols, a list's ``items``...). See :mod:`stemma.wire.media`."""

    @abc.abstractmethod
    def read_media(self, ref: RunRef, digest: str) -> bytes:
        """The bytes of one blob of the run's media (an image of a table or of a list
        included); NotFound when ``digest`` is not one of them, whatever the store holds."""

    # ------------------------------------------------------------ artifacts
    @abc.abstractmethod
    def store_files(
        self, files: Sequence[tuple[StrPath, str | None]], progress: Progress = None
    ) -> list[tuple[str, int]]:
        """Make the store hold these files' bytes; returns (digest, size) per file.

        A known digest (from the client's stat cache) lets a stored blob be skipped
        without reading the file. ``progress`` receives byte counts as they are stored.
        """

    @abc.abstractmethod
    def commit_artifact(self, commit: ArtifactCommit) -> tuple[ArtifactRecord, bool]:
        """Commit a version (refused unless every blob is stored); True when new."""

    @abc.abstractmethod
    def get_artifact(
        self,
        entity: str,
        project: str,
        name: str,
        selector: str | None,
        at: Any = None,
        with_manifest: bool = True,
    ) -> ArtifactRecord:
        """``name:selector`` (``latest``, ``vN`` or an alias), optionally as of ``at``."""

    @abc.abstractmethod
    def list_artifact_versions(
        self, entity: str, project: str, name: str, include_deleted: bool = False
    ) -> list[ArtifactRecord]:
        """Every version of one artifact, oldest first."""

    @abc.abstractmethod
    def list_artifact_collections(
        self, entity: str, project: str, type_: str | None = None
    ) -> list[dict[str, Any]]:
        """The artifacts (names) of a project with version counts and sizes."""

    @abc.abstractmethod
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
        """A page of a project's artifact versions (of one artifact ``name``, of one
        ``type_``) matching ``filters`` (see :mod:`stemma.wire.filters`), in ``order``
        (a column or ``metadata.<key>``, ``-`` for descending). Without manifests."""

    @abc.abstractmethod
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
        """How many versions :meth:`query_artifact_versions` would list in all."""

    @abc.abstractmethod
    def artifact_types(self, entity: str, project: str) -> list[dict[str, Any]]:
        """The artifact types of a project: [{type, collections, versions}] by type."""

    @abc.abstractmethod
    def update_artifact(self, ref: ArtifactRef, changes: dict[str, Any]) -> ArtifactRecord:
        """Aliases, description, TTL, or new metadata keys of a committed version."""

    @abc.abstractmethod
    def delete_artifact(self, ref: ArtifactRef, delete_aliases: bool = False) -> None:
        """Delete a version (its blobs become collectable by gc)."""

    @abc.abstractmethod
    def use_artifact(self, run: RunRef, ref: ArtifactRef) -> None:
        """Record that ``run`` used ``ref`` (a lineage input edge)."""

    @abc.abstractmethod
    def artifact_runs(self, ref: ArtifactRef) -> tuple[RunRecord | None, list[RunRecord]]:
        """(the run that logged it, the runs that used it)."""

    @abc.abstractmethod
    def run_artifacts(self, run: RunRef, direction: str) -> list[ArtifactRecord]:
        """Versions a run used (``input``) or logged (``output``)."""

    @abc.abstractmethod
    def artifact_lineage(
        self, ref: ArtifactRef, depth: int = 2, direction: str = "both"
    ) -> dict[str, Any]:
        """The lineage graph around a version."""

    @abc.abstractmethod
    def alias_history(
        self, entity: str, project: str, name: str, alias: str | None = None
    ) -> list[dict[str, Any]]:
        """Every alias change of an artifact, oldest first."""

    @abc.abstractmethod
    def artifact_diff(
        self, a: ArtifactRef, b: ArtifactRef, contents: bool = True
    ) -> dict[str, Any]:
        """Files, metadata and producing-run config that differ between two versions."""

    @abc.abstractmethod
    def verify_blobs(self, digests: list[str], progress: Progress = None) -> list[str]:
        """Re-hash stored blobs; returns the digests that are missing or corrupt."""

    @abc.abstractmethod
    def fetch_blob(self, digest: str, dest: Path, chunked: bool = False) -> None:
        """Write a stored file's bytes to ``dest`` (``chunked``: the manifest says it is
        stored as chunks, so a client reads them by ranges and reassembles)."""

    @abc.abstractmethod
    def get_protected_aliases(self, entity: str, project: str) -> list[str]:
        """Aliases only admins may move in a project."""

    @abc.abstractmethod
    def set_protected_aliases(self, entity: str, project: str, aliases: list[str]) -> None:
        """Replace a project's protected aliases."""

    @abc.abstractmethod
    def get_retention(self, entity: str, project: str) -> list[dict[str, Any]]:
        """A project's retention policies."""

    @abc.abstractmethod
    def set_retention(
        self,
        entity: str,
        project: str,
        name: str | None,
        keep_last: int | None,
        delete_unaliased_older_than: float | None,
        default_ttl: float | None = None,
    ) -> None:
        """Set (or, with neither limit, clear) a retention policy."""

    @abc.abstractmethod
    def gc(
        self, dry_run: bool = False, grace_seconds: float = 3600.0, repack_below: float = 0.5
    ) -> dict[str, Any]:
        """Apply TTLs and retention, then delete unreferenced chunks and blobs and repack
        packfiles whose live fraction is below ``repack_below``; report what went."""

    @abc.abstractmethod
    def storage_stats(
        self, entity: str | None = None, project: str | None = None
    ) -> list[dict[str, Any]]:
        """Logical, file-deduplicated and stored bytes per project and artifact type."""

    # ------------------------------------------------------------ people and teams
    # Secrets (passwords, API keys) are returned once, by the call that makes them; the
    # store keeps only their hashes.
    @abc.abstractmethod
    def whoami(self) -> dict[str, Any]:
        """The caller: ``user``, ``kind`` (user, service_account or local), ``is_admin``,
        ``entity`` (where its runs go), ``teams`` (team -> role), email, display name."""

    @abc.abstractmethod
    def has_users(self) -> bool:
        """Whether the store has any account (with none, a loopback server is local)."""

    @abc.abstractmethod
    def create_user(
        self,
        email: str,
        *,
        display_name: str | None = None,
        username: str | None = None,
        is_admin: bool = False,
        password: str | None = None,
    ) -> tuple[dict[str, Any], str]:
        """A person with a personal entity (instance admins only); returns (user, the
        password, generated when not given). Pending invites for the email are redeemed."""

    def create_user_with_key(
        self,
        email: str,
        *,
        display_name: str | None = None,
        username: str | None = None,
        is_admin: bool = False,
        password: str | None = None,
    ) -> tuple[dict[str, Any], str, str]:
        """:meth:`create_user`, then a first API key (named ``initial``) for the new
        user: (user, password, key). A transport that can do both at once overrides it
        (a local-mode server ends local mode with the first account, so a second call
        would no longer be the local administrator's)."""
        user, pw = self.create_user(
            email,
            display_name=display_name,
            username=username,
            is_admin=is_admin,
            password=password,
        )
        _info, key = self.create_api_key(user["username"], name="initial")
        return user, pw, key

    @abc.abstractmethod
    def list_users(self) -> list[dict[str, Any]]:
        """Every account, service accounts included (instance admins only)."""

    @abc.abstractmethod
    def set_user_disabled(self, user: str, disabled: bool = True) -> None:
        """Disable or enable an account by username or email (instance admins only):
        its keys and sessions stop working; its runs stay."""

    @abc.abstractmethod
    def set_password(self, user: str, password: str | None = None) -> str:
        """Set a user's password (one's own, or anyone's as an instance admin); None
        generates one. Returns the password."""

    @abc.abstractmethod
    def create_api_key(
        self, user: str | None = None, name: str | None = None, expires_in: float | None = None
    ) -> tuple[dict[str, Any], str]:
        """A new API key for ``user`` (default: the caller; a service account's for its
        team admins), living ``expires_in`` seconds (None: until revoked); (info, key)."""

    @abc.abstractmethod
    def list_api_keys(self, user: str | None = None) -> list[dict[str, Any]]:
        """The keys of ``user`` (default: the caller): prefix, name, created_at,
        last_used_at, expires_at, revoked. Never the keys themselves."""

    @abc.abstractmethod
    def revoke_api_key(self, prefix: str) -> dict[str, Any]:
        """Revoke a key by its prefix (or the whole key); returns its info."""

    @abc.abstractmethod
    def create_team(self, name: str) -> dict[str, Any]:
        """A team entity; a person creating it becomes its admin."""

    @abc.abstractmethod
    def list_teams(self) -> list[dict[str, Any]]:
        """The caller's teams (every team, for instance admins): name, role, members."""

    @abc.abstractmethod
    def team_members(self, team: str) -> dict[str, Any]:
        """``{team, members, invites, service_accounts}`` of a team its members may read."""

    @abc.abstractmethod
    def add_member(self, team: str, email: str, role: str = "member") -> dict[str, Any]:
        """Add a person (or change their role); an unknown email gets a pending invite
        (``status`` says which: added, changed, unchanged, invited)."""

    @abc.abstractmethod
    def remove_member(self, team: str, user: str) -> dict[str, Any]:
        """Remove a member (their runs stay) or cancel an invite; never the last admin."""

    @abc.abstractmethod
    def create_service_account(
        self, team: str, name: str, role: str = "member"
    ) -> tuple[dict[str, Any], str]:
        """A team's API-only account ``NAME@TEAM`` (member or viewer) and its first key:
        (info with ``key_prefix``, key). Its runs go to the team."""

    @abc.abstractmethod
    def delete_service_account(self, team: str, name: str) -> None:
        """Disable a service account and revoke its keys (its runs stay attributed)."""

    @abc.abstractmethod
    def set_project_visibility(self, entity: str, project: str, visibility: str) -> None:
        """``team`` (every member, per role) or ``private`` (its owner and team admins)."""

    # ------------------------------------------------------------ audit
    @abc.abstractmethod
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
        """Audit entries, newest first. ``entity`` scopes to one team (its admins may
        read it); without it, the whole log (instance admins). ``action`` matches a
        whole action or a prefix ending in a dot (``team.``); ``before_seq`` pages."""

    @abc.abstractmethod
    def audit_verify(self) -> dict[str, Any]:
        """Walk the hash chain (instance admins): ``{ok, checked, first_bad, problem,
        head}``, ``first_bad`` being the seq of the first entry that does not check out."""

    # ------------------------------------------------------------ promotions
    @abc.abstractmethod
    def request_promotion(
        self, ref: ArtifactRef, alias: str, comment: str | None = None
    ) -> dict[str, Any]:
        """Ask for ``alias`` (typically a protected one) to point at ``ref`` (members);
        recorded in the alias history. Returns the request (``id``, ``state``...)."""

    @abc.abstractmethod
    def list_promotions(
        self,
        entity: str,
        project: str,
        name: str | None = None,
        state: str | None = "pending",
    ) -> list[dict[str, Any]]:
        """A project's promotion requests (of artifact ``name``), oldest first; ``state``
        None for every state."""

    @abc.abstractmethod
    def decide_promotion(
        self,
        request_id: int,
        approve: bool,
        comment: str | None = None,
        project: tuple[str, str] | None = None,
    ) -> dict[str, Any]:
        """Approve (the alias moves now) or reject (a comment is required) a pending
        request: team admins. ``project`` (entity, name) must be the request's."""

    # ------------------------------------------------------------ reports
    # Records: {id, entity, project, title, description, revision, revisions, spec,
    # created_by, created_at, updated_by, updated_at, share: {enabled, token, allowed,
    # enabled_by, enabled_at}}; ``spec`` is the validated, normalized spec of
    # :mod:`stemma.report.spec`. Share tokens are stored hashed: ``share.token`` is set
    # only in the answer of set_report_share(id, True).
    @abc.abstractmethod
    def save_report(
        self, entity: str, project: str, spec: dict[str, Any], report_id: str | None = None
    ) -> dict[str, Any]:
        """Validate ``spec`` and store it as a new report (``report_id`` None) or as the
        next revision of one (WRITE on the project). Returns the record."""

    @abc.abstractmethod
    def get_report(self, report_id: str, revision: int | None = None) -> dict[str, Any]:
        """A report with the spec of ``revision`` (default: the newest)."""

    @abc.abstractmethod
    def list_reports(self, entity: str, project: str) -> list[dict[str, Any]]:
        """A project's reports (records without ``spec``), most recently saved first."""

    @abc.abstractmethod
    def report_revisions(self, report_id: str) -> list[dict[str, Any]]:
        """``{revision, saved_by, saved_at, title}`` of every revision, oldest first."""

    @abc.abstractmethod
    def delete_report(self, report_id: str) -> None:
        """Delete a report and all its revisions (WRITE)."""

    @abc.abstractmethod
    def set_report_share(self, report_id: str, enabled: bool) -> dict[str, Any]:
        """Enable (a new random token, in ``share.token`` of this answer only) or revoke
        the report's read-only share link (WRITE; PermissionDenied when the project's
        admins switched share links off)."""

    @abc.abstractmethod
    def report_sharing_allowed(self, entity: str, project: str) -> bool:
        """Whether the project's reports may have share links (default True)."""

    @abc.abstractmethod
    def set_report_sharing_allowed(self, entity: str, project: str, allowed: bool) -> None:
        """Allow or forbid share links in a project (ADMIN); forbidding revokes every
        existing link of its reports."""

    # ------------------------------------------------------------ webhooks
    # Records: {id, team, url, events, alias, enabled, created_by, created_at}; the
    # secret is returned once, by add_webhook. Deliveries: {id, webhook, event, status
    # (pending | succeeded | failed), attempts, next_attempt_at, last_status_code,
    # last_error, created_at, finished_at, payload, attempt_log}. Team admins only.
    @abc.abstractmethod
    def add_webhook(
        self,
        team: str,
        url: str,
        events: Sequence[str],
        alias: str | None = None,
        secret: str | None = None,
    ) -> tuple[dict[str, Any], str]:
        """Register a webhook of ``team``; returns (record, secret), the secret generated
        when not given. The URL is refused unless http(s) to a public address (see
        STEMMA_WEBHOOK_ALLOW_PRIVATE) other than the server itself."""

    @abc.abstractmethod
    def list_webhooks(self, team: str) -> list[dict[str, Any]]:
        """A team's webhooks, oldest first (without secrets)."""

    @abc.abstractmethod
    def delete_webhook(self, team: str, webhook_id: int) -> None:
        """Delete a webhook and its deliveries."""

    @abc.abstractmethod
    def test_webhook(self, team: str, webhook_id: int) -> dict[str, Any]:
        """Queue a ``ping`` delivery to the webhook; returns the delivery."""

    @abc.abstractmethod
    def webhook_deliveries(
        self, team: str, webhook_id: int, limit: int = 20
    ) -> list[dict[str, Any]]:
        """A webhook's deliveries, newest first."""

    def retry_budget(self, seconds: float) -> AbstractContextManager[None]:
        """Within the block, give up on an unreachable store after ``seconds`` (this
        thread only). The writer uses it: its own loop retries, with the spool safe."""
        del seconds
        return contextlib.nullcontext()

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""

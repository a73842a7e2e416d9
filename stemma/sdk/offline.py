"""Artifacts without a store: offline logging, offline use, and their upload by sync.

Offline, ``log_artifact`` copies each file into a content-addressed *pending* store in
``STEMMA_DIR`` (never evicted, unlike the download cache, so the upload later does not
depend on the source files staying as they were) and writes an ``artifact`` event to
the spool; ``use_artifact`` resolves names from a local
index of artifact records seen while online and reads bytes from the cache, and writes
a ``use`` event. ``stemma sync`` turns both back into store calls before applying their
frame; committing is idempotent (identical contents make no new version), so a sync
interrupted and re-run creates no duplicate.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from stemma.errors import NotFound
from stemma.sdk.cache import BlobCache
from stemma.wire.manifest import Manifest
from stemma.wire.records import ArtifactCommit, ArtifactRecord, ArtifactRef, RunRef
from stemma.wire.values import from_storable, to_storable


class RecordIndex:
    """Artifact records (with manifests) kept beside the cache for offline use."""

    def __init__(self, cache: BlobCache) -> None:
        self.root = cache.root / "artifacts"

    def _dir(self, entity: str, project: str, name: str) -> Path:
        return self.root / entity / project / name

    def save(self, record: ArtifactRecord) -> None:
        """Keep a record for offline use. A version's files never change, so its file is
        written once; only the alias map is rewritten, and only when it changes."""
        if record.manifest is None:
            return
        d = self._dir(record.entity, record.project, record.name)
        version_path = d / f"v{record.version}.json"
        if not version_path.exists():
            from stemma.wire.schemas import ArtifactOut

            d.mkdir(parents=True, exist_ok=True)
            tmp = version_path.with_suffix(".tmp")
            tmp.write_text(ArtifactOut.from_record(record).model_dump_json())
            tmp.replace(version_path)
        aliases_path = d / "aliases.json"
        aliases = json.loads(aliases_path.read_text()) if aliases_path.exists() else {}
        updated = {**aliases, **dict.fromkeys(record.aliases, record.version)}
        if updated != aliases:
            aliases_path.write_text(json.dumps(updated))

    def load(self, entity: str, project: str, name: str, selector: str) -> ArtifactRecord:
        from stemma.wire.schemas import ArtifactOut

        d = self._dir(entity, project, name)
        version: int | None = None
        if selector.startswith("v") and selector[1:].isdigit():
            version = int(selector[1:])
        else:
            aliases_path = d / "aliases.json"
            if aliases_path.exists():
                version = json.loads(aliases_path.read_text()).get(selector)
        path = d / f"v{version}.json"
        if version is None or not path.exists():
            raise NotFound(
                f"artifact {entity}/{project}/{name}:{selector} is not in the local cache; "
                "use it once while online (or download it) to make it available offline",
                path=f"{entity}/{project}/{name}:{selector}",
            )
        return ArtifactOut.model_validate_json(path.read_text()).to_record()


def pending_dir(settings_dir: Path) -> Path:
    return settings_dir / "pending-blobs"


def pending_store(path: Path) -> BlobCache:
    """Bytes of artifacts logged offline, kept until `stemma sync` has uploaded them:
    a content-addressed directory like the download cache, but never evicted."""
    return BlobCache(path, max_bytes=sys.maxsize)


def artifact_event(commit: ArtifactCommit, pending_dir: Path) -> dict[str, Any]:
    return {
        "t": "artifact",
        "pending": str(pending_dir),
        "name": commit.name,
        "type": commit.type,
        "description": commit.description,
        "metadata": to_storable(commit.metadata, "metadata"),
        "manifest": commit.manifest.to_json(),
        "aliases": list(commit.aliases),
        "ttl_seconds": commit.ttl_seconds,
        "creator": to_storable(commit.creator, "creator"),
    }


def use_event(ref: ArtifactRef) -> dict[str, Any]:
    return {
        "t": "use",
        "entity": ref.entity,
        "project": ref.project,
        "name": ref.name,
        "version": ref.version,
    }


def replay(
    backend: Any, run: RunRef, events: list[dict[str, Any]], pending: BlobCache | None
) -> None:
    """Do in the store what offline artifact events stand for (before their frame)."""
    for ev in events:
        if ev["t"] == "artifact":
            manifest = Manifest.from_json(ev["manifest"])
            files = []
            for digest in sorted(manifest.blob_digests()):
                if pending is None or not pending.has(digest):
                    raise NotFound(
                        f"bytes {digest} of offline artifact {ev['name']} are "
                        f"missing from {ev.get('pending')}",
                        digest=digest,
                    )
                files.append((pending.path(digest), digest))
            backend.store_files(files)
            backend.commit_artifact(
                ArtifactCommit(
                    entity=run.entity,
                    project=run.project,
                    name=ev["name"],
                    type=ev["type"],
                    description=ev.get("description"),
                    metadata=from_storable(ev["metadata"]),
                    manifest=manifest,
                    aliases=list(ev.get("aliases") or []),
                    ttl_seconds=ev.get("ttl_seconds"),
                    run=run,
                    creator=from_storable(ev.get("creator") or {}),
                )
            )
        elif ev["t"] == "use":
            backend.use_artifact(
                run, ArtifactRef(ev["entity"], ev["project"], ev["name"], int(ev["version"]))
            )

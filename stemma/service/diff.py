"""What changed between two artifact versions, down to the lines of text files.

Files added, removed and changed (with sizes), metadata keys changed, the config keys
that differ between the two producing runs, and for changed text files a unified diff
(for CSV: the rows added and removed), capped so a huge file cannot flood the answer.
"""

from __future__ import annotations

import difflib
from typing import Any

from sqlalchemy import Connection

from stemma.service.artifacts import _record, load_manifest, resolve
from stemma.service.lineage import _run_record
from stemma.wire.records import ArtifactRef

TEXT_SUFFIXES = {
    ".txt",
    ".md",
    ".json",
    ".jsonl",
    ".yaml",
    ".yml",
    ".csv",
    ".tsv",
    ".py",
    ".cfg",
    ".ini",
    ".toml",
    ".xml",
    ".html",
    ".js",
    ".ts",
    ".sql",
    ".sh",
    ".log",
    ".rst",
}
MAX_TEXT_BYTES = 2 << 20  # files larger than this are compared by size and digest only
MAX_DIFF_LINES = 400


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _dict_diff(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    fa, fb = _flatten(a), _flatten(b)
    return {
        "added": {k: fb[k] for k in sorted(fb.keys() - fa.keys())},
        "removed": {k: fa[k] for k in sorted(fa.keys() - fb.keys())},
        "changed": {k: [fa[k], fb[k]] for k in sorted(fa.keys() & fb.keys()) if fa[k] != fb[k]},
    }


def _text(store: Any, digest: str) -> str | None:
    with store.open(digest) as fh:
        data = fh.read(MAX_TEXT_BYTES + 1)
    if len(data) > MAX_TEXT_BYTES or b"\x00" in data[:8192]:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _content_diff(path: str, old: str, new: str) -> dict[str, Any]:
    old_lines, new_lines = old.splitlines(), new.splitlines()
    if path.lower().endswith((".csv", ".tsv")):
        header = old_lines[:1] if old_lines[:1] == new_lines[:1] else []
        old_rows = old_lines[len(header) :]
        new_rows = new_lines[len(header) :]
        old_set, new_set = set(old_rows), set(new_rows)
        added = [r for r in new_rows if r not in old_set]
        removed = [r for r in old_rows if r not in new_set]
        return {
            "kind": "rows",
            "header": header[0] if header else None,
            "rows_added": added[:MAX_DIFF_LINES],
            "rows_removed": removed[:MAX_DIFF_LINES],
            "rows_added_count": len(added),
            "rows_removed_count": len(removed),
            "truncated": len(added) > MAX_DIFF_LINES or len(removed) > MAX_DIFF_LINES,
        }
    lines = list(difflib.unified_diff(old_lines, new_lines, f"a/{path}", f"b/{path}", lineterm=""))
    return {
        "kind": "unified",
        "diff": lines[:MAX_DIFF_LINES],
        "truncated": len(lines) > MAX_DIFF_LINES,
    }


def diff_versions(
    conn: Connection, store: Any, a: ArtifactRef, b: ArtifactRef, contents: bool = True
) -> dict[str, Any]:
    coll_a, ver_a = resolve(conn, a.entity, a.project, a.name, f"v{a.version}")
    coll_b, ver_b = resolve(conn, b.entity, b.project, b.name, f"v{b.version}")
    rec_a = _record(conn, coll_a, ver_a, a.entity, a.project, [], False)
    rec_b = _record(conn, coll_b, ver_b, b.entity, b.project, [], False)
    ma, mb = load_manifest(conn, ver_a.id), load_manifest(conn, ver_b.id)
    added = [{"path": e.path, "size": e.size} for e in mb if e.path not in ma]
    removed = [{"path": e.path, "size": e.size} for e in ma if e.path not in mb]
    changed = []
    for e in mb:
        old = ma.get(e.path)
        if old is None or (old.digest, old.ref, old.size) == (e.digest, e.ref, e.size):
            continue
        item: dict[str, Any] = {"path": e.path, "old_size": old.size, "new_size": e.size}
        if (
            contents
            and e.digest
            and old.digest
            and e.ref is None
            and old.ref is None
            and ("." + e.path.rsplit(".", 1)[-1].lower()) in TEXT_SUFFIXES
        ):
            old_text, new_text = _text(store, old.digest), _text(store, e.digest)
            if old_text is not None and new_text is not None:
                item["content"] = _content_diff(e.path, old_text, new_text)
        changed.append(item)
    run_a = _run_record(conn, ver_a.run_pk) if ver_a.run_pk is not None else None
    run_b = _run_record(conn, ver_b.run_pk) if ver_b.run_pk is not None else None
    config = None
    if run_a is not None and run_b is not None:
        config = _dict_diff(run_a.config, run_b.config)
    return {
        "a": a.path,
        "b": b.path,
        "files": {
            "added": added,
            "removed": removed,
            "changed": changed,
            "unchanged": sum(1 for e in mb if ma.get(e.path) == e),
        },
        "size": {"a": rec_a.size, "b": rec_b.size},
        "metadata": _dict_diff(rec_a.metadata, rec_b.metadata),
        "runs": {"a": run_a.ref.path if run_a else None, "b": run_b.ref.path if run_b else None},
        "config": config,
    }

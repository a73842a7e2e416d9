"""``stemma artifact ...``: list, fetch, upload, alias, promote, diff, trace and delete
versions."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import click

from stemma.cli.common import handle_errors, is_tty, progress


def _console():
    from rich.console import Console

    return Console(width=None if is_tty() else 160)


def _size(n: int | None) -> str:
    if n is None:
        return "?"
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n = n / 1024  # type: ignore[assignment]
    return str(n)


def _api():
    from stemma.api.public import Api

    return Api()


def _time(value: dt.datetime | None) -> str:
    return value.astimezone().strftime("%Y-%m-%d %H:%M:%S") if value else ""


def parse_when(text: str) -> dt.datetime:
    """An ISO time (``2026-10-01``, ``2026-10-01T12:00``), naive meaning UTC."""
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not an ISO date/time such as 2026-10-01") from None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


@click.group("artifact")
def artifact_group() -> None:
    """Versioned datasets, models and other files."""


@artifact_group.command("ls")
@click.argument("path")
@click.option("--type", "type_", help="Only artifacts of this type.")
@click.option("--json", "as_json", is_flag=True)
@handle_errors
def artifact_ls(path: str, type_: str | None, as_json: bool) -> None:
    """List the artifacts of PROJECT, or the versions of PROJECT/NAME."""
    from rich.table import Table

    api = _api()
    parts = path.split("/")
    if len(parts) <= 2 and ":" not in path and not _looks_like_artifact(api, path):
        rows = api.artifact_collections(path, type_)
        if as_json:
            for r in rows:
                click.echo(json.dumps(r, default=str))
            return
        table = Table(title=f"artifacts of {path}")
        for col in ("name", "type", "versions", "latest", "size", "created"):
            table.add_column(col)
        for r in rows:
            table.add_row(
                r["name"],
                r["type"],
                str(r["versions"]),
                "" if r["latest_version"] is None else f"v{r['latest_version']}",
                _size(r["size"]),
                _time(r["created_at"]),
            )
        _console().print(table)
        return
    versions = api.artifact_versions(None, path.split(":")[0])
    if as_json:
        for a in versions:
            click.echo(
                json.dumps(
                    {
                        "version": a.version,
                        "aliases": a.aliases,
                        "digest": a.digest,
                        "size": a.size,
                        "metadata": a.metadata,
                        "created_at": a.created_at,
                        "creator": a.creator,
                    },
                    default=str,
                )
            )
        return
    table = Table(title=path.split(":")[0])
    for col in ("version", "aliases", "size", "files", "created", "by run", "digest"):
        table.add_column(col)
    for a in versions:
        rec = a._record
        table.add_row(
            a.version,
            ", ".join(a.aliases),
            _size(a.size),
            str(rec.file_count),
            _time(a.created_at),
            rec.run_path or "",
            a.digest[:12],
        )
    _console().print(table)


def _looks_like_artifact(api: Any, path: str) -> bool:
    """``a/b`` is entity/project or project/name: it is an artifact when one exists."""
    if path.count("/") != 1:
        return False
    try:
        api.artifact(path)
    except Exception:
        return False
    return True


@artifact_group.command("get")
@click.argument("path")
@click.option("--root", type=click.Path(path_type=Path), help="Where to write the files.")
@handle_errors
def artifact_get(path: str, root: Path | None) -> None:
    """Download PATH ([entity/]project/name[:version|alias])."""
    art = _api().artifact(path)
    out = art.download(root)
    click.echo(f"{art.qualified_name}: {len(art.files())} file(s), {_size(art.size)} in {out}")


@artifact_group.command("put")
@click.argument("local", type=click.Path(exists=True, path_type=Path))
@click.option("--name", "-n", required=True, help="[project/]name of the artifact.")
@click.option("--type", "-t", "type_", default="dataset", show_default=True)
@click.option("--project", "-p", help="Project (or put it in --name as project/name).")
@click.option("--alias", "-a", "aliases", multiple=True, help="Aliases to set (repeatable).")
@click.option("--description", "-d")
@click.option("--metadata", help="Metadata as a JSON object.")
@handle_errors
def artifact_put(
    local: Path,
    name: str,
    type_: str,
    project: str | None,
    aliases: tuple[str, ...],
    description: str | None,
    metadata: str | None,
) -> None:
    """Upload a file or directory as a new version (logged by an 'upload' run)."""
    import stemma

    if "/" in name:
        project, name = name.rsplit("/", 1)
    if not project:
        raise click.UsageError("give --project or --name project/name")
    meta = {}
    if metadata:
        try:
            meta = json.loads(metadata)
        except json.JSONDecodeError as exc:
            raise click.BadParameter(f"--metadata is not JSON: {exc}") from None
        if not isinstance(meta, dict):
            raise click.BadParameter("--metadata must be a JSON object")
    art = stemma.Artifact(name, type_, description=description, metadata=meta)
    if local.is_dir():
        art.add_dir(local)
    else:
        art.add_file(local)
    with stemma.init(
        project=project, job_type="upload", settings={"silent": True, "system_metrics": False}
    ) as run:
        run.log_artifact(art, aliases=list(aliases))
    click.echo(f"{art.qualified_name} ({_size(art.size)}, aliases: {', '.join(art.aliases)})")


@artifact_group.command("alias")
@click.argument("path")
@click.argument("alias")
@click.option("--remove", is_flag=True, help="Remove the alias from this version.")
@handle_errors
def artifact_alias(path: str, alias: str, remove: bool) -> None:
    """Point ALIAS at version PATH (moving it from wherever it was)."""
    art = _api().artifact(path)
    if remove:
        if alias not in art.aliases:
            raise click.ClickException(f"{art.qualified_name} has no alias {alias!r}")
        art.aliases.remove(alias)
    elif alias not in art.aliases:
        art.aliases.append(alias)
    art.save()
    click.echo(f"{art.qualified_name}: aliases {', '.join(art.aliases)}")


@artifact_group.command("alias-history")
@click.argument("path")
@click.option("--at", "at", help="Print what the alias pointed to at this time (ISO).")
@handle_errors
def artifact_alias_history(path: str, at: str | None) -> None:
    """Every move of the aliases of PATH (or of the one alias in NAME:ALIAS)."""
    from rich.table import Table

    api = _api()
    name, _, alias = path.partition(":")
    if at is not None:
        if not alias:
            raise click.UsageError("--at needs NAME:ALIAS")
        art = api.artifact(path, at=parse_when(at))
        click.echo(f"{alias} pointed to {art.version} at {at}")
        return
    rows = api.alias_history(name, alias or None)
    table = Table(title=f"alias history of {path}")
    for col in ("time", "alias", "event", "from", "to", "by", "comment"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            _time(r["at"]),
            r["alias"],
            r.get("event") or "move",
            "" if r["from_version"] is None else f"v{r['from_version']}",
            "(removed)" if r["to_version"] is None else f"v{r['to_version']}",
            r["actor"] or "",
            r.get("comment") or "",
        )
    _console().print(table)


@artifact_group.command("diff")
@click.argument("a")
@click.argument("b")
@click.option("--json", "as_json", is_flag=True)
@click.option("--no-contents", is_flag=True, help="Do not diff inside changed text files.")
@handle_errors
def artifact_diff(a: str, b: str, as_json: bool, no_contents: bool) -> None:
    """What changed from version A to version B (files, metadata, run config)."""
    api = _api()
    art_a = api.artifact(a)
    if ":" in b and "/" not in b.split(":")[0]:
        b = f"{art_a.entity}/{art_a.project}/{b}"
    art_b = api.artifact(b)
    result = api._backend.artifact_diff(art_a.ref, art_b.ref, contents=not no_contents)
    if as_json:
        click.echo(json.dumps(result, default=str, indent=2))
        return
    _print_diff(result)


def _print_diff(d: dict[str, Any]) -> None:
    files = d["files"]
    click.echo(f"--- {d['a']}\n+++ {d['b']}")
    click.echo(
        f"files: {len(files['added'])} added, {len(files['removed'])} removed, "
        f"{len(files['changed'])} changed, {files['unchanged']} unchanged; "
        f"size {_size(d['size']['a'])} -> {_size(d['size']['b'])}"
    )
    for f in files["added"]:
        click.echo(f"  + {f['path']} ({_size(f['size'])})")
    for f in files["removed"]:
        click.echo(f"  - {f['path']} ({_size(f['size'])})")
    for f in files["changed"]:
        click.echo(f"  ~ {f['path']} ({_size(f['old_size'])} -> {_size(f['new_size'])})")
        content = f.get("content")
        if content and content["kind"] == "unified":
            for line in content["diff"]:
                click.echo(f"      {line}")
        elif content:
            for row in content["rows_removed"]:
                click.echo(f"      - {row}")
            for row in content["rows_added"]:
                click.echo(f"      + {row}")
        if content and content.get("truncated"):
            click.echo("      ... (truncated)")
    for label, section in (("metadata", d["metadata"]), ("config", d["config"])):
        if not section or not any(section.values()):
            continue
        click.echo(f"{label}:")
        for k, v in section["added"].items():
            click.echo(f"  + {k} = {v!r}")
        for k, v in section["removed"].items():
            click.echo(f"  - {k} = {v!r}")
        for k, (old, new) in section["changed"].items():
            click.echo(f"  ~ {k}: {old!r} -> {new!r}")
    if d["runs"]["a"] or d["runs"]["b"]:
        click.echo(f"runs: {d['runs']['a']} -> {d['runs']['b']}")


@artifact_group.command("lineage")
@click.argument("path")
@click.option("--depth", default=2, show_default=True, help="Run hops in each direction.")
@click.option(
    "--direction",
    type=click.Choice(["both", "upstream", "downstream"]),
    default="both",
    show_default=True,
)
@click.option("--json", "as_json", is_flag=True)
@handle_errors
def artifact_lineage(path: str, depth: int, direction: str, as_json: bool) -> None:
    """Print the lineage of PATH as trees: where it came from and where it went."""
    from rich.tree import Tree

    art = _api().artifact(path)
    graph = art.lineage(depth, direction)
    if as_json:
        click.echo(json.dumps(graph, indent=2))
        return
    nodes = {n["id"]: n for n in graph["nodes"]}
    parents: dict[str, list[str]] = {}
    children: dict[str, list[str]] = {}
    for e in graph["edges"]:
        children.setdefault(e["source"], []).append(e["target"])
        parents.setdefault(e["target"], []).append(e["source"])

    def label(node_id: str) -> str:
        n = nodes[node_id]
        if n["kind"] == "run":
            return f"[bold]run[/] {n['path']} ({n.get('job_type') or '-'}, {n['state']})"
        aliases = f" [{', '.join(n['aliases'])}]" if n["aliases"] else ""
        return f"[cyan]{n['type']}[/] {n['path']}{aliases}"

    def grow(tree: Tree, node_id: str, links: dict[str, list[str]], seen: set[str]) -> None:
        for nxt in sorted(links.get(node_id, [])):
            branch = tree.add(label(nxt))
            if nxt not in seen:
                grow(branch, nxt, links, seen | {nxt})

    root = graph["root"]
    console = _console()
    if direction in ("both", "upstream"):
        up = Tree(f"upstream of {label(root)}")
        grow(up, root, parents, {root})
        console.print(up)
    if direction in ("both", "downstream"):
        down = Tree(f"downstream of {label(root)}")
        grow(down, root, children, {root})
        console.print(down)


@artifact_group.command("rm")
@click.argument("path")
@click.option("--delete-aliases", is_flag=True, help="Also drop its aliases.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@handle_errors
def artifact_rm(path: str, delete_aliases: bool, yes: bool) -> None:
    """Delete version PATH (its bytes are freed by the next `stemma gc`)."""
    art = _api().artifact(path)
    if not yes:
        click.confirm(f"delete {art.qualified_name} ({_size(art.size)})?", abort=True)
    art.delete(delete_aliases=delete_aliases)
    click.echo(f"deleted {art.qualified_name}; run `stemma gc` to free its storage")


@artifact_group.command("verify")
@click.argument("path")
@click.option(
    "--root",
    type=click.Path(path_type=Path),
    help="Check a downloaded directory instead of the stored bytes.",
)
@handle_errors
def artifact_verify(path: str, root: Path | None) -> None:
    """Re-hash the stored bytes of PATH (or the files under --root) against its manifest."""
    api = _api()
    art = api.artifact(path)
    if root is not None:
        art.verify(root)
        click.echo(f"{root} matches {art.qualified_name}")
        return
    entries = [e for e in art.files() if e.digest and e.ref is None]
    prog, task = progress(sum(e.size or 0 for e in entries), "verifying")
    with prog:
        bad = api._backend.verify_blobs(
            sorted({e.digest for e in entries}), lambda n: prog.advance(task, n)
        )
    if bad:
        hit = [e.path for e in entries if e.digest in set(bad)]
        raise click.ClickException(
            f"{art.qualified_name}: {len(hit)} file(s) missing or corrupt in the store: "
            + ", ".join(hit[:20])
        )
    click.echo(f"{art.qualified_name}: {len(entries)} file(s) verified")


@artifact_group.command("protect")
@click.argument("project")
@click.argument("aliases", nargs=-1)
@click.option("--unprotect", is_flag=True, help="Remove the ALIASES from the protected list.")
@handle_errors
def artifact_protect(project: str, aliases: tuple[str, ...], unprotect: bool) -> None:
    """Show or change the aliases of PROJECT that only team admins may move."""
    api = _api()
    entity, proj = api._split(project, 2)
    current = api._backend.get_protected_aliases(entity, proj)
    if aliases:
        wanted = (
            [a for a in current if a not in aliases]
            if unprotect
            else sorted(set(current) | set(aliases))
        )
        api._backend.set_protected_aliases(entity, proj, wanted)
        current = api._backend.get_protected_aliases(entity, proj)
    click.echo(f"{entity}/{proj}: protected aliases: {', '.join(current) or '(none)'}")


@artifact_group.command("retention")
@click.argument("project")
@click.option("--name", help="Only this artifact (default: every artifact of the project).")
@click.option("--keep-last", type=int, help="Keep the newest N versions (plus aliased ones).")
@click.option(
    "--delete-unaliased-older-than",
    "older",
    help="Delete versions with no alias older than this (e.g. 30d).",
)
@click.option(
    "--default-ttl",
    help="Give versions logged without a TTL this one (e.g. 90d); gc deletes them after it.",
)
@click.option("--clear", is_flag=True, help="Remove the policy.")
@handle_errors
def artifact_retention(
    project: str,
    name: str | None,
    keep_last: int | None,
    older: str | None,
    default_ttl: str | None,
    clear: bool,
) -> None:
    """Show or set retention policies, applied by `stemma gc` (never to protected aliases).

    A policy is replaced whole: give every part you want to keep.
    """
    from stemma.util import parse_time

    api = _api()
    entity, proj = api._split(project, 2)
    if clear or keep_last is not None or older is not None or default_ttl is not None:
        seconds = parse_time(older).total_seconds() if older and not clear else None
        ttl = parse_time(default_ttl).total_seconds() if default_ttl and not clear else None
        api._backend.set_retention(entity, proj, name, None if clear else keep_last, seconds, ttl)
    policies = api._backend.get_retention(entity, proj)
    if not policies:
        click.echo(f"{entity}/{proj}: no retention policy")
    for p in policies:
        parts = []
        if p["keep_last"] is not None:
            parts.append(f"keep last {p['keep_last']}")
        if p["delete_unaliased_older_than"] is not None:
            parts.append(f"delete unaliased older than {p['delete_unaliased_older_than']:.0f}s")
        if p.get("default_ttl") is not None:
            parts.append(f"default TTL {p['default_ttl']:.0f}s")
        click.echo(f"{entity}/{proj}/{p['name'] or '*'}: {'; '.join(parts)}")


# ------------------------------------------------------------------ promotions


@artifact_group.command("promote")
@click.argument("path", metavar="[ENTITY/PROJECT/]NAME:vN")
@click.argument("alias")
@click.option(
    "--request",
    "as_request",
    is_flag=True,
    help="File a promotion request for a team admin to approve, instead of moving it.",
)
@click.option("--comment", help="Why (kept with the request and in the alias history).")
@handle_errors
def artifact_promote(path: str, alias: str, as_request: bool, comment: str | None) -> None:
    """Point ALIAS at a version, or (--request) ask a team admin to.

    Without --request the alias moves now, which needs the rights to move it: team
    admins for a protected alias (see `stemma artifact protect`), members otherwise.
    With --request a pending request is filed and its id printed; an admin decides it
    with `stemma artifact approve` or `reject`. Both land in `alias-history`.
    """
    art = _api().artifact(path)
    backend = art._backend
    if as_request:
        req = backend.request_promotion(art.ref, alias, comment)
        project = "/".join(req["artifact"].split("/")[:2])
        click.echo(
            f"promotion request {req['id']}: move {alias!r} of {req['artifact']} to "
            f"{req['version']} (pending)"
        )
        click.echo(f"a team admin decides it: stemma artifact approve {project} {req['id']}")
        return
    if comment is not None:
        raise click.UsageError(
            "--comment is kept with a promotion request (--request); a direct move has none"
        )
    if alias in art.aliases:
        click.echo(f"{art.qualified_name} already holds {alias!r}")
        return
    record = backend.update_artifact(art.ref, {"aliases": [*art.aliases, alias]})
    click.echo(f"{record.ref.path}: {alias!r} moved here; aliases {', '.join(record.aliases)}")


def _project_of(project: str) -> tuple[Any, str, str]:
    api = _api()
    entity, proj = api._split(project, 2)
    return api._backend, entity, proj


@artifact_group.command("requests")
@click.argument("project", metavar="[ENTITY/]PROJECT")
@click.option("--name", help="Only requests for this artifact.")
@click.option("--all", "show_all", is_flag=True, help="Decided requests too, not only pending.")
@handle_errors
def artifact_requests(project: str, name: str | None, show_all: bool) -> None:
    """List the promotion requests of PROJECT (pending ones unless --all)."""
    from rich.table import Table

    backend, entity, proj = _project_of(project)
    rows = backend.list_promotions(entity, proj, name, None if show_all else "pending")
    if not rows:
        click.echo(f"no {'' if show_all else 'pending '}promotion requests in {entity}/{proj}")
        return
    table = Table(title=f"promotion requests in {entity}/{proj}")
    for col in ("id", "artifact", "alias", "to", "by", "requested", "comment", "state"):
        table.add_column(col)
    if show_all:
        for col in ("decided by", "decision comment"):
            table.add_column(col)
    for r in rows:
        cells = [
            str(r["id"]),
            r["artifact"].split("/", 2)[2],
            r["alias"],
            r["version"],
            r["requested_by"],
            _time(r["requested_at"]),
            r["comment"] or "",
            r["state"],
        ]
        if show_all:
            cells += [r["decided_by"] or "", r["decision_comment"] or ""]
        table.add_row(*cells)
    _console().print(table)


def _decide(project: str, request_id: int, approve: bool, comment: str | None) -> None:
    backend, entity, proj = _project_of(project)
    req = backend.decide_promotion(request_id, approve, comment, (entity, proj))
    if approve:
        click.echo(
            f"approved request {req['id']}: {req['alias']!r} of {req['artifact']} now "
            f"points to {req['version']}"
        )
    else:
        click.echo(f"rejected request {req['id']} ({req['alias']!r} -> {req['version']})")


@artifact_group.command("approve")
@click.argument("project", metavar="[ENTITY/]PROJECT")
@click.argument("request_id", metavar="ID", type=int)
@click.option("--comment", help="A note kept with the decision.")
@handle_errors
def artifact_approve(project: str, request_id: int, comment: str | None) -> None:
    """Approve promotion request ID of PROJECT (team admins): the alias moves now."""
    _decide(project, request_id, True, comment)


@artifact_group.command("reject")
@click.argument("project", metavar="[ENTITY/]PROJECT")
@click.argument("request_id", metavar="ID", type=int)
@click.option("--comment", required=True, help="Why (required).")
@handle_errors
def artifact_reject(project: str, request_id: int, comment: str) -> None:
    """Reject promotion request ID of PROJECT (team admins), saying why."""
    _decide(project, request_id, False, comment)

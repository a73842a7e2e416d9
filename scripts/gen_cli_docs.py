"""Write docs/cli.md from the CLI's own --help texts (a test checks it is current)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from stemma.cli.main import cli

OUT = Path(__file__).resolve().parent.parent / "docs" / "cli.md"


def _walk(cmd: click.Command, path: list[str]) -> list[tuple[list[str], click.Command]]:
    out = [(path, cmd)]
    if isinstance(cmd, click.Group):
        for name in sorted(cmd.commands):
            out.extend(_walk(cmd.commands[name], [*path, name]))
    return out


def render() -> str:
    parts = [
        "# CLI reference",
        "",
        "Generated from `--help` by `scripts/gen_cli_docs.py`; do not edit by hand.",
        "",
    ]
    for path, cmd in _walk(cli, ["stemma"]):
        with click.Context(
            cmd, info_name=" ".join(path), terminal_width=80, max_content_width=80
        ) as ctx:
            text = cmd.get_help(ctx)
        parts += [f"## `{' '.join(path)}`", "", "```text", text.rstrip(), "```", ""]
    return "\n".join(parts)


if __name__ == "__main__":
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(render())
    print(f"wrote {OUT}", file=sys.stderr)

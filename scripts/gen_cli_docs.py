"""Write docs/cli.md from the CLI's own --help texts (a test checks it is current)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from stemma.cli.main import cli

OUT = Path(__file__).resolve().parent.parent / "docs" / "cli.md"


def _sections(cmd: click.Command, name: str, parent: click.Context | None) -> list[str]:
    # Render through the same context chain as a real invocation, so that settings such
    # as the group's "-h" help alias apply exactly as users see them.
    ctx = click.Context(
        cmd,
        info_name=name,
        parent=parent,
        terminal_width=80,
        max_content_width=80,
        **cmd.context_settings,
    )
    out = [f"## `{ctx.command_path}`", "", "```text", cmd.get_help(ctx).rstrip(), "```", ""]
    if isinstance(cmd, click.Group):
        for sub in sorted(cmd.commands):
            out += _sections(cmd.commands[sub], sub, ctx)
    return out


def render() -> str:
    head = [
        "# CLI reference",
        "",
        "Generated from `--help` by `scripts/gen_cli_docs.py`; do not edit by hand.",
        "",
    ]
    return "\n".join(head + _sections(cli, "stemma", None))


if __name__ == "__main__":
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(render())
    print(f"wrote {OUT}", file=sys.stderr)

"""Docs that cannot drift: settings, CLI commands and the generated CLI reference."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import click

from stemma.cli.main import cli
from stemma.settings import ENV_VARS

REPO = Path(__file__).resolve().parent.parent
README = (REPO / "README.md").read_text()


def test_readme_top_has_the_two_commands() -> None:
    top = "\n".join(README.splitlines()[:10])
    assert "make run" in top and "make test" in top


def test_every_setting_is_documented() -> None:
    missing = [var for var in ENV_VARS if f"`{var}`" not in README]
    assert missing == []


def test_every_cli_command_is_in_the_readme() -> None:
    missing = []
    for name, cmd in cli.commands.items():
        subs = list(cmd.commands) if isinstance(cmd, click.Group) else [None]
        for sub in subs:
            shown = f"stemma {name}" + (f" {sub}" if sub else "")
            if shown not in README:
                missing.append(shown)
    assert missing == []


def test_cli_reference_is_current() -> None:
    spec = importlib.util.spec_from_file_location("gen", REPO / "scripts" / "gen_cli_docs.py")
    assert spec and spec.loader
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    current = (REPO / "docs" / "cli.md").read_text()
    assert current == gen.render(), "run: .venv/bin/python scripts/gen_cli_docs.py"


def _load_script(name: str):  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_sdk_reference_is_current() -> None:
    current = (REPO / "docs" / "sdk.md").read_text()
    assert current == _load_script("gen_sdk_docs").render(), (
        "run: .venv/bin/python scripts/gen_sdk_docs.py"
    )


def test_rest_api_route_table_is_current() -> None:
    gen = _load_script("gen_rest_docs")
    doc = gen.openapi()
    text = (REPO / "docs" / "rest-api.md").read_text()
    assert gen.current_block(text) == gen.render_routes(doc), (
        "run: .venv/bin/python scripts/gen_rest_docs.py"
    )
    groups = {gen.group_of(path) for path in doc["paths"]}
    assert groups and all(f"`{group}`" in text for group in groups)
    assert "/api/v1/openapi.json" in text and "/api/v1/docs" in text

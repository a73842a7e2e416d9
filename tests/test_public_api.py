"""The package's public surface is deliberate: __all__ is sorted and complete."""

from __future__ import annotations

import json
import subprocess
import sys
import types

import stemma


def test_all_is_sorted_and_exported() -> None:
    assert stemma.__all__ == sorted(stemma.__all__)
    for name in stemma.__all__:
        assert hasattr(stemma, name), name


def test_no_undeclared_public_names() -> None:
    # Submodules become attributes as a side effect of being imported: not API.
    public = {
        n
        for n, v in vars(stemma).items()
        if not n.startswith("_") and not isinstance(v, types.ModuleType) and n != "annotations"
    }
    assert public <= set(stemma.__all__), public - set(stemma.__all__)


def test_import_is_light() -> None:
    """`import stemma` must not pull in the heavy libraries (they load when first used)."""
    code = (
        "import sys, json, stemma; "
        "print(json.dumps([m for m in ('sqlalchemy', 'pandas', 'alembic', 'numpy', 'fastapi')"
        " if m in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


def test_sdk_and_wire_never_import_the_server_side() -> None:
    """The SDK and wire packages do not import the service layer or storage modules."""
    import ast
    from pathlib import Path

    root = Path(stemma.__file__).parent
    offenders = []
    for pkg in ("sdk", "wire", "api"):
        for path in (root / pkg).rglob("*.py"):
            tree = ast.parse(path.read_text())
            for node in ast.walk(tree):
                names = []
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module:
                    names = [node.module]
                for name in names:
                    if name.startswith(("stemma.service", "stemma.storage", "stemma.server")):
                        offenders.append(f"{path.relative_to(root)} imports {name}")
    assert offenders == []

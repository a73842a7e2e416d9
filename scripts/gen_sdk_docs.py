"""Write docs/sdk.md from the public API's own signatures and docstrings.

A test (tests/test_docs.py) checks the file is current; regenerate with
``.venv/bin/python scripts/gen_sdk_docs.py``.
"""

from __future__ import annotations

import inspect
import re
import sys
from pathlib import Path
from typing import Any

import stemma
import stemma.report
from stemma import errors
from stemma.api.public import ApiRun, Artifacts, Runs

OUT = Path(__file__).resolve().parent.parent / "docs" / "sdk.md"


def _first_paragraph(obj: Any) -> str:
    doc = inspect.getdoc(obj) or ""
    para = doc.strip().split("\n\n")[0]
    return " ".join(line.strip() for line in para.splitlines())


def _signature(obj: Any) -> str:
    try:
        sig = str(inspect.signature(obj))
    except (TypeError, ValueError):
        return "(...)"
    # Defaults that are objects print their address; keep the output stable.
    return re.sub(r" at 0x[0-9a-f]+", "", sig)


def _own_doc(obj: Any) -> str:
    """The first paragraph, or nothing when the docstring is only inherited from object."""
    if obj.__doc__ is None:
        return ""
    return _first_paragraph(obj)


def _members(cls: type) -> list[str]:
    out: list[str] = []
    for name, attr in sorted(vars(cls).items()):
        if name.startswith("_") and name not in ("__init__", "__call__"):
            continue
        if name == "__init__":
            continue
        if isinstance(attr, property):
            doc = _own_doc(attr.fget) if attr.fget else ""
            out.append(f"- `{name}` (property)" + (f": {doc}" if doc else ""))
        elif isinstance(attr, (staticmethod, classmethod)):
            fn = attr.__func__
            doc = _own_doc(fn)
            out.append(f"- `{name}{_signature(getattr(cls, name))}`" + (f": {doc}" if doc else ""))
        elif inspect.isfunction(attr):
            doc = _own_doc(attr)
            sig = _signature(attr).replace("(self, ", "(").replace("(self)", "()")
            out.append(f"- `{name}{sig}`" + (f": {doc}" if doc else ""))
    return out


def _class(cls: type, shown: str) -> list[str]:
    lines = [f"### `{shown}`", ""]
    init = cls.__dict__.get("__init__")
    if init is not None or inspect.signature(cls).parameters:
        lines += ["```python", f"{shown}{_signature(cls)}", "```", ""]
    doc = _own_doc(cls)
    if doc:
        lines += [doc, ""]
    members = _members(cls)
    if members:
        lines += [*members, ""]
    return lines


def _function(fn: Any, shown: str) -> list[str]:
    lines = [f"### `{shown}`", "", "```python", f"{shown}{_signature(fn)}", "```", ""]
    doc = _own_doc(fn)
    if doc:
        lines += [doc, ""]
    return lines


def _top_level() -> list[str]:
    lines = ["## `stemma`", "", "Everything in `stemma.__all__` (`import stemma as wandb`).", ""]
    for name in stemma.__all__:
        obj = getattr(stemma, name)
        shown = f"stemma.{name}"
        if inspect.isclass(obj):
            lines += _class(obj, shown)
        elif inspect.isfunction(obj):
            lines += _function(obj, shown)
        elif inspect.ismodule(obj):
            doc = _first_paragraph(obj)
            lines += [f"### `{shown}` (module)", ""] + ([doc, ""] if doc else [])
        elif name == "__version__":
            lines += [f"### `{shown}`", "", "The installed version, a string.", ""]
        else:
            lines += [
                f"### `{shown}`",
                "",
                f"The most recently started open run's `{name}`"
                + (
                    " (`None` when no run is open)."
                    if name == "run"
                    else "; before any run is open it refuses use with an error."
                ),
                "",
            ]
    return lines


def _report() -> list[str]:
    lines = [
        "## `stemma.report`",
        "",
        _first_paragraph(stemma.report),
        "",
    ]
    for name in stemma.report.__all__:
        obj = getattr(stemma.report, name)
        if inspect.isclass(obj):
            lines += _class(obj, f"stemma.report.{name}")
    return lines


def _read_api() -> list[str]:
    lines = [
        "## Read API objects",
        "",
        "What `stemma.Api()` returns: `Api.runs` gives `Runs`, `Api.run` and iteration give "
        "`ApiRun`, `Api.artifacts` gives `Artifacts` (of `stemma.Artifact`, above), "
        "`Api.report`/`Api.reports` give `stemma.Report`.",
        "",
    ]
    for cls in (Runs, ApiRun, Artifacts):
        lines += _class(cls, cls.__name__)
    return lines


def _errors() -> list[str]:
    lines = [
        "## `stemma.errors`",
        "",
        "Every error the SDK raises, against either backend; the server's JSON error "
        "`code` is the class's `code`.",
        "",
        "| class | bases | code | meaning |",
        "| --- | --- | --- | --- |",
    ]
    classes = [
        obj
        for _, obj in sorted(vars(errors).items())
        if inspect.isclass(obj) and issubclass(obj, errors.StemmaError)
    ]
    for cls in classes:
        bases = ", ".join(b.__name__ for b in cls.__bases__)
        code = getattr(cls, "code", "")
        lines.append(f"| `{cls.__name__}` | {bases} | `{code}` | {_own_doc(cls)} |")
    return [*lines, ""]


def render() -> str:
    head = [
        "# SDK reference",
        "",
        "Generated from the public API's signatures and docstrings by "
        "`scripts/gen_sdk_docs.py`; do not edit by hand (a test checks it is current). "
        "The guide with examples is the [README](../README.md).",
        "",
    ]
    body = _top_level() + _report() + _read_api() + _errors()
    return "\n".join(head + body).rstrip() + "\n"


if __name__ == "__main__":
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(render())
    print(f"wrote {OUT}", file=sys.stderr)

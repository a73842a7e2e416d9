"""Every code snippet of the reference write-up runs, as written, against Stemma.

The write-up (``tests/fixtures/reference/wandb-artifacts-reports-teams.txt``, a copy of
``../shared/reference/wandb-artifacts-reports-teams.txt``) is plain text, not Markdown:
its snippets are found by their shape (see :func:`extract_snippets`), and a test pins
how many there are, so a change in the text or the extractor is noticed.

Each snippet runs on every store the suite parametrizes (SQLite, PostgreSQL, a server
over HTTP):

- Python snippets are ``exec``'d, verbatim, in a fresh namespace while
  ``sys.modules["wandb"]`` is ``stemma``: their ``import wandb`` is then exactly
  ``import stemma as wandb``. A snippet that continues the write-up's script (it uses a
  ``run`` started earlier) is given that ``run``; the files and data it expects
  (``model.pth``, ``data/raw/``, earlier versions of an artifact, a logged project) are
  created first, and what it promised is checked after.
- Shell snippets run line by line: ``wandb ...`` through the CLI (click's CliRunner on
  ``stemma.cli.main:cli``, ``wandb`` read as ``stemma``), ``export VAR=...`` into the
  environment, ``python script.py`` in a child interpreter.

No snippet is skipped: one that cannot run as written fails (or is a strict xfail
naming what Stemma lacks). The three report snippets run here too, on the project
``tests/test_reference_reports.py`` logs; that module checks what they draw in depth.
"""

from __future__ import annotations

import ast
import getpass
import re
import shlex
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from click.testing import CliRunner

import stemma
from stemma.backend import get_backend
from stemma.cli.main import cli
from stemma.sdk import lifecycle
from stemma.settings import Settings
from tests import test_reference_reports as reports

REFERENCE = Path(__file__).parent / "fixtures" / "reference" / "wandb-artifacts-reports-teams.txt"
PROJECT = "text-classifier"

# ---------------------------------------------------------------- extraction

# A line that can open a snippet: a comment, an import, an assignment, a call or
# attribute statement (``run.finish()``), or a shell command of the write-up.
STARTER = re.compile(
    r"""^(
        \#                                      # a comment
      | import\s | from\s\S+\simport\s          # an import
      | [A-Za-z_][\w.]*(\[[^\]]*\])?\s*=[^=]    # an assignment
      | [A-Za-z_][\w.]*\(                       # a call
      | (wandb|stemma|export|python)\s          # a shell command
    )""",
    re.VERBOSE,
)
SHELL = re.compile(r"^(wandb|stemma|export|python)\s")


@dataclass(frozen=True)
class Snippet:
    line: int  # 1-based line of its first line in the write-up
    kind: str  # "python" or "shell"
    code: str

    @property
    def id(self) -> str:
        return f"L{self.line}-{self.kind}"


def extract_snippets(text: str) -> list[Snippet]:
    """The write-up's code blocks, in order.

    A block opens at a line with no indentation that looks like code (:data:`STARTER`)
    and goes on over every following non-blank line (indented continuation lines,
    closing brackets); across a blank line it goes on only if the next non-blank line
    looks like code too. Prose (sentences, indented bullets, headings) never opens a
    block. A block is Python if it parses, shell if its commands are shell commands;
    anything else is an error, so a misread block cannot pass unnoticed.
    """
    lines = text.splitlines()
    blocks: list[tuple[int, list[str]]] = []
    i = 0
    while i < len(lines):
        if not STARTER.match(lines[i]):
            i += 1
            continue
        start, body = i, []
        while i < len(lines):
            if lines[i].strip():
                body.append(lines[i])
                i += 1
                continue
            j = i
            while j < len(lines) and not lines[j].strip():
                j += 1
            if j < len(lines) and STARTER.match(lines[j]):
                body.extend([""] * (j - i))
                i = j
            else:
                break
        blocks.append((start + 1, body))
    snippets = []
    for line, body in blocks:
        code = "\n".join(body) + "\n"
        commands = [b for b in body if b.strip() and not b.startswith("#")]
        if all(SHELL.match(c) for c in commands):
            snippets.append(Snippet(line, "shell", code))
            continue
        ast.parse(code)  # raises if the block is neither
        snippets.append(Snippet(line, "python", code))
    return snippets


SNIPPETS = extract_snippets(REFERENCE.read_text(encoding="utf-8"))
BY_LINE = {s.line: s for s in SNIPPETS}


@pytest.mark.sqlite_only
def test_the_extractor_finds_every_snippet() -> None:
    assert [(s.line, s.kind, s.code.count("\n")) for s in SNIPPETS] == [
        (23, "python", 15),  # log a model artifact
        (45, "python", 12),  # download latest / pin v3
        (64, "python", 21),  # dataset versioning with lineage
        (92, "python", 7),  # aliases for staging
        (110, "python", 28),  # build a report
        (145, "python", 14),  # Plotly confusion matrix
        (174, "shell", 5),  # team create / team add
        (186, "python", 6),  # groups, tags, notes
        (199, "python", 5),  # job types
        (211, "python", 10),  # artifacts across teams
        (228, "shell", 6),  # service account key in CI
        (241, "python", 20),  # the Table API
        (264, "python", 2),  # run.history()
        (273, "python", 15),  # audit metadata
        (295, "python", 2),  # artifact TTL
    ]
    # The report snippets are the ones tests/test_reference_reports.py checks in depth.
    assert BY_LINE[110].code == reports.BUILD_REPORT
    assert BY_LINE[145].code == reports.PLOTLY_CONFUSION_MATRIX
    assert BY_LINE[241].code == reports.TABLE_API


# ---------------------------------------------------------------- running them


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The snippets' working directory, with the files they name."""
    d = tmp_path / "work"
    (d / "data" / "raw").mkdir(parents=True)
    (d / "data" / "processed").mkdir(parents=True)
    (d / "model.pth").write_bytes(b"model weights\x00" * 64)
    (d / "bert.pth").write_bytes(b"bert-base weights\x00" * 64)
    for n in range(3):
        rows = "".join(f"{k},ticket {k},{'spam' if k % 3 else 'ok'}\n" for k in range(20))
        (d / "data" / "raw" / f"part-{n}.csv").write_text("id,text,label\n" + rows)
        (d / "data" / "processed" / f"part-{n}.csv").write_text("id,text,label\n" + rows[:200])
    monkeypatch.chdir(d)
    return d


@pytest.fixture
def wandb_alias(monkeypatch: pytest.MonkeyPatch) -> None:
    """``import wandb`` gives stemma while the test runs (restored after it)."""
    monkeypatch.setitem(sys.modules, "wandb", stemma)
    monkeypatch.setenv("STEMMA_ENTITY", reports.ENTITY)


def run_python(snippet: Snippet, **given: Any) -> dict[str, Any]:
    """Execute ``snippet`` verbatim in a fresh namespace holding ``given``, after
    ``import wandb`` (snippets that continue the write-up's script rely on it)."""
    namespace: dict[str, Any] = {"__name__": f"reference_L{snippet.line}", **given}
    exec("import wandb", namespace)  # the write-up's script has it from its first snippet
    exec(compile(snippet.code, f"<reference line {snippet.line}>", "exec"), namespace)
    return namespace


def run_shell(snippet: Snippet, monkeypatch: pytest.MonkeyPatch, **values: str) -> list[str]:
    """Run ``snippet``'s commands; ``values`` fill its placeholders (``<service-account-
    key>``). Returns each command's output."""
    outputs = []
    for raw in snippet.code.splitlines():
        command = raw.split("  #")[0].strip()
        if not command or command.startswith("#"):
            continue
        for placeholder, value in values.items():
            command = command.replace(f"<{placeholder}>", value)
        argv = shlex.split(command)
        if argv[0] in ("wandb", "stemma"):
            result = CliRunner().invoke(cli, argv[1:], catch_exceptions=False)
            assert result.exit_code == 0, f"{command}: {result.output}"
            outputs.append(result.output)
        elif argv[0] == "export":
            name, _, value = argv[1].partition("=")
            monkeypatch.setenv(name, value)
            outputs.append("")
        elif argv[0] == "python":
            proc = subprocess.run(
                [sys.executable, *argv[1:]], capture_output=True, text=True, timeout=60
            )
            assert proc.returncode == 0, f"{command}:\n{proc.stdout}\n{proc.stderr}"
            outputs.append(proc.stdout)
        else:  # pragma: no cover - the extractor only lets these through
            raise AssertionError(f"unknown command: {command}")
    return outputs


def log_model_versions(count: int) -> None:
    """``count`` versions of bert-classifier (v0, v1, ...), as the write-up's first
    snippet logs them, each with its epoch count in its metadata."""
    for n in range(count):
        run = stemma.init(project=PROJECT, job_type="train")
        art = stemma.Artifact("bert-classifier", type="model", metadata={"epochs": n})
        Path("model.pth").write_bytes(f"weights {n}".encode() * 32)
        art.add_file("model.pth")
        run.log_artifact(art)
        run.finish()


def finish_all() -> None:
    """End the runs a snippet left in progress, as its script's exit would (including
    one it no longer holds: the job-type snippet rebinds ``run``)."""
    for run in list(lifecycle._active):
        run.finish()


# One check per snippet: what the write-up says it does, seen through the public API.


def check_log_model(ns: dict[str, Any], api: stemma.Api) -> None:
    art = api.artifact(f"{reports.ENTITY}/{PROJECT}/bert-classifier:latest", type="model")
    assert art.version == "v0"
    assert art.description == "BERT finetuned on customer support tickets"
    assert art.metadata == {"epochs": 10, "f1_score": 0.89, "framework": "transformers==4.36.0"}
    assert "model.pth" in [f.path for f in art.files()]


def check_download(ns: dict[str, Any], api: stemma.Api) -> None:
    assert ns["artifact"].version == "v3"  # latest of v0..v3
    assert ns["artifact_v3"].metadata == {"epochs": 3}
    assert (Path(ns["model_path"]) / "model.pth").read_bytes() == b"weights 3" * 32
    assert (Path(ns["artifact_dir"]) / "model.pth").exists()


def check_dataset_lineage(ns: dict[str, Any], api: stemma.Api) -> None:
    clean = api.artifact(f"{reports.ENTITY}/{PROJECT}/support-tickets-clean:v0")
    producer = clean.logged_by()
    assert producer is not None and producer.id == ns["run_preprocess"].id
    used = [f"{a.name}" for a in producer.used_artifacts()]
    assert used == ["support-tickets:v0"]
    raw = api.artifact(f"{reports.ENTITY}/{PROJECT}/support-tickets:v0")
    assert sorted(f.path for f in raw.files()) == [f"part-{n}.csv" for n in range(3)]
    assert raw.metadata["samples"] == 50000


def check_aliases(ns: dict[str, Any], api: stemma.Api) -> None:
    v5 = api.artifact(f"{reports.ENTITY}/{PROJECT}/bert-classifier:v5")
    assert "production" in v5.aliases
    assert ns["prod_model"].version == "v5"


def check_team(outputs: list[str]) -> None:
    """ml-research exists and user@example.com is in it: a member, or invited (no
    account has that email yet) and joining when one does."""
    assert "ml-research" in outputs[0]
    detail = get_backend(Settings.from_env()).team_members("ml-research")
    emails = [m["email"] for m in detail["members"]] + [i["email"] for i in detail["invites"]]
    assert "user@example.com" in emails
    assert "user@example.com" in outputs[1]


def check_groups(ns: dict[str, Any], api: stemma.Api) -> None:
    run = api.run(f"{reports.ENTITY}/{PROJECT}/{ns['run'].id}")
    assert run.group == "ablation-study"
    assert run.tags == ["bert", "lr-sweep", "bug-fix"]
    assert run.notes == "Testing if dropout=0.3 fixes overfitting"


def check_job_types(ns: dict[str, Any], api: stemma.Api) -> None:
    runs = api.runs(f"{reports.ENTITY}/{PROJECT}")
    assert sorted(str(r.job_type) for r in runs) == ["eval", "train"]


def check_across_teams(ns: dict[str, Any], api: stemma.Api) -> None:
    assert ns["run_a"].entity == "team-a" and ns["run_a"].project == "pretraining"
    assert ns["run_b"].entity == "team-b" and ns["run_b"].project == "finetuning"
    assert (Path(ns["model_path"]) / "bert.pth").read_bytes() == Path("bert.pth").read_bytes()
    used = api.run(f"team-b/finetuning/{ns['run_b'].id}").used_artifacts()
    assert [a.qualified_name for a in used] == ["team-a/pretraining/bert-base:v0"]


def check_history(ns: dict[str, Any], api: stemma.Api) -> None:
    history = ns["history"]
    assert isinstance(history, pd.DataFrame)
    assert {"train/loss", "val/loss"} <= set(history.columns)
    assert len(history) == 12


def check_audit(ns: dict[str, Any], api: stemma.Api) -> None:
    meta = ns["artifact"].metadata
    assert meta["user"] == getpass.getuser() and meta["val_auc"] == 0.94
    assert meta["git_commit"] == "abc123"


def check_ttl(ns: dict[str, Any], api: stemma.Api) -> None:
    import datetime as dt

    assert ns["artifact"].ttl == dt.timedelta(days=7)


def check_report(ns: dict[str, Any], api: stemma.Api) -> None:
    assert api.report(ns["report"].id).title == "BERT Finetuning Results: Week 6"


def check_confusion_matrix(ns: dict[str, Any], api: stemma.Api) -> None:
    # tests/test_reference_reports.py follows the figure into a report and its export.
    run = api.run(f"{reports.ENTITY}/{PROJECT}/{ns['run'].id}")
    assert run.summary["confusion_matrix"]["_type"] == "plotly-file"


def check_table(ns: dict[str, Any], api: stemma.Api) -> None:
    assert len(ns["df"]) == 9  # finished runs only


# Per Python snippet: what is logged before it, what it is given, the check after it.
Setup = Callable[[], dict[str, Any]]
Check = Callable[[dict[str, Any], stemma.Api], None]


def given_nothing() -> dict[str, Any]:
    return {}


def given_versions(count: int) -> Setup:
    def setup() -> dict[str, Any]:
        log_model_versions(count)
        return {}

    return setup


def given_a_run_after(count: int, job_type: str) -> Setup:
    """The write-up's script so far: ``count`` model versions, a run in progress."""

    def setup() -> dict[str, Any]:
        log_model_versions(count)
        return {"run": stemma.init(project=PROJECT, job_type=job_type)}

    return setup


def given_the_project() -> dict[str, Any]:
    reports.seed_project(runs=9, failed=1)
    return {}


def given_a_confusion_run() -> dict[str, Any]:
    return {"run": stemma.init(project=PROJECT, name="confusion")}


def given_a_queried_run() -> dict[str, Any]:
    """The Table API loop's last ``run``: a finished run of the project, read back."""
    reports.seed_project(runs=3, failed=0)
    runs = list(stemma.Api().runs(f"{reports.ENTITY}/{PROJECT}"))
    return {"run": runs[-1]}


PYTHON: dict[int, tuple[Setup, Check | None]] = {
    23: (given_nothing, check_log_model),
    45: (given_versions(4), check_download),
    64: (given_a_run_after(0, "inference"), check_dataset_lineage),
    92: (given_a_run_after(6, "inference"), check_aliases),
    110: (given_the_project, check_report),
    145: (given_a_confusion_run, check_confusion_matrix),
    186: (given_nothing, check_groups),
    199: (given_nothing, check_job_types),
    211: (given_nothing, check_across_teams),
    241: (given_the_project, check_table),
    264: (given_a_queried_run, check_history),
    273: (given_nothing, check_audit),
    295: (given_nothing, check_ttl),
}


@pytest.mark.sqlite_only
def test_every_snippet_has_a_case() -> None:
    python = {s.line for s in SNIPPETS if s.kind == "python"}
    assert python == set(PYTHON)
    assert {s.line for s in SNIPPETS if s.kind == "shell"} == {174, 228}


@pytest.mark.parametrize("line", sorted(PYTHON), ids=lambda n: BY_LINE[n].id)
def test_python_snippet(line: int, workdir: Path, wandb_alias: None) -> None:
    setup, check = PYTHON[line]
    given = setup()
    ns = run_python(BY_LINE[line], **given)
    finish_all()
    if check is not None:
        check(ns, stemma.Api())


def test_team_snippet(workdir: Path, wandb_alias: None, monkeypatch: pytest.MonkeyPatch) -> None:
    outputs = run_shell(BY_LINE[174], monkeypatch)
    check_team(outputs)


@pytest.mark.sqlite_only
def test_an_explicit_entity_still_conflicts_with_a_project_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The path's entity beats STEMMA_ENTITY (the cross-team snippet relies on it), but
    # not an entity= argument that says otherwise.
    monkeypatch.setenv("STEMMA_ENTITY", "username")
    with pytest.raises(stemma.errors.InvalidNameError, match="names entity 'team-a'"):
        stemma.init(project="team-a/pretraining", entity="team-b")


TRAIN_PY = """\
import sys

import stemma

sys.modules["wandb"] = stemma
exec(compile(open("snippet.py").read(), "train.py", "exec"))
"""


def test_service_account_snippet(
    workdir: Path, wandb_alias: None, monkeypatch: pytest.MonkeyPatch, database: str
) -> None:
    # The write-up's train.py: its first snippet, logging a model.
    (workdir / "snippet.py").write_text(BY_LINE[23].code)
    (workdir / "train.py").write_text(TRAIN_PY)
    result = CliRunner().invoke(cli, ["team", "create", "ci"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(
        cli, ["service-account", "create", "ci", "ci-dev"], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    key = re.search(r"export STEMMA_API_KEY=(\S+)", result.output)
    assert key, result.output
    monkeypatch.delenv("STEMMA_ENTITY")  # where the runs go is the key's business
    run_shell(BY_LINE[228], monkeypatch, **{"service-account-key": key.group(1)})
    if database == "server":
        # "Runs will appear under the service account's name", in its team.
        (run,) = stemma.Api().runs(f"ci/{PROJECT}")
        assert run.user == "ci-dev@ci"
    else:  # the embedded store has no accounts: the key is not needed, the run is logged
        (run,) = stemma.Api().runs(PROJECT)
    assert run.job_type == "train"
    assert [a.name for a in run.logged_artifacts()] == ["bert-classifier:v0"]

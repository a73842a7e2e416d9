"""Fixtures: every test runs once per store, each time empty, with a clean process state:

- ``sqlite``: the embedded backend on SQLite (the default file in STEMMA_DIR);
- ``postgresql``: the embedded backend on PostgreSQL (a throwaway cluster);
- ``server``: the HTTP backend against a real ``stemma server`` subprocess (one per
  worker, over its own PostgreSQL database, emptied before each test).

``@pytest.mark.sqlite_only`` / ``@pytest.mark.postgresql_only`` limit a test to one
database; ``@pytest.mark.embedded_only`` keeps a test off the server variant (it looks
inside the store's own files or database); ``@pytest.mark.sqlite_and_server`` runs a
test only on SQLite and the server (the client paths both ways, where PostgreSQL adds
nothing, e.g. the framework integrations). The test id says which one ran:
``test_x[sqlite]``, ``test_x[postgresql]``, ``test_x[server]``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import stemma
from stemma.backend import reset_backends
from stemma.sdk import lifecycle
from stemma.storage.database import sqlite_url

pytest.register_assert_rewrite("tests.fixtures")
pytest_plugins = ["tests.fixtures.postgres"]

from tests.fixtures import postgres  # noqa: E402  (after its assert rewriting is set up)
from tests.fixtures.server import ServerProcess, SharedServer  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
DATABASES = ("sqlite", "postgresql", "server")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "sqlite_only: the test only makes sense on SQLite")
    config.addinivalue_line("markers", "postgresql_only: the test only makes sense on PostgreSQL")
    config.addinivalue_line(
        "markers", "embedded_only: the test inspects the embedded store, not through a server"
    )
    config.addinivalue_line("markers", "server_only: the test is about the HTTP API itself")
    config.addinivalue_line(
        "markers", "sqlite_and_server: the embedded client and the HTTP client are enough"
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every test that uses the store (all of them: ``database`` is autouse) runs once
    per database, unless a marker limits it to one."""
    if "database" not in metafunc.fixturenames:
        return
    if metafunc.definition.get_closest_marker("sqlite_only"):
        params = ["sqlite"]
    elif metafunc.definition.get_closest_marker("postgresql_only"):
        params = ["postgresql"]
    elif metafunc.definition.get_closest_marker("embedded_only"):
        params = ["sqlite", "postgresql"]
    elif metafunc.definition.get_closest_marker("server_only"):
        params = ["server"]
    elif metafunc.definition.get_closest_marker("sqlite_and_server"):
        params = ["sqlite", "server"]
    else:
        params = list(DATABASES)
    metafunc.parametrize("database", params, indirect=True, ids=params)


@pytest.fixture(autouse=True)
def store_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh STEMMA_DIR per test; runs left open by a failing test are finished."""
    d = tmp_path / "stemma"
    for var in list(os.environ):
        if var.startswith(("STEMMA_", "WANDB_")):
            monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("STEMMA_DIR", str(d))
    monkeypatch.setenv("STEMMA_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))  # `stemma login` file
    monkeypatch.setenv("STEMMA_SILENT", "1")
    monkeypatch.setenv("STEMMA_SYSTEM_METRICS", "false")
    reset_backends()
    yield d
    for run in list(lifecycle._active):
        run.finish(quiet=True)
    reset_backends()


@pytest.fixture(autouse=True)
def database(
    request: pytest.FixtureRequest, store_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> str:
    """Which database this test runs on: ``sqlite`` (the default file in STEMMA_DIR) or
    ``postgresql`` (this worker's database, emptied before the test). Set through
    ``STEMMA_DATABASE_URL``, so processes the test spawns use the same database."""
    kind: str = request.param
    if kind == "server":
        server: SharedServer = request.getfixturevalue("stemma_server")
        reset_backends()
        server.reset()
        monkeypatch.setenv("STEMMA_BASE_URL", server.url)
    elif kind == "postgresql":
        url: str = request.getfixturevalue("postgres_url")
        reset_backends()  # no pooled connection may outlive the reset
        postgres.reset_database(url)
        monkeypatch.setenv("STEMMA_DATABASE_URL", url)
    return kind


@pytest.fixture
def new_database(
    database: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Callable[[str], str]:
    """A factory of URLs of new, empty databases of the test's kind, apart from the
    test's store: ``new_database("a")`` (a SQLite file, or a PostgreSQL database)."""

    def make(name: str) -> str:
        if database == "sqlite":
            return sqlite_url(tmp_path / "databases" / name)
        cluster: postgres.PostgresCluster = request.getfixturevalue("postgres_cluster")
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        return cluster.create_database(f"stemma_{worker}_{name}")

    return make


def store_untouched(store_dir: Path) -> bool:
    """True when nothing has created the store (no SQLite file, no PostgreSQL tables)."""
    url = os.environ.get("STEMMA_DATABASE_URL")
    if url and url.startswith("postgresql"):
        return postgres.table_names(url) == []
    return not (store_dir / "stemma.db").exists()


@pytest.fixture(scope="session")
def stemma_server(
    postgres_cluster: postgres.PostgresCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SharedServer]:
    """This worker's ``stemma server`` for the ``server`` variant."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    url = postgres_cluster.create_database(f"stemma_{worker}_server")
    process = ServerProcess(tmp_path_factory.mktemp("server") / "store", database_url=url)
    process.start()
    try:
        yield SharedServer(process, url)
    finally:
        process.stop()


@pytest.fixture
def api() -> stemma.Api:
    return stemma.Api()


def run_python(
    code: str, env: dict[str, str] | None = None, timeout: float = 120, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter with the test's STEMMA_* environment."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=str(REPO),
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"child failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def spawn_python(code: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=full_env,
        cwd=str(REPO),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )

"""Two server replicas over one PostgreSQL database and one blob store behave as one."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

import stemma
from stemma.backend import reset_backends
from tests.conftest import spawn_python
from tests.fixtures.server import ServerProcess

pytestmark = [pytest.mark.slow, pytest.mark.postgresql_only]

CLIENTS = 16
STEPS = 2000


def test_sixteen_clients_on_two_replicas(
    new_database: Callable[[str], str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = new_database("replicas")
    shared = tmp_path / "shared-store"  # one blob directory, as one bucket would be
    replicas = [ServerProcess(shared, database_url=url) for _ in range(2)]
    for r in replicas:
        r.start()
    try:
        code = f"""
            import os, stemma
            run = stemma.init(project="replicas")
            for i in range({STEPS}):
                run.log({{"i": i, "client": int(os.environ["CLIENT"])}})
            art = stemma.Artifact("shared", type="model")
            with art.new_file("who.txt") as fh:
                fh.write(os.environ["CLIENT"])
            run.log_artifact(art)
            run.finish()
            print(run.id, art.version, flush=True)
        """
        procs = []
        for n in range(CLIENTS):
            server = replicas[n % 2]
            procs.append(
                spawn_python(
                    code,
                    env={
                        "STEMMA_BASE_URL": server.url,
                        "STEMMA_DIR": str(tmp_path / f"c{n}"),
                        "STEMMA_DATABASE_URL": "",
                        "CLIENT": str(n),
                    },
                )
            )
        results = []
        for p in procs:
            out, err = p.communicate(timeout=600)
            assert p.returncode == 0, err
            results.append(out.split())
        versions = sorted(int(v[1:]) for _, v in results)
        assert versions == list(range(CLIENTS))  # distinct and consecutive across replicas
        monkeypatch.setenv("STEMMA_BASE_URL", replicas[1].url)
        monkeypatch.delenv("STEMMA_DATABASE_URL", raising=False)
        reset_backends()
        api = stemma.Api()
        runs = list(api.runs("replicas", per_page=100))
        assert len(runs) == CLIENTS
        for run in runs:
            assert run.state == "finished"
            values = list(run.history(keys=["i"])["i"])
            assert values == list(range(STEPS))
        assert api.artifact("replicas/shared:latest").version == f"v{CLIENTS - 1}"
        contents = {
            Path(a.download(tmp_path / a.version)).joinpath("who.txt").read_text()
            for a in api.artifact_versions(None, "replicas/shared")
        }
        assert contents == {str(n) for n in range(CLIENTS)}
    finally:
        for r in replicas:
            r.stop()

"""Schemathesis against the server's own OpenAPI document, with an authenticated client:
generated requests for every operation must never get a 5xx, and every response must
match the schema the document gives for it (status code documented, body valid).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import msgpack
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    response_schema_conformance,
    status_code_conformance,
)

from tests.fixtures.accounts import make_user, open_store
from tests.fixtures.server import ServerProcess

pytestmark = [pytest.mark.sqlite_only, pytest.mark.slow]

ADMIN = "fuzz-root-7c1d@example.com"


@schemathesis.serializer("application/x-msgpack")
def _msgpack(_ctx: schemathesis.SerializationContext, value: object) -> bytes:
    """Spool frames are msgpack: random bytes as they come, anything else packed."""
    return value if isinstance(value, bytes) else msgpack.packb(value, use_bin_type=True)


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """A real server over a store with an instance admin, a team and a little data."""
    store_dir: Path = tmp_path_factory.mktemp("fuzz") / "store"
    store = open_store(store_dir)
    admin = make_user(store, ADMIN, admin=True)
    store.create_team("fuzz-team")
    store.close()
    with ServerProcess(store_dir) as server:
        yield server.url, admin["key"]


def test_generated_requests_get_documented_answers(fuzz_server: tuple[str, str]) -> None:
    """Every operation, a dozen generated requests each (derandomized: reproducible)."""
    url, key = fuzz_server
    schema = schemathesis.openapi.from_url(f"{url}/api/v1/openapi.json")
    checks = [not_a_server_error, status_code_conformance, response_schema_conformance]
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @settings(
            max_examples=12,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def run(case: schemathesis.Case) -> None:
            case.call_and_validate(
                base_url=url, headers={"authorization": f"Bearer {key}"}, checks=checks
            )

        try:
            run()
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # collect every operation's failure, then report
            failures.append(f"{operation.label}: {str(exc)[:600]}")
    assert operations > 50
    assert not failures, "\n\n".join(failures)

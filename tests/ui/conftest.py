"""The web UI under test: a real ``stemma server`` subprocess over its own store, driven
by Playwright in Debian's headless Chromium (``/usr/bin/chromium``; Playwright never
downloads a browser here).

* ``ui`` (per module): the server, with an instance administrator who can sign in;
  :meth:`UI.user` makes more people, :meth:`UI.sdk` logs through the SDK as one of them.
* ``browser`` (per worker): one Chromium; ``signed_in(user)`` opens a fresh context
  signed in through the sign-in form, closed at the end of the test.
* ``shot(page, name)``: a screenshot under ``test-output/screenshots/`` for a reviewer.

Every UI test module marks itself ``sqlite_only``: the server's store is its own SQLite
file (the store layer is tested on PostgreSQL elsewhere).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from stemma.backend import reset_backends
from stemma.backend.embedded import EmbeddedBackend
from tests.fixtures.accounts import make_user, open_store
from tests.fixtures.browser import CHROMIUM, launch
from tests.fixtures.server import REPO, ServerProcess

SCREENSHOTS = REPO / "test-output" / "screenshots"
ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "correct horse battery staple"


class UI:
    """A running server and the accounts made in its store."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.store_dir = root / "store"
        self.store: EmbeddedBackend = open_store(self.store_dir)
        self.admin = make_user(self.store, ADMIN_EMAIL, admin=True, password=ADMIN_PASSWORD)
        self.server = ServerProcess(self.store_dir).start()
        self.url = self.server.url

    def user(self, email: str, *, admin: bool = False) -> dict[str, Any]:
        """A new person with a password and an API key."""
        return make_user(self.store, email, admin=admin, password=f"pw-{email}-long enough")

    @contextlib.contextmanager
    def sdk(self, user: dict[str, Any]) -> Iterator[None]:
        """Log through the SDK, over HTTP, as ``user`` (environment restored after)."""
        env = {
            "STEMMA_BASE_URL": self.url,
            "STEMMA_API_KEY": user["key"],
            "STEMMA_DIR": str(self.root / "client"),
            "STEMMA_CACHE_DIR": str(self.root / "client-cache"),
            "STEMMA_SILENT": "1",
            "STEMMA_SYSTEM_METRICS": "false",
        }
        saved = {k: os.environ.get(k) for k in (*env, "STEMMA_DATABASE_URL", "STEMMA_ENTITY")}
        os.environ.pop("STEMMA_DATABASE_URL", None)
        os.environ.pop("STEMMA_ENTITY", None)
        os.environ.update(env)
        reset_backends()
        try:
            yield
        finally:
            import stemma

            with contextlib.suppress(Exception):
                if stemma.run is not None:
                    stemma.finish()
            reset_backends()
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

    def close(self) -> None:
        self.server.stop()
        self.store.close()


@pytest.fixture(scope="module")
def ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UI]:
    server = UI(tmp_path_factory.mktemp("ui"))
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium is not installed at {CHROMIUM}: run `make test-deps`")
    with sync_playwright() as pw:
        chromium = launch(pw)
        yield chromium
        chromium.close()


def sign_in(page: Any, base_url: str, email: str, password: str) -> None:
    """Through the sign-in form, as a person would."""
    page.goto(f"{base_url}/login")
    page.fill("#email", email)
    page.fill("#password", password)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/login" not in url)


@pytest.fixture
def signed_in(ui: UI, browser: Any) -> Iterator[Callable[..., Any]]:
    """``signed_in(user=None)``: a new page signed in as ``user`` (default: the admin).
    Console errors and failed script loads are collected in ``page.errors``."""
    contexts: list[Any] = []

    def open_page(user: dict[str, Any] | None = None) -> Any:
        user = user or ui.admin
        context = browser.new_context(base_url=ui.url, viewport={"width": 1400, "height": 900})
        context.set_default_timeout(15_000)
        contexts.append(context)
        page = context.new_page()
        page.errors = []  # type: ignore[attr-defined]
        page.on("pageerror", lambda exc: page.errors.append(str(exc)))
        page.on(
            "console",
            lambda msg: page.errors.append(msg.text) if msg.type == "error" else None,
        )
        sign_in(page, ui.url, user["email"], user["password"])
        return page

    yield open_page
    for context in contexts:
        context.close()


@pytest.fixture
def shot() -> Callable[[Any, str], Path]:
    """Save a full-page screenshot for reviewers: test-output/screenshots/<name>.png."""

    def take(page: Any, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take

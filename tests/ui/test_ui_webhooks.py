"""The team page's webhooks: a team admin adds one (the secret shown once), the server's
own URL is refused, a test delivery and a promotion arrive signed at a real receiver and
show as delivered, members see no webhooks, and deleting one removes it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.accounts import make_user, open_store
from tests.fixtures.server import ServerProcess
from tests.test_access import log_artifact
from tests.test_webhooks import Receiver, verify
from tests.ui.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, UI

pytestmark = pytest.mark.sqlite_only


class WebhookUI(UI):
    """The UI server, allowed to send webhooks to loopback (where the receiver is)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.store_dir = root / "store"
        self.store = open_store(self.store_dir)
        self.admin = make_user(self.store, ADMIN_EMAIL, admin=True, password=ADMIN_PASSWORD)
        self.server = ServerProcess(
            self.store_dir, extra_env={"STEMMA_WEBHOOK_ALLOW_PRIVATE": "1"}
        ).start()
        self.url = self.server.url


@pytest.fixture(scope="module")
def ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UI]:
    server = WebhookUI(tmp_path_factory.mktemp("ui-webhooks"))
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def delivered(page: Any, status: str, timeout: float = 20.0) -> None:
    """Reload the team page until a delivery shows ``status``."""
    deadline = time.monotonic() + timeout
    while page.locator(f"table.deliveries tr.delivery-{status}").count() == 0:
        assert time.monotonic() < deadline, f"no {status} delivery shown"
        time.sleep(0.3)
        page.reload()


def test_admin_adds_tests_and_deletes_a_webhook(
    ui: UI, signed_in: Any, shot: Any, receiver: Receiver, tmp_path: Path
) -> None:
    ui.store.create_team("hooks")
    ui.store.add_member("hooks", ui.admin["email"], "admin")
    page = signed_in()
    page.on("dialog", lambda dialog: dialog.accept())
    page.goto("/teams/hooks")
    assert page.locator("#webhooks-h").inner_text() == "Webhooks"

    # The server's own address is refused, with the reason, and nothing is added.
    page.fill("#webhook-url", f"{ui.url}/api/v1/whoami")
    page.click("button:text('Add webhook')")
    page.wait_for_load_state()
    assert "this Stemma server" in page.locator("p.error").inner_text()
    assert ui.store.list_webhooks("hooks") == []
    page.errors.clear()  # the browser logs the refusal's 400

    # A real one: alias moves of production, and finished runs.
    page.fill("#webhook-url", receiver.url)
    page.check("input[name=events][value='run.finished']")
    page.fill("#webhook-alias", "production")
    page.click("button:text('Add webhook')")
    page.wait_for_load_state()
    assert page.title() == "New webhook · Stemma"
    secret = page.locator("input.secret-value").first.input_value()
    assert secret.startswith("whsec_")
    assert "keeps it to sign with" in page.locator("p.warning").inner_text()
    shot(page, "team-webhook-secret")
    page.reload()
    assert page.url.endswith("/teams/hooks") and secret not in page.content()
    [hook] = ui.store.list_webhooks("hooks")
    assert hook["events"] == ["artifact.alias_moved", "run.finished"]
    assert hook["alias"] == "production"
    article = page.locator("article.webhook")
    assert receiver.url in article.inner_text() and "artifact.alias_moved: production" in (
        article.inner_text()
    )

    # A test delivery arrives signed, and shows as delivered.
    page.get_by_role("button", name=f"Send a test delivery to webhook {hook['id']}").click()
    page.wait_for_load_state()
    assert "queued" in page.locator(".flash").inner_text()
    [(headers, body, _at)] = receiver.wait_for(1)
    assert verify(headers, body, secret)["event"] == "ping"
    delivered(page, "succeeded")

    # Promoting a model to production is sent by the server's worker.
    log_artifact(ui.store, tmp_path, "hooks/vision/net", "v0", ["production"])
    _ping, (headers, body, _at) = receiver.wait_for(2)
    event = verify(headers, body, secret)
    assert event["event"] == "artifact.alias_moved"
    assert event["data"]["path"] == "hooks/vision/net:v0"
    page.reload()
    deadline = time.monotonic() + 10
    while page.locator("table.deliveries tr.delivery-succeeded").count() < 2:
        assert time.monotonic() < deadline
        time.sleep(0.3)
        page.reload()
    assert "HTTP 200" in page.locator("table.deliveries").inner_text()
    shot(page, "team-webhooks")

    # Members see no webhooks, and a forged form is refused.
    member = ui.user("wendy-hooks@example.com")
    ui.store.add_member("hooks", member["email"], "member")
    other = signed_in(member)
    other.goto("/teams/hooks")
    assert other.locator("#webhooks-h").count() == 0
    token = other.locator("meta[name=csrf-token]").get_attribute("content")
    r = other.request.post(
        "/teams/hooks/webhooks",
        form={"csrf_token": token, "url": receiver.url, "events": "run.finished"},
    )
    assert r.status == 403 and "needs a team admin" in r.text()
    r = other.request.post(f"/teams/hooks/webhooks/{hook['id']}/delete", form={"csrf_token": token})
    assert r.status == 403
    assert len(ui.store.list_webhooks("hooks")) == 1

    # Deleted.
    page.get_by_role("button", name=f"Delete webhook {hook['id']}").click()
    page.wait_for_load_state()
    assert "deleted" in page.locator(".flash").inner_text()
    assert page.locator("article.webhook").count() == 0
    assert ui.store.list_webhooks("hooks") == []
    assert page.errors == [] and other.errors == []

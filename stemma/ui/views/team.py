"""People pages: your own settings, and a team's members, invites and service accounts.

* ``/settings``: your API keys (create: the key is shown once; revoke), your password,
  your teams (and a form to create one); for instance administrators the users of the
  instance (create, disable, enable) and links to the audit log and storage.
* ``/teams/{team}``: members and roles, pending invites, service accounts and their
  keys, the team's projects and its latest audit entries. Every member may look; the
  forms are drawn for the team's admins only, and the store refuses the others anyway.
* ``/teams/{team}/audit``: the team's audit log (its admins), filtered and paged.
* ``/teams/{team}/webhooks...``: its admins add webhooks (the secret is shown once),
  send a test delivery, delete them; the team page lists each one's recent deliveries.

A secret (a new key, a generated password) is rendered once, in the answer to the form
that made it, with ``Cache-Control: no-store``; the page's script then replaces the
address with the page the form came from, so reloading shows that page, not the secret.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Form, Request
from fastapi.responses import HTMLResponse, Response

from stemma.errors import StemmaError, UsageError
from stemma.server.deps import Store
from stemma.server.routes.webhooks import reached_at
from stemma.server.web import page_router
from stemma.ui.access import abilities
from stemma.ui.render import render, urlpart
from stemma.ui.views.admin import audit_listing, back, optional_duration, status_of
from stemma.wire.events import EVENTS as WEBHOOK_EVENTS
from stemma.wire.names import check_name

router = page_router()

# The lifetimes offered for a new key: (form value, label).
KEY_LIFETIMES = (
    ("", "never (until revoked)"),
    ("30d", "30 days"),
    ("90d", "90 days"),
    ("365d", "1 year"),
)
ROLES = ("viewer", "member", "admin")
SERVICE_ACCOUNT_ROLES = ("member", "viewer")
MAX_KEY_NAME = 128
NO_STORE = {"cache-control": "no-store"}


def _team_url(team: str) -> str:
    return f"/teams/{urlpart(team)}"


def _key_name(name: str) -> str | None:
    name = name.strip()
    if len(name) > MAX_KEY_NAME:
        raise UsageError(f"a key's name must be at most {MAX_KEY_NAME} characters")
    return name or None


def _lifetime(expires: str) -> float | None:
    return optional_duration(expires, "expires after")


def _secret_page(
    request: Request,
    *,
    title: str,
    heading: str,
    secrets: list[tuple[str, str]],
    back_url: str,
    back_label: str,
    note: str | None = None,
    api_key: str | None = None,
    crumbs: list[tuple[str, str]] | None = None,
    kept: bool = False,
) -> HTMLResponse:
    """The one page that ever shows a secret (never cached). ``kept``: Stemma keeps the
    secret itself (a webhook's, to sign with), not only a hash."""
    return render(
        request,
        "team_secret.html",
        title,
        headers=NO_STORE,
        heading=heading,
        secrets=secrets,
        back_url=back_url,
        back_label=back_label,
        note=note,
        api_key=api_key,
        base_url=str(request.base_url).rstrip("/"),
        crumbs=crumbs or [("Settings", "/settings")],
        kept=kept,
    )


# ------------------------------------------------------------------ your settings


def _settings_page(request: Request, store: Any, error: StemmaError | None = None) -> HTMLResponse:
    me = store.whoami()
    local = me["kind"] == "local"
    keys = [] if local else store.list_api_keys()
    keys.sort(key=lambda k: (k["revoked"], -(k["created_at"].timestamp())))
    users = store.list_users() if me["is_admin"] else []
    return render(
        request,
        "settings.html",
        "Settings",
        status=status_of(error),
        error=error and error.message,
        me=me,
        local=local,
        keys=keys,
        teams=store.list_teams(),
        users=users,
        lifetimes=KEY_LIFETIMES,
    )


@router.get("/settings", response_class=HTMLResponse)
def settings(request: Request, store: Store) -> HTMLResponse:
    return _settings_page(request, store)


@router.post("/settings/keys", response_class=HTMLResponse)
def create_my_key(
    request: Request,
    store: Store,
    name: Annotated[str, Form()] = "",
    expires: Annotated[str, Form()] = "",
) -> Response:
    try:
        info, key = store.create_api_key(None, _key_name(name), _lifetime(expires))
    except StemmaError as exc:
        return _settings_page(request, store, exc)
    label = f"“{info['name']}”" if info["name"] else f"stm_{info['prefix']}"
    return _secret_page(
        request,
        title="New API key",
        heading=f"Your new API key {label}",
        secrets=[("API key", key)],
        back_url="/settings",
        back_label="Back to settings",
        api_key=key,
    )


@router.post("/settings/keys/{prefix}/revoke", response_class=HTMLResponse)
def revoke_my_key(request: Request, store: Store, prefix: str) -> Response:
    try:
        info = store.revoke_api_key(prefix)
    except StemmaError as exc:
        return _settings_page(request, store, exc)
    return back("/settings", f"Key stm_{info['prefix']} revoked: it no longer works.")


@router.post("/settings/password", response_class=HTMLResponse)
def change_password(
    request: Request,
    store: Store,
    password: Annotated[str, Form()] = "",
    confirm: Annotated[str, Form()] = "",
) -> Response:
    try:
        me = store.whoami()
        if password != confirm:
            raise UsageError("the two passwords differ")
        store.set_password(me["user"], password)
    except StemmaError as exc:
        return _settings_page(request, store, exc)
    # Changing a password ends every session, this one included.
    return back("/login?next=/settings", "Password changed: sign in with the new one.")


@router.post("/settings/teams", response_class=HTMLResponse)
def create_team(request: Request, store: Store, name: Annotated[str, Form()] = "") -> Response:
    try:
        team = store.create_team(name.strip())
    except StemmaError as exc:
        return _settings_page(request, store, exc)
    return back(_team_url(team["name"]), f"Team {team['name']} created: you are its admin.")


@router.post("/settings/users", response_class=HTMLResponse)
def create_user(
    request: Request,
    store: Store,
    email: Annotated[str, Form()] = "",
    display_name: Annotated[str, Form()] = "",
    admin: Annotated[str, Form()] = "",
    with_key: Annotated[str, Form()] = "",
) -> Response:
    args: dict[str, Any] = {"display_name": display_name.strip() or None, "is_admin": bool(admin)}
    try:
        if with_key:
            user, password, key = store.create_user_with_key(email.strip(), **args)
        else:
            (user, password), key = store.create_user(email.strip(), **args), None
    except StemmaError as exc:
        return _settings_page(request, store, exc)
    secrets = [("Password", password)] + ([("API key", key)] if key else [])
    return _secret_page(
        request,
        title="New user",
        heading=f"User {user['username']} ({user['email']}) created",
        secrets=secrets,
        back_url="/settings",
        back_label="Back to settings",
        note="Give these to them over a channel you trust; they can change the password "
        "on their settings page.",
        api_key=key,
    )


@router.post("/settings/users/{user}/access", response_class=HTMLResponse)
def set_user_access(
    request: Request, store: Store, user: str, disabled: Annotated[str, Form()] = ""
) -> Response:
    off = disabled == "1"
    try:
        store.set_user_disabled(user, off)
    except StemmaError as exc:
        return _settings_page(request, store, exc)
    return back("/settings", f"{user} {'disabled' if off else 'enabled'}.")


# ------------------------------------------------------------------ a team


def _team_page(
    request: Request, store: Any, team: str, error: StemmaError | None = None
) -> HTMLResponse:
    check_name(team, "team")
    detail = store.team_members(team)  # NotFound for those who may not look
    can = abilities(store, team)
    keys: dict[str, list[dict[str, Any]]] = {}
    audit: list[dict[str, Any]] = []
    hooks: list[dict[str, Any]] = []
    if can["admin"]:
        for sa in detail["service_accounts"]:
            keys[sa["username"]] = store.list_api_keys(sa["username"])
        audit = audit_listing(store, {}, entity=team)["entries"][:15]
        hooks = store.list_webhooks(team)
    projects = sorted(store.list_projects(team))
    return render(
        request,
        "team.html",
        f"Team {team}",
        status=status_of(error),
        error=error and error.message,
        team=team,
        can=can,
        me=store.whoami(),
        members=detail["members"],
        invites=detail["invites"],
        service_accounts=detail["service_accounts"],
        keys=keys,
        projects=projects,
        audit=audit,
        roles=ROLES,
        sa_roles=SERVICE_ACCOUNT_ROLES,
        lifetimes=KEY_LIFETIMES,
        webhooks=hooks,
        deliveries={h["id"]: store.webhook_deliveries(team, h["id"], 5) for h in hooks},
        webhook_events=WEBHOOK_EVENTS,
    )


@router.get("/teams/{team}", response_class=HTMLResponse)
def team_page(request: Request, store: Store, team: str) -> HTMLResponse:
    return _team_page(request, store, team)


@router.post("/teams/{team}/members", response_class=HTMLResponse)
def add_member(
    request: Request,
    store: Store,
    team: str,
    email: Annotated[str, Form()] = "",
    role: Annotated[str, Form()] = "member",
) -> Response:
    try:
        done = store.add_member(team, email.strip(), role)
    except StemmaError as exc:
        return _team_page(request, store, team, exc)
    who = done.get("user") or done.get("email")
    message = {
        "added": f"{who} added as {role}.",
        "changed": f"{who} is now {role}.",
        "unchanged": f"{who} already was {role}.",
        "invited": f"{who} has no account yet: invited as {role} (they join when they "
        "first sign in, or when an administrator creates their account).",
    }.get(done.get("status", ""), f"{who}: {done.get('status')}.")
    return back(_team_url(team), message)


@router.post("/teams/{team}/members/{user}/role", response_class=HTMLResponse)
def change_role(
    request: Request, store: Store, team: str, user: str, role: Annotated[str, Form()] = ""
) -> Response:
    try:
        done = store.add_member(team, user, role)
    except StemmaError as exc:
        return _team_page(request, store, team, exc)
    verb = "already was" if done.get("status") == "unchanged" else "is now"
    return back(_team_url(team), f"{user} {verb} {role}.")


@router.post("/teams/{team}/members/{user}/remove", response_class=HTMLResponse)
def remove_member(request: Request, store: Store, team: str, user: str) -> Response:
    try:
        done = store.remove_member(team, user)
    except StemmaError as exc:
        return _team_page(request, store, team, exc)
    if done.get("status") == "removed":
        message = f"{user} removed from {team} (their runs stay)."
    else:
        message = f"Invite of {user} cancelled."
    return back(_team_url(team), message)


@router.post("/teams/{team}/service-accounts", response_class=HTMLResponse)
def create_service_account(
    request: Request,
    store: Store,
    team: str,
    name: Annotated[str, Form()] = "",
    role: Annotated[str, Form()] = "member",
) -> Response:
    try:
        info, key = store.create_service_account(team, name.strip(), role)
    except StemmaError as exc:
        return _team_page(request, store, team, exc)
    return _secret_page(
        request,
        title="New service account",
        heading=f"Service account {info['username']} ({info['role']}) created",
        secrets=[("API key", key)],
        back_url=_team_url(team),
        back_label=f"Back to team {team}",
        note="Service accounts are API-only: use the key in CI as STEMMA_API_KEY. Its runs go "
        f"to {team} and are attributed to {info['username']}.",
        api_key=key,
        crumbs=[(team, _team_url(team))],
    )


@router.post("/teams/{team}/service-accounts/{name}/keys", response_class=HTMLResponse)
def create_service_account_key(
    request: Request,
    store: Store,
    team: str,
    name: str,
    key_name: Annotated[str, Form()] = "",
    expires: Annotated[str, Form()] = "",
) -> Response:
    username = name if "@" in name else f"{name}@{team}"
    try:
        if not username.endswith(f"@{team}"):
            raise UsageError(f"{username} is not a service account of {team}")
        info, key = store.create_api_key(username, _key_name(key_name), _lifetime(expires))
    except StemmaError as exc:
        return _team_page(request, store, team, exc)
    return _secret_page(
        request,
        title="New service-account key",
        heading=f"New key for {username}",
        secrets=[("API key", key)],
        back_url=_team_url(team),
        back_label=f"Back to team {team}",
        note=f"Key stm_{info['prefix']}: to rotate, switch CI to this key, then revoke the "
        "old one on the team page.",
        api_key=key,
        crumbs=[(team, _team_url(team))],
    )


@router.post("/teams/{team}/keys/{prefix}/revoke", response_class=HTMLResponse)
def revoke_service_account_key(request: Request, store: Store, team: str, prefix: str) -> Response:
    try:
        info = store.revoke_api_key(prefix)
    except StemmaError as exc:
        return _team_page(request, store, team, exc)
    return back(_team_url(team), f"Key stm_{info['prefix']} of {info['user']} revoked.")


@router.post("/teams/{team}/service-accounts/{name}/delete", response_class=HTMLResponse)
def delete_service_account(request: Request, store: Store, team: str, name: str) -> Response:
    try:
        store.delete_service_account(team, name)
    except StemmaError as exc:
        return _team_page(request, store, team, exc)
    return back(
        _team_url(team), f"Service account {name} disabled and its keys revoked (runs stay)."
    )


@router.post("/teams/{team}/webhooks", response_class=HTMLResponse)
def add_webhook(
    request: Request,
    store: Store,
    team: str,
    url: Annotated[str, Form()] = "",
    events: Annotated[list[str] | None, Form()] = None,
    alias: Annotated[str, Form()] = "",
    secret: Annotated[str, Form()] = "",
) -> Response:
    try:
        hook, key = store.add_webhook(
            team,
            url.strip(),
            events or [],
            alias.strip() or None,
            secret or None,
            reached_at=reached_at(request),
        )
    except StemmaError as exc:
        return _team_page(request, store, team, exc)
    if secret:
        return back(_team_url(team), f"Webhook {hook['id']} to {hook['url']} added.")
    return _secret_page(
        request,
        title="New webhook",
        heading=f"Webhook {hook['id']} to {hook['url']} added",
        secrets=[("Signing secret", key)],
        back_url=_team_url(team),
        back_label=f"Back to team {team}",
        note="Deliveries carry X-Stemma-Signature: sha256=HMAC-SHA256 of "
        '"<X-Stemma-Timestamp>.<raw body>" with this secret. Check it in the receiver '
        "before trusting a delivery (the README shows how).",
        crumbs=[(team, _team_url(team))],
        kept=True,
    )


@router.post("/teams/{team}/webhooks/{webhook_id}/test", response_class=HTMLResponse)
def test_webhook(request: Request, store: Store, team: str, webhook_id: int) -> Response:
    try:
        store.test_webhook(team, webhook_id)
    except StemmaError as exc:
        return _team_page(request, store, team, exc)
    return back(_team_url(team), f"Test delivery to webhook {webhook_id} queued.")


@router.post("/teams/{team}/webhooks/{webhook_id}/delete", response_class=HTMLResponse)
def delete_webhook(request: Request, store: Store, team: str, webhook_id: int) -> Response:
    try:
        store.delete_webhook(team, webhook_id)
    except StemmaError as exc:
        return _team_page(request, store, team, exc)
    return back(_team_url(team), f"Webhook {webhook_id} deleted.")


@router.get("/teams/{team}/audit", response_class=HTMLResponse)
def team_audit(request: Request, store: Store, team: str) -> HTMLResponse:
    check_name(team, "team")
    store.team_members(team)  # NotFound for outsiders, before the admin check
    listing = audit_listing(store, dict(request.query_params), entity=team)
    return render(request, "audit.html", f"Audit log · {team}", scope=team, verify=None, **listing)

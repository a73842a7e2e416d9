"""Users, API keys, web sessions, teams, memberships, invites and service accounts.

Secrets are generated here and returned once; the store keeps only hashes (argon2id for
passwords, SHA-256 for 190-bit random keys and session tokens). Lookups that decide a
login compare hashes with :func:`hmac.compare_digest` and answer every failure the same
way, so a caller learns nothing about which part of a credential was wrong.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import secrets
from typing import Any

from sqlalchemy import Connection, and_, delete, func, insert, select, update

from stemma.errors import (
    AlreadyExists,
    NotFound,
    PermissionDenied,
    RateLimited,
    Unauthenticated,
    UsageError,
)
from stemma.service import audit
from stemma.service.access import (
    SERVICE_ACCOUNT_ROLES,
    Gate,
    Level,
    Principal,
    check_role,
    entity_row,
)
from stemma.service.clock import aware, utcnow
from stemma.storage.models import (
    api_keys,
    entities,
    invites,
    login_failures,
    memberships,
    users,
    web_sessions,
)
from stemma.wire.names import check_name
from stemma.wire.values import MAX_SECONDS

KEY_PREFIX = "stm_"
_KEY_RE = re.compile(r"stm_([a-z0-9]{12})_([A-Za-z0-9_-]{32,64})")
SESSION_LIFETIME = dt.timedelta(days=14)
LOGIN_WINDOW = dt.timedelta(minutes=15)
MAX_FAILURES_PER_EMAIL = 5
MAX_FAILURES_PER_ADDRESS = 30


def _sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _hasher() -> Any:
    from argon2 import PasswordHasher

    return PasswordHasher()  # argon2id with the library's current recommended costs


def check_email(email: object) -> str:
    """A syntactically valid address, normalized (lower case) so that it is one key."""
    from email_validator import EmailNotValidError, validate_email

    if not isinstance(email, str):
        raise UsageError(f"invalid email {email!r}")
    try:
        return validate_email(email, check_deliverability=False).normalized.lower()
    except EmailNotValidError as exc:
        raise UsageError(f"invalid email {email!r}: {exc}", email=email[:320]) from None


def check_password(password: object) -> str:
    if not isinstance(password, str) or len(password) < 12:
        raise UsageError("a password must be at least 12 characters long")
    if len(password) > 1024:
        raise UsageError("a password must be at most 1024 characters long")
    return password


# ---------------------------------------------------------------- users


def has_users(conn: Connection) -> bool:
    """Any account at all? A loopback server with none runs in local mode."""
    return conn.execute(select(users.c.id).limit(1)).first() is not None


def _user_out(row: Any) -> dict[str, Any]:
    return {
        "username": row.username,
        "email": row.email,
        "display_name": row.display_name,
        "kind": row.kind,
        "is_admin": bool(row.is_admin),
        "role": row.role,
        "created_at": aware(row.created_at),
        "disabled": row.disabled_at is not None,
    }


def _free_username(conn: Connection, base: str) -> str:
    base = re.sub(r"[^A-Za-z0-9._-]", "-", base).strip(".-_")[:100] or "user"
    if not base[0].isalnum():
        base = "u" + base
    name, n = base, 1
    while (
        conn.execute(select(users.c.id).where(users.c.username == name)).first() is not None
        or entity_row(conn, name) is not None
    ):
        n += 1
        name = f"{base}{n}"
    return name


def create_user(
    conn: Connection,
    gate: Gate,
    email: str,
    *,
    display_name: str | None = None,
    username: str | None = None,
    is_admin: bool = False,
    password: str | None = None,
) -> tuple[dict[str, Any], str]:
    """Create a person with a personal entity; returns (user, password).

    Without ``password`` a random one is generated: it is shown once and never stored.
    Pending invites for the email are redeemed at once.
    """
    gate.require_instance_admin("create users")
    email = check_email(email)
    if conn.execute(select(users.c.id).where(users.c.email == email)).first() is not None:
        raise AlreadyExists(f"a user with email {email} exists", email=email)
    if username is not None:
        check_name(username, "user")
        taken = conn.execute(select(users.c.id).where(users.c.username == username)).first()
        if taken is not None or entity_row(conn, username) is not None:
            raise AlreadyExists(f"the name {username!r} is taken", username=username)
    else:
        username = _free_username(conn, email.split("@")[0])
    password = check_password(password) if password is not None else secrets.token_urlsafe(18)
    now = utcnow()
    ent = conn.execute(
        insert(entities).values(name=username, kind="user", created_at=now)
    ).inserted_primary_key[0]  # type: ignore[index]
    uid = conn.execute(
        insert(users).values(
            username=username,
            email=email,
            display_name=display_name or username,
            kind="user",
            password_hash=_hasher().hash(password),
            is_admin=is_admin,
            entity_id=ent,
            created_at=now,
        )
    ).inserted_primary_key[0]  # type: ignore[index]
    audit.append(
        conn,
        gate.who,
        "user.create",
        username,
        entity=username,
        details={"email": email, "admin": is_admin},
    )
    redeem_invites(conn, int(uid), email, gate.who)
    row = conn.execute(select(users).where(users.c.id == uid)).one()
    return _user_out(row), password


def list_users(conn: Connection, gate: Gate) -> list[dict[str, Any]]:
    gate.require_instance_admin("list users")
    rows = conn.execute(select(users).order_by(users.c.username)).all()
    return [_user_out(r) for r in rows]


def find_user(conn: Connection, who: str) -> Any:
    """A user by email or username (NotFound otherwise)."""
    row = conn.execute(select(users).where(users.c.username == who)).first()
    if row is None and "@" in who:
        row = conn.execute(select(users).where(users.c.email == who.lower())).first()
    if row is None:
        raise NotFound(f"no user {who!r}", user=who[:320])
    return row


def set_user_disabled(conn: Connection, gate: Gate, who: str, disabled: bool) -> None:
    """Disable (or enable) an account: its keys and sessions stop working; its runs,
    artifacts and history stay, attributed to it."""
    gate.require_instance_admin("disable users")
    row = find_user(conn, who)
    if disabled and row.is_admin and row.disabled_at is None:
        admins = conn.execute(
            select(func.count())
            .select_from(users)
            .where(and_(users.c.is_admin.is_(True), users.c.disabled_at.is_(None)))
        ).scalar_one()
        if admins <= 1:
            raise UsageError("refusing to disable the last instance administrator")
    conn.execute(
        update(users).where(users.c.id == row.id).values(disabled_at=utcnow() if disabled else None)
    )
    if disabled:
        conn.execute(delete(web_sessions).where(web_sessions.c.user_id == row.id))
    audit.append(
        conn, gate.who, "user.disable" if disabled else "user.enable", row.username, entity=None
    )


def set_password(conn: Connection, gate: Gate, who: str, password: str | None) -> str:
    """Set (or, with None, generate) a user's password; an instance admin or the user."""
    row = find_user(conn, who)
    if gate.who.user_id != row.id:
        gate.require_instance_admin("set another user's password")
    if row.kind != "user":
        raise UsageError("service accounts have no password: they use API keys only")
    password = check_password(password) if password is not None else secrets.token_urlsafe(18)
    conn.execute(
        update(users).where(users.c.id == row.id).values(password_hash=_hasher().hash(password))
    )
    conn.execute(delete(web_sessions).where(web_sessions.c.user_id == row.id))
    audit.append(conn, gate.who, "user.password", row.username)
    return password


# ---------------------------------------------------------------- principals


def principal_of(row: Any, source: str | None = None) -> Principal:
    return Principal(
        name=row.username,
        kind=row.kind,
        user_id=row.id,
        is_admin=bool(row.is_admin),
        team_id=row.team_id,
        team_role=row.role,
        source=source,
    )


# ---------------------------------------------------------------- API keys


def create_key(
    conn: Connection,
    gate: Gate,
    who: str | None = None,
    *,
    name: str | None = None,
    expires_in: dt.timedelta | None = None,
) -> tuple[dict[str, Any], str]:
    """A new API key for ``who`` (default: the caller); returns (info, the key)."""
    row = _key_owner(conn, gate, who)
    if expires_in is not None and not 0 < expires_in.total_seconds() <= MAX_SECONDS:
        raise UsageError("a key's lifetime must be positive and at most 100 years")
    prefix = secrets.token_hex(6)
    key = f"{KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    now = utcnow()
    conn.execute(
        insert(api_keys).values(
            user_id=row.id,
            prefix=prefix,
            key_hash=_sha256(key),
            name=name,
            created_at=now,
            expires_at=None if expires_in is None else now + expires_in,
        )
    )
    audit.append(
        conn,
        gate.who,
        "key.create",
        f"{row.username}:{prefix}",
        entity=_owning_entity(conn, row),
        details={"name": name, "expires_in_s": expires_in and expires_in.total_seconds()},
    )
    info = conn.execute(select(api_keys).where(api_keys.c.prefix == prefix)).one()
    return _key_out(info, row.username), key


def _owning_entity(conn: Connection, row: Any) -> str | None:
    """The entity whose admins may see entries about this user (an SA's team)."""
    ent_id = row.team_id if row.kind == "service_account" else row.entity_id
    if ent_id is None:
        return None
    return conn.execute(select(entities.c.name).where(entities.c.id == ent_id)).scalar()


def _key_owner(conn: Connection, gate: Gate, who: str | None) -> Any:
    if who is None:
        if gate.who.user_id is None:
            raise UsageError(
                "the local user has no account: name the user or service account "
                "(e.g. --user alice@example.com)"
            )
        return conn.execute(select(users).where(users.c.id == gate.who.user_id)).one()
    row = find_user(conn, who)
    if row.id == gate.who.user_id:
        return row
    if row.kind == "service_account":
        team = conn.execute(
            select(entities.c.name).where(entities.c.id == row.team_id)
        ).scalar_one()
        gate.require(conn, team, None, Level.ADMIN, f"manage service accounts of {team}")
        return row
    gate.require_instance_admin("manage another user's keys")
    return row


def _key_out(row: Any, username: str) -> dict[str, Any]:
    return {
        "prefix": row.prefix,
        "user": username,
        "name": row.name,
        "created_at": aware(row.created_at),
        "last_used_at": aware(row.last_used_at),
        "expires_at": aware(row.expires_at),
        "revoked": row.revoked_at is not None,
    }


def list_keys(conn: Connection, gate: Gate, who: str | None = None) -> list[dict[str, Any]]:
    row = _key_owner(conn, gate, who)
    rows = conn.execute(
        select(api_keys).where(api_keys.c.user_id == row.id).order_by(api_keys.c.created_at)
    ).all()
    return [_key_out(r, row.username) for r in rows]


def revoke_key(conn: Connection, gate: Gate, prefix: str) -> dict[str, Any]:
    """Revoke a key by its visible prefix (``stm_<prefix>`` or the whole key)."""
    m = _KEY_RE.fullmatch(prefix)
    if m:
        prefix = m.group(1)
    prefix = prefix.removeprefix(KEY_PREFIX)
    key = conn.execute(select(api_keys).where(api_keys.c.prefix == prefix)).first()
    if key is None:
        raise NotFound(f"no API key with prefix {prefix!r}", prefix=prefix[:16])
    owner = conn.execute(select(users).where(users.c.id == key.user_id)).one()
    try:
        _key_owner(conn, gate, owner.username)
    except (NotFound, PermissionDenied, UsageError):
        raise NotFound(f"no API key with prefix {prefix!r}", prefix=prefix[:16]) from None
    if key.revoked_at is None:
        conn.execute(update(api_keys).where(api_keys.c.id == key.id).values(revoked_at=utcnow()))
        audit.append(
            conn,
            gate.who,
            "key.revoke",
            f"{owner.username}:{prefix}",
            entity=_owning_entity(conn, owner),
        )
    key = conn.execute(select(api_keys).where(api_keys.c.id == key.id)).one()
    return _key_out(key, owner.username)


def authenticate_key(
    conn: Connection, key: str, source: str | None = None
) -> tuple[Principal, int | None]:
    """The principal an API key stands for, and the key's row id when its last-used time
    is due an update (at most once a minute, so reads stay reads). Every failure is the
    same 401, and malformed, unknown and wrong keys cost the same time."""
    bad = Unauthenticated("invalid, revoked or expired API key")
    m = _KEY_RE.fullmatch(key or "")
    row = None
    if m:
        row = conn.execute(
            select(
                api_keys.c.id,
                api_keys.c.key_hash,
                api_keys.c.revoked_at,
                api_keys.c.expires_at,
                api_keys.c.last_used_at,
                api_keys.c.user_id,
            ).where(api_keys.c.prefix == m.group(1))
        ).first()
    expected = row.key_hash if row is not None else _sha256("\0")
    if not hmac.compare_digest(_sha256(key or ""), expected) or row is None:
        raise bad
    now = utcnow()
    expires = aware(row.expires_at)
    if row.revoked_at is not None or (expires is not None and expires <= now):
        raise bad
    user = conn.execute(select(users).where(users.c.id == row.user_id)).one()
    if user.disabled_at is not None:
        raise bad
    last = aware(row.last_used_at)
    due = last is None or now - last > dt.timedelta(minutes=1)
    return principal_of(user, source), (row.id if due else None)


def touch_key(conn: Connection, key_id: int) -> None:
    conn.execute(update(api_keys).where(api_keys.c.id == key_id).values(last_used_at=utcnow()))


def home_entity(conn: Connection, who: Principal) -> str:
    """Where a principal's runs go by default: a service account's team, else its own."""
    if who.kind == "service_account" and who.team_id is not None:
        return str(
            conn.execute(select(entities.c.name).where(entities.c.id == who.team_id)).scalar_one()
        )
    return who.name


# ---------------------------------------------------------------- web sessions


def login(
    conn: Connection, email: str, password: str, source: str | None = None
) -> tuple[str, str, Principal]:
    """Check a password; returns (session token, CSRF token, principal).

    Refused: unknown email or wrong password (the same message), service accounts (they
    are API-only: said plainly), disabled accounts, and too many recent failures.
    """
    email_key = (email or "").strip().lower()[:320]
    since = utcnow() - LOGIN_WINDOW
    fails = conn.execute(
        select(func.count())
        .select_from(login_failures)
        .where(and_(login_failures.c.email == email_key, login_failures.c.at >= since))
    ).scalar_one()
    by_address = 0
    if source:
        by_address = conn.execute(
            select(func.count())
            .select_from(login_failures)
            .where(and_(login_failures.c.address == source, login_failures.c.at >= since))
        ).scalar_one()
    if fails >= MAX_FAILURES_PER_EMAIL or by_address >= MAX_FAILURES_PER_ADDRESS:
        raise RateLimited(
            "too many failed sign-ins; try again in 15 minutes",
            retry_after=int(LOGIN_WINDOW.total_seconds()),
        )
    if _KEY_RE.fullmatch(password or ""):
        # Someone pasted an API key as the password: say what keys are for.
        try:
            holder, _ = authenticate_key(conn, password, source)
        except Unauthenticated:
            holder = None
        if holder is not None and holder.kind == "service_account":
            raise Unauthenticated(
                "service accounts cannot sign in to the UI: they are API-only (use the key "
                "with the SDK: STEMMA_API_KEY)"
            )
        if holder is not None:
            raise Unauthenticated("that is an API key: sign in with your password")
    row = conn.execute(select(users).where(users.c.email == email_key)).first()
    ok = False
    if row is not None and row.password_hash:
        from argon2.exceptions import Argon2Error

        try:
            ok = _hasher().verify(row.password_hash, password or "")
        except Argon2Error:
            ok = False
    else:
        # Spend the same time on unknown emails as on wrong passwords.
        from argon2.exceptions import Argon2Error

        try:
            _hasher().verify(_dummy_hash(), password or "")
        except Argon2Error:
            pass
    if not ok or row is None or row.disabled_at is not None:
        raise Unauthenticated("wrong email or password")
    conn.execute(
        delete(login_failures).where(login_failures.c.email == email_key)
    )  # a success resets the count
    redeem_invites(conn, row.id, row.email, principal_of(row, source))
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
    now = utcnow()
    conn.execute(
        insert(web_sessions).values(
            token_hash=_sha256(token),
            user_id=row.id,
            csrf=csrf,
            created_at=now,
            expires_at=now + SESSION_LIFETIME,
        )
    )
    conn.execute(delete(web_sessions).where(web_sessions.c.expires_at < now))
    who = principal_of(row, source)
    audit.append(conn, who, "session.login", row.username, entity=row.username)
    return token, csrf, who


_dummy: list[str] = []


def record_login_failure(conn: Connection, email: str, source: str | None) -> None:
    """Count a failed sign-in (in its own transaction: the failed one rolls back)."""
    email_key = (email or "").strip().lower()[:320]
    conn.execute(insert(login_failures).values(email=email_key, address=source, at=utcnow()))
    who = Principal(name=email_key or "(empty)", kind="anonymous", source=source)
    audit.append(conn, who, "session.login_failed", email_key or "(empty)")


def _dummy_hash() -> str:
    """A hash to verify against when the email is unknown (computed once, lazily)."""
    if not _dummy:
        _dummy.append(_hasher().hash(secrets.token_urlsafe(16)))
    return _dummy[0]


def session_principal(
    conn: Connection, token: str, source: str | None = None
) -> tuple[Principal, str] | None:
    """(principal, CSRF token) of a live session cookie, or None."""
    if not token or len(token) > 128:
        return None
    row = conn.execute(
        select(web_sessions, users)
        .join(users, users.c.id == web_sessions.c.user_id)
        .where(web_sessions.c.token_hash == _sha256(token))
    ).first()
    if row is None or row.disabled_at is not None:
        return None
    if aware(row.expires_at) <= utcnow():  # type: ignore[operator]
        return None
    user = conn.execute(select(users).where(users.c.id == row.user_id)).one()
    return principal_of(user, source), row.csrf


def logout(conn: Connection, token: str) -> None:
    conn.execute(delete(web_sessions).where(web_sessions.c.token_hash == _sha256(token)))


# ---------------------------------------------------------------- teams


def create_team(conn: Connection, gate: Gate, name: str) -> dict[str, Any]:
    """A team entity; its creator (a person) becomes its admin."""
    check_name(name, "team")
    if gate.who.kind == "service_account":
        raise UsageError("service accounts cannot create teams")
    existing = entity_row(conn, name)
    if existing is not None:
        if existing.kind == "team" or not gate.who.is_local:
            raise AlreadyExists(f"the name {name!r} is taken", name=name)
        # Embedded store: a run logged to `team-a/...` created the entity; make it a team.
        conn.execute(update(entities).where(entities.c.id == existing.id).values(kind="team"))
        ent_id = existing.id
    else:
        taken = conn.execute(select(users.c.id).where(users.c.username == name)).first()
        if taken is not None:
            raise AlreadyExists(f"the name {name!r} is taken", name=name)
        ent_id = conn.execute(
            insert(entities).values(name=name, kind="team", created_at=utcnow())
        ).inserted_primary_key[0]  # type: ignore[index]
    if gate.who.user_id is not None:
        conn.execute(
            insert(memberships).values(
                entity_id=ent_id, user_id=gate.who.user_id, role="admin", created_at=utcnow()
            )
        )
    audit.append(conn, gate.who, "team.create", name, entity=name)
    return {"name": name, "role": "admin" if gate.who.user_id is not None else "instance-admin"}


def _team(conn: Connection, gate: Gate, team: str, needed: Level, action: str) -> Any:
    check_name(team, "team")
    gate.require(conn, team, None, needed, action)
    ent = entity_row(conn, team)
    if ent is None or ent.kind != "team":
        raise NotFound(f"no team {team!r}", team=team)
    return ent


def list_teams(conn: Connection, gate: Gate) -> list[dict[str, Any]]:
    """The teams the caller belongs to, with its role and member counts (instance
    admins see every team; ``instance-admin`` where they are not members)."""
    counts = (
        select(memberships.c.entity_id, func.count().label("n"))
        .group_by(memberships.c.entity_id)
        .subquery()
    )
    q = (
        select(entities.c.name, entities.c.created_at, func.coalesce(counts.c.n, 0).label("n"))
        .select_from(entities.outerjoin(counts, counts.c.entity_id == entities.c.id))
        .where(entities.c.kind == "team")
    )
    role_of: dict[int, str] = {}
    if gate.who.user_id is not None and gate.who.kind == "user":
        role_of = dict(
            conn.execute(
                select(memberships.c.entity_id, memberships.c.role).where(
                    memberships.c.user_id == gate.who.user_id
                )
            ).all()
        )
    if gate.who.kind == "service_account":
        role_of = {gate.who.team_id: gate.who.team_role or ""}  # type: ignore[dict-item]
    if not gate.who.is_admin:
        q = q.where(entities.c.id.in_(list(role_of)))
    rows = conn.execute(q.add_columns(entities.c.id).order_by(entities.c.name)).all()
    return [
        {
            "name": r.name,
            "members": int(r.n),
            "role": role_of.get(r.id) or ("instance-admin" if gate.who.is_admin else None),
            "created_at": aware(r.created_at),
        }
        for r in rows
    ]


def team_members(conn: Connection, gate: Gate, team: str) -> dict[str, Any]:
    """Members, pending invites and service accounts of a team (its members may look)."""
    ent = _team(conn, gate, team, Level.READ, f"see the members of {team}")
    members = conn.execute(
        select(users.c.username, users.c.email, users.c.display_name, memberships.c.role)
        .join(users, users.c.id == memberships.c.user_id)
        .where(memberships.c.entity_id == ent.id)
        .order_by(users.c.username)
    ).all()
    pending = conn.execute(
        select(invites.c.email, invites.c.role, invites.c.invited_by, invites.c.created_at)
        .where(and_(invites.c.entity_id == ent.id, invites.c.redeemed_at.is_(None)))
        .order_by(invites.c.email)
    ).all()
    bots = conn.execute(
        select(users).where(users.c.team_id == ent.id).order_by(users.c.username)
    ).all()
    return {
        "team": team,
        "members": [dict(m._mapping) for m in members],
        "invites": [{**dict(i._mapping), "created_at": aware(i.created_at)} for i in pending],
        "service_accounts": [_user_out(b) for b in bots],
    }


def _admin_count(conn: Connection, ent_id: int) -> int:
    return int(
        conn.execute(
            select(func.count())
            .select_from(memberships)
            .where(and_(memberships.c.entity_id == ent_id, memberships.c.role == "admin"))
        ).scalar_one()
    )


def add_member(
    conn: Connection, gate: Gate, team: str, email: str, role: str = "member"
) -> dict[str, Any]:
    """Add a person (or change their role); an unknown email gets a pending invite."""
    role = check_role(role)
    ent = _team(conn, gate, team, Level.ADMIN, f"manage the members of {team}")
    email = check_email(email) if "@" in email else email
    try:
        row = find_user(conn, email)
    except NotFound:
        if "@" not in email:
            raise UsageError(
                f"{email!r} is neither an email address nor the name of a user", user=email[:320]
            ) from None
        row = None
    if row is None:
        existing = conn.execute(
            select(invites.c.id).where(
                and_(invites.c.entity_id == ent.id, invites.c.email == email)
            )
        ).first()
        if existing is None:
            conn.execute(
                insert(invites).values(
                    entity_id=ent.id,
                    email=email,
                    role=role,
                    invited_by=gate.who.name,
                    created_at=utcnow(),
                )
            )
        else:
            conn.execute(
                update(invites)
                .where(invites.c.id == existing.id)
                .values(role=role, redeemed_at=None)
            )
        audit.append(conn, gate.who, "team.invite", email, entity=team, details={"role": role})
        return {"team": team, "email": email, "role": role, "status": "invited"}
    if row.kind != "user":
        raise UsageError(f"{row.username} is a service account: its role is set when it is created")
    current = conn.execute(
        select(memberships.c.role).where(
            and_(memberships.c.entity_id == ent.id, memberships.c.user_id == row.id)
        )
    ).scalar()
    if current == role:
        return {"team": team, "user": row.username, "role": role, "status": "unchanged"}
    if current == "admin" and _admin_count(conn, ent.id) <= 1:
        raise UsageError(f"{row.username} is the last admin of {team}: make another admin first")
    if current is None:
        conn.execute(
            insert(memberships).values(
                entity_id=ent.id, user_id=row.id, role=role, created_at=utcnow()
            )
        )
    else:
        conn.execute(
            update(memberships)
            .where(and_(memberships.c.entity_id == ent.id, memberships.c.user_id == row.id))
            .values(role=role)
        )
    audit.append(
        conn,
        gate.who,
        "team.add" if current is None else "team.role",
        row.username,
        entity=team,
        details={"role": role, "previous": current},
    )
    gate.forget()
    return {
        "team": team,
        "user": row.username,
        "role": role,
        "status": "added" if current is None else "changed",
    }


def remove_member(conn: Connection, gate: Gate, team: str, who: str) -> dict[str, Any]:
    """Remove a member (their runs stay) or cancel a pending invite."""
    ent = _team(conn, gate, team, Level.ADMIN, f"manage the members of {team}")
    row = None
    try:
        row = find_user(conn, who)
    except NotFound:
        pass
    if row is not None:
        current = conn.execute(
            select(memberships.c.role).where(
                and_(memberships.c.entity_id == ent.id, memberships.c.user_id == row.id)
            )
        ).scalar()
        if current is not None:
            if current == "admin" and _admin_count(conn, ent.id) <= 1:
                raise UsageError(
                    f"{row.username} is the last admin of {team}: make another admin first"
                )
            conn.execute(
                delete(memberships).where(
                    and_(memberships.c.entity_id == ent.id, memberships.c.user_id == row.id)
                )
            )
            audit.append(conn, gate.who, "team.remove", row.username, entity=team)
            gate.forget()
            return {"team": team, "user": row.username, "status": "removed"}
    email = who.lower()
    res = conn.execute(
        delete(invites).where(
            and_(
                invites.c.entity_id == ent.id,
                invites.c.email == email,
                invites.c.redeemed_at.is_(None),
            )
        )
    )
    if res.rowcount:
        audit.append(conn, gate.who, "team.uninvite", email, entity=team)
        return {"team": team, "email": email, "status": "invite cancelled"}
    raise NotFound(f"{who!r} is not a member of {team} and has no pending invite", team=team)


def redeem_invites(conn: Connection, user_id: int, email: str | None, who: Principal) -> list[str]:
    """Turn pending invites of ``email`` into memberships; returns the team names."""
    if not email:
        return []
    pending = conn.execute(
        select(invites.c.id, invites.c.entity_id, invites.c.role, entities.c.name)
        .join(entities, entities.c.id == invites.c.entity_id)
        .where(and_(invites.c.email == email, invites.c.redeemed_at.is_(None)))
    ).all()
    joined = []
    for inv in pending:
        have = conn.execute(
            select(memberships.c.role).where(
                and_(memberships.c.entity_id == inv.entity_id, memberships.c.user_id == user_id)
            )
        ).first()
        if have is None:
            conn.execute(
                insert(memberships).values(
                    entity_id=inv.entity_id, user_id=user_id, role=inv.role, created_at=utcnow()
                )
            )
            joined.append(inv.name)
            audit.append(conn, who, "team.join", email, entity=inv.name, details={"role": inv.role})
        conn.execute(update(invites).where(invites.c.id == inv.id).values(redeemed_at=utcnow()))
    return joined


# ---------------------------------------------------------------- service accounts


def create_service_account(
    conn: Connection,
    gate: Gate,
    team: str,
    name: str,
    role: str = "member",
    display_name: str | None = None,
) -> tuple[dict[str, Any], str]:
    """A team's API-only account (``NAME@TEAM``) and its first key; returns (info, key)."""
    role = check_role(role, SERVICE_ACCOUNT_ROLES)
    check_name(name, "service account")
    ent = _team(conn, gate, team, Level.ADMIN, f"manage the service accounts of {team}")
    username = f"{name}@{team}"
    if conn.execute(select(users.c.id).where(users.c.username == username)).first():
        raise AlreadyExists(f"service account {name!r} exists in {team}", name=username)
    conn.execute(
        insert(users).values(
            username=username,
            email=None,
            display_name=display_name or name,
            kind="service_account",
            password_hash=None,
            is_admin=False,
            team_id=ent.id,
            role=role,
            created_at=utcnow(),
        )
    )
    audit.append(
        conn, gate.who, "service_account.create", username, entity=team, details={"role": role}
    )
    info, key = create_key(conn, gate, username, name="initial")
    row = conn.execute(select(users).where(users.c.username == username)).one()
    return {**_user_out(row), "key_prefix": info["prefix"]}, key


def service_account_row(conn: Connection, gate: Gate, team: str, name: str) -> Any:
    ent = _team(conn, gate, team, Level.ADMIN, f"manage the service accounts of {team}")
    username = name if "@" in name else f"{name}@{team}"
    row = conn.execute(
        select(users).where(and_(users.c.username == username, users.c.team_id == ent.id))
    ).first()
    if row is None:
        raise NotFound(f"no service account {name!r} in {team}", name=username)
    return row


def delete_service_account(conn: Connection, gate: Gate, team: str, name: str) -> None:
    """Disable a service account and revoke its keys (its runs stay attributed)."""
    row = service_account_row(conn, gate, team, name)
    now = utcnow()
    conn.execute(update(users).where(users.c.id == row.id).values(disabled_at=now))
    conn.execute(
        update(api_keys)
        .where(and_(api_keys.c.user_id == row.id, api_keys.c.revoked_at.is_(None)))
        .values(revoked_at=now)
    )
    audit.append(conn, gate.who, "service_account.disable", row.username, entity=team)


def whoami(conn: Connection, who: Principal) -> dict[str, Any]:
    """The caller, with its teams and roles."""
    out: dict[str, Any] = {
        "user": who.name,
        "kind": who.kind,
        "is_admin": who.is_admin,
        "entity": who.name,
        "teams": {},
    }
    if who.user_id is None:
        return out
    row = conn.execute(select(users).where(users.c.id == who.user_id)).one()
    out["email"] = row.email
    out["display_name"] = row.display_name
    if who.kind == "service_account":
        team = conn.execute(select(entities.c.name).where(entities.c.id == who.team_id)).scalar()
        out["entity"] = team
        out["teams"] = {team: who.team_role}
    else:
        rows = conn.execute(
            select(entities.c.name, memberships.c.role)
            .join(entities, entities.c.id == memberships.c.entity_id)
            .where(memberships.c.user_id == who.user_id)
        ).all()
        out["teams"] = {r.name: r.role for r in rows}
    return out


# ---------------------------------------------------------------- projects and audit scope


def set_visibility(
    conn: Connection, gate: Gate, entity: str, project: str, visibility: str
) -> None:
    """``team`` (every member per role) or ``private`` (its owner and the team's admins)."""
    from stemma.storage.models import projects

    if visibility not in ("team", "private"):
        raise UsageError(f"unknown visibility {visibility!r}: use team or private")
    gate.require(conn, entity, project, Level.ADMIN, f"change the visibility of {project}")
    ent = entity_row(conn, entity)
    res = conn.execute(
        update(projects)
        .where(and_(projects.c.entity_id == ent.id, projects.c.name == project))
        .values(visibility=visibility)
    )
    if not res.rowcount:
        raise NotFound(f"no project {entity}/{project}", path=f"{entity}/{project}")
    audit.append(
        conn,
        gate.who,
        "project.visibility",
        f"{entity}/{project}",
        entity=entity,
        details={"visibility": visibility},
    )
    gate.forget()


def audit_scope(conn: Connection, gate: Gate, entity: str | None) -> list[str] | None:
    """The entities whose audit entries the caller may read (None: all of them)."""
    who = gate.who
    if who.is_admin:
        return None if entity is None else [entity]
    if who.kind == "service_account" or who.user_id is None:
        raise PermissionDenied(f"{who.name} may not read the audit log: it needs a team admin")
    rows = conn.execute(
        select(entities.c.name)
        .join(memberships, memberships.c.entity_id == entities.c.id)
        .where(and_(memberships.c.user_id == who.user_id, memberships.c.role == "admin"))
    ).scalars()
    allowed = {*rows, who.name}
    if entity is not None:
        if entity not in allowed:
            gate.require(conn, entity, None, Level.ADMIN, f"read the audit log of {entity}")
        return [entity]
    return sorted(allowed)

"""Who may do what: principals, roles, and the checks every service entry point makes.

The rules live here, below the transports, so that the embedded store, the REST API and
the web pages apply the same ones and no route can forget them:

* a team's viewers read its projects; members also log runs and artifacts, edit runs
  and move ordinary aliases; admins also move protected aliases, delete versions,
  change others' TTLs, set project policies and manage members and service accounts;
* a user's personal entity is theirs alone (they are its admin);
* a private project is visible to its owner and the team's admins only;
* instance admins (and the local user of an embedded store) may do everything;
* a report's share link reads that report's project only (a ``share`` principal).

An object the caller may not read is reported as *not found*, exactly as one that does
not exist, so that names never leak; one the caller may read but not change is a
:class:`~stemma.errors.PermissionDenied`.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Any

from sqlalchemy import Connection, and_, select

from stemma.errors import NotFound, PermissionDenied, UsageError
from stemma.storage.models import entities, memberships, projects, users


class Level(enum.IntEnum):
    """What a principal may do in a project; each level includes the ones below."""

    NONE = 0
    READ = 1
    WRITE = 2
    ADMIN = 3


ROLES: dict[str, Level] = {"viewer": Level.READ, "member": Level.WRITE, "admin": Level.ADMIN}
SERVICE_ACCOUNT_ROLES = ("member", "viewer")


def check_role(role: object, allowed: tuple[str, ...] = tuple(ROLES)) -> str:
    if role not in allowed:
        raise UsageError(
            f"unknown role {role!r}: use one of {', '.join(allowed)}", role=str(role)[:64]
        )
    return str(role)


@dataclasses.dataclass(frozen=True, slots=True)
class Principal:
    """Who is asking, as the service layer sees it.

    ``kind`` is ``user``, ``service_account``, ``local`` (the embedded store's user and
    a loopback server with no accounts: every right) or ``share`` (a report's share
    link: it reads the one project in ``scope`` and nothing else, and writes nothing).
    ``source`` is the client address, recorded in the audit log.
    """

    name: str
    kind: str = "user"
    user_id: int | None = None
    is_admin: bool = False
    team_id: int | None = None  # a service account's team
    team_role: str | None = None  # ... and its role there
    source: str | None = None
    scope: tuple[str, str] | None = None  # a share link's (entity, project)

    @property
    def is_local(self) -> bool:
        return self.kind == "local"

    @classmethod
    def share_link(
        cls, report_id: str, entity: str, project: str, source: str | None = None
    ) -> Principal:
        """The reader of report ``report_id``'s share link: READ on its project only."""
        return cls(name=f"share:{report_id}", kind="share", scope=(entity, project), source=source)

    @property
    def shared_report(self) -> str | None:
        """The report a share-link principal was made for (None for everyone else)."""
        return self.name.removeprefix("share:") if self.kind == "share" else None

    @classmethod
    def local(cls, name: str, source: str | None = None) -> Principal:
        """The embedded store's user, or a loopback server's with no accounts."""
        return cls(name=name, kind="local", is_admin=True, source=source)


def entity_row(conn: Connection, name: str) -> Any:
    return conn.execute(select(entities).where(entities.c.name == name)).first()


def entity_level(conn: Connection, who: Principal, entity: Any) -> Level:
    """The principal's level in an entity (a row of ``entities``)."""
    if who.is_admin:
        return Level.ADMIN
    if who.kind == "service_account":
        if who.team_id == entity.id:
            return ROLES.get(who.team_role or "", Level.NONE)
        return Level.NONE
    if who.user_id is None:
        return Level.NONE
    if entity.kind == "user":
        owner = conn.execute(
            select(users.c.id).where(
                and_(users.c.entity_id == entity.id, users.c.id == who.user_id)
            )
        ).first()
        return Level.ADMIN if owner is not None else Level.NONE
    role = conn.execute(
        select(memberships.c.role).where(
            and_(memberships.c.entity_id == entity.id, memberships.c.user_id == who.user_id)
        )
    ).scalar()
    return ROLES.get(role or "", Level.NONE)


def project_level(conn: Connection, who: Principal, entity: Any, project: Any | None) -> Level:
    """The principal's level in a project (``project`` None: one not created yet)."""
    level = entity_level(conn, who, entity)
    if (
        project is not None
        and project.visibility == "private"
        and level < Level.ADMIN
        and project.owner_id != who.user_id
    ):
        return Level.NONE
    return level


_VERB = {Level.READ: "read", Level.WRITE: "write to", Level.ADMIN: "administer"}


class Gate:
    """The checks of one principal, with the answers cached for one request or call.

    Every backend method asks the gate before touching data; ``require`` raises
    NotFound for what the principal cannot see and PermissionDenied for what it can
    see but not change. Answers are cached for one connection (one transaction) only,
    so a membership change is seen by the very next call.
    """

    def __init__(self, who: Principal) -> None:
        self.who = who
        self._levels: dict[tuple[str, str | None], Level] = {}
        self._conn: Connection | None = None

    def level(self, conn: Connection, entity: str, project: str | None = None) -> Level:
        if conn is not self._conn:
            self._levels.clear()
            self._conn = conn
        key = (entity, project)
        if key not in self._levels:
            self._levels[key] = self._compute(conn, entity, project)
        return self._levels[key]

    def _compute(self, conn: Connection, entity: str, project: str | None) -> Level:
        if self.who.kind == "share":
            return Level.READ if (entity, project) == self.who.scope else Level.NONE
        if self.who.is_admin:
            return Level.ADMIN
        ent = entity_row(conn, entity)
        if ent is None:
            return Level.NONE
        if project is None:
            return entity_level(conn, self.who, ent)
        proj = conn.execute(
            select(projects.c.visibility, projects.c.owner_id).where(
                and_(projects.c.entity_id == ent.id, projects.c.name == project)
            )
        ).first()
        return project_level(conn, self.who, ent, proj)

    def require(
        self,
        conn: Connection,
        entity: str,
        project: str | None,
        needed: Level,
        action: str | None = None,
    ) -> Level:
        """Raise unless the principal has ``needed`` in ``entity[/project]``."""
        level = self.level(conn, entity, project)
        if level >= needed:
            return level
        where = entity if project is None else f"{entity}/{project}"
        if level < Level.READ:
            raise NotFound(f"no project or entity {where!r} (or no access to it)", path=where)
        role = {Level.READ: "viewer", Level.WRITE: "member"}.get(level, "")
        doing = action or f"{_VERB[needed]} {where}"
        needs = "a team admin" if needed >= Level.ADMIN else "a member"
        raise PermissionDenied(
            f"{self.who.name} ({role} of {entity}) may not {doing}: it needs {needs}",
            path=where,
            role=role,
        )

    def can(self, conn: Connection, entity: str, project: str | None, needed: Level) -> bool:
        return self.level(conn, entity, project) >= needed

    def require_instance_admin(self, action: str) -> None:
        if not self.who.is_admin:
            raise PermissionDenied(
                f"{self.who.name} may not {action}: it needs an instance administrator"
            )

    def forget(self) -> None:
        """Drop cached answers (after a change of memberships or projects)."""
        self._levels.clear()

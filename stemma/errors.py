"""Every error Stemma raises on purpose, in one hierarchy.

    StemmaError
    ├── UsageError            (also ValueError)  bad arguments: names, modes, resume
    │   └── InvalidNameError                      a name outside the allowed pattern
    ├── InvalidValueError     (also TypeError)   a logged / config value we cannot store
    ├── NotFound              (also LookupError) a run, project, artifact... that does not exist
    ├── AlreadyExists                             a create that collides with an existing object
    ├── Conflict                                  a write that contradicts stored state
    ├── StoreError                                the store cannot be opened or migrated
    └── SpoolError                                a spool file is unreadable or belongs elsewhere

Each error carries a stable ``code`` so that the HTTP transport can send it as JSON and
the SDK can raise the same class on the other side: ``except stemma.errors.NotFound``
works against the embedded store and against a server alike.
"""

from __future__ import annotations

from typing import Any


class StemmaError(Exception):
    """Base of every deliberate Stemma error."""

    code = "error"

    def __init__(self, message: str, **context: Any) -> None:
        super().__init__(message)
        self.message = message
        self.context = context

    def to_dict(self) -> dict[str, Any]:
        """The wire form: a stable code, a human message and the JSON-safe context."""
        context = {
            k: v
            for k, v in self.context.items()
            if isinstance(v, str | int | float | bool | list | type(None))
        }
        return {"code": self.code, "message": self.message, "context": context}


class UsageError(StemmaError, ValueError):
    """An argument that cannot be used as given (bad mode, resume conflict...)."""

    code = "usage_error"


class InvalidNameError(UsageError):
    """A project, entity, artifact or alias name outside the allowed pattern."""

    code = "invalid_name"


class InvalidValueError(StemmaError, TypeError):
    """A metric key or value, or a config value, that cannot be stored."""

    code = "invalid_value"


class NotFound(StemmaError, LookupError):
    """The object asked for does not exist (or is not visible to the caller)."""

    code = "not_found"


class AlreadyExists(StemmaError):
    """A create collided with an existing object."""

    code = "already_exists"


class Conflict(StemmaError):
    """A write contradicts stored state (e.g. a gap in a spool's offsets)."""

    code = "conflict"


class Unauthenticated(StemmaError):
    """No credentials, or credentials that are not valid (which part is never said)."""

    code = "unauthenticated"


class PermissionDenied(StemmaError):
    """The caller may see the object but not do this to it (a viewer writing...)."""

    code = "forbidden"


class RateLimited(StemmaError):
    """Too many attempts (sign-ins); try again later."""

    code = "rate_limited"


class StoreError(StemmaError):
    """The store cannot be opened, migrated or written."""

    code = "store_error"


class SpoolError(StemmaError):
    """A spool file is unreadable, or does not belong to the run it was given for."""

    code = "spool_error"


ERRORS_BY_CODE: dict[str, type[StemmaError]] = {
    cls.code: cls
    for cls in (
        StemmaError,
        UsageError,
        InvalidNameError,
        InvalidValueError,
        NotFound,
        AlreadyExists,
        Conflict,
        Unauthenticated,
        PermissionDenied,
        RateLimited,
        StoreError,
        SpoolError,
    )
}


# A request the server's schema refused (a negative duration, a wrong type) is the same
# mistake the embedded store reports as UsageError: the same class on either backend.
ERRORS_BY_CODE["invalid_request"] = UsageError


def from_dict(body: dict[str, Any]) -> StemmaError:
    """Rebuild the typed exception from its wire form (unknown codes become StemmaError)."""
    cls = ERRORS_BY_CODE.get(str(body.get("code")), StemmaError)
    return cls(str(body.get("message", "")), **dict(body.get("context") or {}))

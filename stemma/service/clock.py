"""Time as the store keeps it: timezone-aware UTC.

SQLite hands back naive datetimes for timestamp columns (PostgreSQL aware ones);
:func:`aware` makes both the same, so comparisons and arithmetic never mix the two.
"""

from __future__ import annotations

import datetime as dt


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def aware(value: dt.datetime | None) -> dt.datetime | None:
    """``value`` with UTC attached when the database returned it naive."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value

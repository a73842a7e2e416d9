from __future__ import annotations

import datetime as dt

import pytest

import stemma
from stemma.errors import UsageError


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("7d", 7 * 86400),
        ("12h", 43200),
        ("30m", 1800),
        ("45s", 45),
        ("2w", 14 * 86400),
        ("1d12h", 129600),
        ("1.5h", 5400),
    ],
)
def test_parse_time(text: str, seconds: float) -> None:
    assert stemma.util.parse_time(text) == dt.timedelta(seconds=seconds)


@pytest.mark.parametrize("bad", ["", "7", "d", "7x", "7d junk", "-1d", None])
def test_parse_time_rejects(bad: object) -> None:
    with pytest.raises(UsageError, match="duration"):
        stemma.util.parse_time(bad)  # type: ignore[arg-type]

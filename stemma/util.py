"""Small helpers users call directly, spelled as in W&B (``wandb.util.parse_time``)."""

from __future__ import annotations

import datetime as dt
import re

from stemma.errors import UsageError

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*")


def parse_time(text: str) -> dt.timedelta:
    """``"7d"`` -> 7 days. Units: s, m, h, d, w; parts may combine: ``"1d12h"``."""
    if not isinstance(text, str) or not text.strip():
        raise UsageError(f"expected a duration such as '7d' or '12h', got {text!r}")
    pos, total = 0, 0.0
    for match in _DURATION.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text) or pos == 0:
        raise UsageError(
            f"cannot parse duration {text!r}: use a number and a unit (s, m, h, d, w), "
            "e.g. '7d', '12h', '1d12h'",
            value=text,
        )
    return dt.timedelta(seconds=total)

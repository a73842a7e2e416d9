"""Memorable default run names (``quiet-river-42``) and random run ids."""

from __future__ import annotations

import secrets

_ADJECTIVES = (
    "amber autumn bold brave bright calm cosmic crisp dainty dapper deep divine dry eager "
    "easy fancy fine fluent fresh gentle glad golden grand green happy hardy hazy icy jolly "
    "keen kind laced lively lucky lunar misty noble olive peach polar proud quiet rare "
    "royal rustic sage scarlet serene sharp silent silver smooth snowy solar spring stellar "
    "still summer sunny swift tidy twilight vital warm wild winter wise young zesty"
).split()
_NOUNS = (
    "breeze brook cloud comet dawn dew dream dust feather field fire firefly flower fog "
    "forest frost galaxy glade grass haze hill lake leaf meadow moon morning mountain night "
    "ocean paper pine planet pond rain resonance river sea shadow sky smoke snow sound star "
    "stone sun sunset surf thunder tree valley violet water wave wildflower wind wood"
).split()

_ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"


def new_run_id() -> str:
    """Eight random base-36 characters: 2.8e12 values, unique per project in practice."""
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(8))


def new_run_name() -> str:
    return (
        f"{secrets.choice(_ADJECTIVES)}-{secrets.choice(_NOUNS)}-{secrets.randbelow(999) + 1}"
    )

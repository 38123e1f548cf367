"""``--since``: a duration back from now (``90s``, ``10m``, ``2h``, ``1d``) or a moment (ISO 8601)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class BadSince(ValueError):
    """Not a duration nor a moment; the message says what is accepted."""


def since_moment(text: str, now: datetime, zone: ZoneInfo) -> datetime:
    """The moment ``text`` names; a moment without an offset is in ``zone``."""
    if match := _DURATION.fullmatch(text.strip()):
        return now - timedelta(seconds=float(match.group(1)) * _UNIT_S[match.group(2)])
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise BadSince(
            f"--since {text!r} is neither a duration nor a moment; give e.g. 10m, 2h, 1d or 2026-11-30T14:00"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=zone)


def since_now(text: str | None, zone: ZoneInfo) -> datetime | None:
    """The moment ``--since text`` names from now on; None when no ``--since`` was given."""
    return None if text is None else since_moment(text, datetime.now(UTC), zone)

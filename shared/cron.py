"""Schedule expressions: 5-field cron, 6-field cron with seconds first, aliases, and ``@every``.

``croniter`` does the calendar arithmetic (time zones and DST included); this module only parses
our spellings and answers "when is the next slot after t".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from croniter import croniter

_EVERY = re.compile(r"^@every\s+(?P<amount>\d+(?:\.\d+)?)\s*(?P<unit>ms|s|m|h|d)$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_ALIASES = {"@hourly", "@daily", "@midnight", "@weekly", "@monthly", "@yearly", "@annually"}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # not the host's local midnight: replicas must agree


class ScheduleError(ValueError):
    """The expression is not a schedule we understand."""


@dataclass(frozen=True)
class Schedule:
    """A parsed schedule. ``next_after`` returns the first slot strictly after ``moment``."""

    expression: str
    cron: str | None = None
    interval_s: float | None = None
    fixed_hours: bool = False  # hour field not a wildcard: runs once in the hour repeated at fall back

    def next_after(self, moment: datetime) -> datetime:
        if moment.tzinfo is None:
            raise ValueError("next_after needs an aware datetime")
        if self.interval_s is not None:
            return _next_interval_slot(moment, self.interval_s)
        assert self.cron is not None
        result: datetime = croniter(self.cron, moment, second_at_beginning=True).get_next(datetime)
        if self.fixed_hours and _repeated_wall_time(result):  # ran on the first pass already (as cron does)
            return self.next_after(result)
        return result


def _repeated_wall_time(moment: datetime) -> bool:
    """The second occurrence of a wall-clock time that happens twice when the clocks go back."""
    return moment.fold == 1 and moment.replace(fold=0).utcoffset() != moment.utcoffset()


def _fixed_hours(cron: str) -> bool:
    """Like Vixie cron: jobs whose hour field is a wildcard (``*``, ``*/2``) run in both passes."""
    if cron.startswith("@"):
        return cron != "@hourly"
    fields = cron.split(" ")
    hours = fields[len(fields) - 4]  # minutes, hours, day, month, weekday — after the seconds, if any
    return not hours.startswith("*")


def _next_interval_slot(moment: datetime, interval_s: float) -> datetime:
    """Slots of ``@every`` are aligned to the epoch, so every replica computes the same ones."""
    elapsed = (moment - _EPOCH).total_seconds()
    slots = int(elapsed // interval_s) + 1
    return (_EPOCH + timedelta(seconds=slots * interval_s)).astimezone(moment.tzinfo)


def parse_schedule(expression: str) -> Schedule:
    text = " ".join(expression.split())
    every = _EVERY.match(text)
    if every:
        seconds = float(every["amount"]) * _UNIT_SECONDS[every["unit"]]
        if seconds < 0.1:
            raise ScheduleError(f"{expression!r}: @every needs at least 100ms")
        return Schedule(expression, interval_s=seconds)
    if text.startswith("@") and text not in _ALIASES:
        allowed = ", ".join(sorted(_ALIASES))
        raise ScheduleError(f"{expression!r}: unknown alias; use @every <n>s|m|h|d or one of {allowed}")
    if len(text.split(" ")) not in (5, 6) and not text.startswith("@"):
        raise ScheduleError(f"{expression!r}: cron needs 5 fields (or 6 with seconds first)")
    if not croniter.is_valid(text, second_at_beginning=True):
        raise ScheduleError(f"{expression!r}: not a valid cron expression")
    return Schedule(expression, cron=text, fixed_hours=_fixed_hours(text))

"""Which tick is due when: slots of every enabled schedule, missed-run handling, persisted last slots."""

from __future__ import annotations

import json
import logging
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from shared.config import ScheduleSettings
from shared.cron import Schedule, parse_schedule
from shared.service.statefile import StateFile

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Entry:
    name: str
    settings: ScheduleSettings
    schedule: Schedule

    def next_slot(self, after: datetime) -> datetime:
        return self.schedule.next_after(after)

    def upcoming(self, after: datetime, count: int) -> list[datetime]:
        slots: list[datetime] = []
        moment = after
        for _ in range(count):
            moment = self.next_slot(moment)
            slots.append(moment)
        return slots

    def jitter_s(self, rng: random.Random) -> float:
        return rng.uniform(0, self.settings.jitter_s) if self.settings.jitter_s else 0.0


def build_entries(schedules: dict[str, ScheduleSettings]) -> list[Entry]:
    return [Entry(name, spec, parse_schedule(spec.cron)) for name, spec in sorted(schedules.items())]


def _instant(moment: datetime) -> datetime:
    """Compare and subtract in UTC: within one zone Python ignores ``fold`` (the repeated hour)."""
    return moment.astimezone(UTC)


def last_slot_before(entry: Entry, moment: datetime, window_s: float) -> datetime | None:
    """The latest slot in (moment - window, moment], or None."""
    end = _instant(moment)
    start = (end - timedelta(seconds=window_s)).astimezone(moment.tzinfo)
    latest = None
    slot = entry.next_slot(start)
    while _instant(slot) <= end:
        latest = slot
        slot = entry.next_slot(slot)
    return latest


MAX_COUNTED_MISSES = 10_000


def count_missed(entry: Entry, last_fired: datetime | None, now: datetime) -> int:
    """Slots after ``last_fired`` and up to ``now`` that never fired (counted up to a bound)."""
    if last_fired is None:
        return 0
    count, slot, end = 0, entry.next_slot(last_fired), _instant(now)
    while _instant(slot) <= end and count < MAX_COUNTED_MISSES:
        count += 1
        slot = entry.next_slot(slot)
    return count


def missed_slot(entry: Entry, last_fired: datetime | None, now: datetime) -> datetime | None:
    """The one slot to run now under ``missed: run_once``; None under ``skip`` or when nothing was missed."""
    if entry.settings.missed == "skip" or last_fired is None:
        return None
    latest = last_slot_before(entry, now, entry.settings.catchup_window_s)
    if latest is None or _instant(latest) <= _instant(last_fired):
        return None
    return latest


class SlotLog:
    """The last slot fired per schedule, kept in a small JSON file so restarts can catch up."""

    def __init__(self, path: Path, zone: ZoneInfo) -> None:
        self._path = path
        self._file = StateFile(path, "the last fired slots")
        self._zone = zone
        self._slots = self._load()

    def _load(self) -> dict[str, datetime]:
        try:
            raw = json.loads(self._path.read_text(encoding="utf-8"))
            return {name: datetime.fromisoformat(value).astimezone(self._zone) for name, value in raw.items()}
        except FileNotFoundError:
            return {}
        except (ValueError, AttributeError, TypeError) as exc:
            log.warning("ignoring unreadable scheduler state %s: %s", self._path, exc)
            return {}

    def get(self, name: str) -> datetime | None:
        return self._slots.get(name)

    def record(self, name: str, slot: datetime) -> None:
        """Remember ``slot`` as fired; on disk when it can be (a full disk costs the catch-up after a
        restart at worst, never a tick: the record stays in memory and the next one writes it)."""
        self._slots[name] = slot
        data = {key: value.isoformat() for key, value in self._slots.items()}
        self._file.replace(json.dumps(data, indent=1).encode("utf-8"))

"""Bounded label values: a metric never gets a series per made-up name.

Messages carry names (schedules, wrappers, services, arms …) that anyone on the bus can invent; each
distinct label value would be a new Prometheus series for the life of the monitor. Every label is
checked against the values the configuration allows; anything else is counted under ``OTHER`` and
logged once per name (up to a bound, then once for all the rest).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from shared.config import BACKEND_KINDS, Settings
from shared.messaging import subjects
from shared.queue import CLEANUP_KINDS, RECOVERY_OUTCOMES
from shared.service import service_names

log = logging.getLogger(__name__)

OTHER = "other"
LOGGED_NAMES_MAX = 100


class Labels:
    def __init__(self, settings: Settings) -> None:
        schedules = tuple(settings.schedules)
        wrappers = tuple(settings.consumers)
        self.known: dict[str, frozenset[str]] = {
            "schedule": frozenset(schedules),
            "wrapper": frozenset(wrappers),
            "backend": frozenset(BACKEND_KINDS),
            "service": frozenset(service_names(wrappers)),
            "arm": frozenset(f"{c}/{s}" for c in settings.topics for s in settings.styles),
            "kind": frozenset(CLEANUP_KINDS),
            "outcome": frozenset(RECOVERY_OUTCOMES),
            "subject": frozenset(known_subjects(schedules)),
        }
        self._logged: set[tuple[str, str]] = set()
        self._told_limit = False

    def values(self, label: str) -> frozenset[str]:
        """Every value ``label`` can take (``OTHER`` included)."""
        return self.known[label] | {OTHER}

    def __call__(self, label: str, value: str) -> str:
        """``value`` if the configuration knows it, else ``OTHER`` (logged once per name)."""
        if value in self.known[label]:
            return value
        self._log_once(label, value)
        return OTHER

    def subject(self, subject: str) -> str:
        return self("subject", subject)

    def _log_once(self, label: str, value: str) -> None:
        key = (label, value)
        if key in self._logged:
            return
        if len(self._logged) >= LOGGED_NAMES_MAX:
            if not self._told_limit:
                self._told_limit = True
                log.warning("more unknown label values; counted as %r without a line each", OTHER)
            return
        self._logged.add(key)
        log.warning("unknown %s %r: counted as %r", label, value[:80], OTHER)


def known_subjects(schedules: Iterable[str]) -> list[str]:
    """Every subject the system uses, tick subjects of the configured schedules included."""
    return [*subjects.ALL_FIXED, *(subjects.tick(name) for name in schedules)]

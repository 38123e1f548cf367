"""Health with reasons: OK / WARNING / CRITICAL from what happened recently, each cause a sentence.

A state clears when its cause does: shares are taken over a sliding window (``monitor.health.window_s``,
kept as one bucket per minute so memory does not grow with traffic), everything else is looked at now.
"""

from __future__ import annotations

import functools
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict

from services.monitor.reasons import REASONS
from shared.config import HealthSettings
from shared.cron import Schedule
from shared.messaging import Reason, Severity

__all__ = ["REASONS", "HealthReport", "Observations", "OutcomeWindow", "Reason", "Severity", "judge"]

State = Literal["OK", "WARNING", "CRITICAL"]
STATES: tuple[State, ...] = ("OK", "WARNING", "CRITICAL")
SLOT_CACHE_SIZE = 1024  # (schedule, last tick) pairs whose next slots are remembered
BUCKET_S = 60.0


class HealthReport(BaseModel):
    model_config = ConfigDict(frozen=True)
    state: State
    reasons: list[Reason]

    def severities(self) -> dict[str, Severity]:
        """Each reason that holds with its severity (the most severe, if said more than once)."""
        found: dict[str, Severity] = {}
        for reason in self.reasons:
            if found.get(reason.code) != "CRITICAL":
                found[reason.code] = reason.severity
        return found


@dataclass
class _Bucket:
    start: float
    passed: int = 0
    rejected: int = 0
    failed: int = 0


@dataclass
class OutcomeWindow:
    """How jobs ended over the last ``window_s``: one bucket per minute."""

    window_s: float
    clock: Callable[[], float] = time.monotonic
    _buckets: deque[_Bucket] = field(default_factory=deque)

    def add(self, outcome: Literal["passed", "rejected", "failed"]) -> None:
        now = self.clock()
        self._drop_old(now)
        if not self._buckets or now - self._buckets[-1].start >= BUCKET_S:
            self._buckets.append(_Bucket(now))
        bucket = self._buckets[-1]
        setattr(bucket, outcome, getattr(bucket, outcome) + 1)

    def totals(self) -> tuple[int, int, int]:
        """(passed, rejected, failed) within the window."""
        self._drop_old(self.clock())
        return (
            sum(b.passed for b in self._buckets),
            sum(b.rejected for b in self._buckets),
            sum(b.failed for b in self._buckets),
        )

    def _drop_old(self, now: float) -> None:
        while self._buckets and now - self._buckets[0].start > self.window_s:
            self._buckets.popleft()


@dataclass(frozen=True)
class Observations:
    """What the monitor knows right now, handed to :func:`judge`."""

    queue_state: str
    incoming: int
    outcomes: tuple[int, int, int]
    oldest_claim_age_s: float | None
    backends_down: list[str]
    wrappers: int
    silent_services: list[str]
    expected_services: int
    missed_schedules: list[str]
    queue_faults: tuple[str, ...] = ()  # per service that cannot write the queue: where and why
    claimed: int = 0
    nats_down_s: float | None = None  # the monitor's own connection, down this long
    nats_problem: str = ""
    # consumers asked this long ago for waiting jobs, no result since (services.monitor.progress)
    stalled_s: float | None = None


def judge(seen: Observations, limits: HealthSettings, lease_s: float) -> HealthReport:
    reasons = [
        *_outcome_reasons(seen.outcomes, limits),
        *_queue_reasons(seen, lease_s),
        *_backend_reasons(seen.backends_down, seen.wrappers),
        *_queue_fault_reasons(seen.queue_faults),
        *_service_reasons(seen.silent_services, seen.expected_services),
        *(Reason(code="schedule_missed", severity="WARNING", text=text) for text in seen.missed_schedules),
        *_nats_reasons(seen.nats_down_s, seen.nats_problem),
        *_progress_reasons(seen),
    ]
    state: State = "OK"
    if reasons:
        state = "CRITICAL" if any(r.severity == "CRITICAL" for r in reasons) else "WARNING"
    return HealthReport(state=state, reasons=reasons)


def _outcome_reasons(outcomes: tuple[int, int, int], limits: HealthSettings) -> Iterable[Reason]:
    passed, rejected, failed = outcomes
    total = passed + rejected + failed
    if total < limits.min_jobs:
        return
    window = _duration(limits.window_s)
    error_share = failed / total
    if error_share >= limits.error_share_warning:
        severity: Severity = "CRITICAL" if error_share >= limits.error_share_critical else "WARNING"
        yield Reason(
            code="error_share",
            severity=severity,
            text=f"{error_share:.0%} of the last {window}'s {total} jobs failed (no answer or malformed)",
        )
    rejected_share = rejected / total
    if rejected_share >= limits.rejected_share_warning:
        yield Reason(
            code="rejected_share",
            severity="WARNING",
            text=f"{rejected_share:.0%} of the last {window}'s {total} answers scored below the threshold",
        )


def _queue_reasons(seen: Observations, lease_s: float) -> Iterable[Reason]:
    if seen.queue_state == "HIGH":
        yield Reason(
            code="backlog",
            severity="WARNING",
            text=f"queue HIGH: {seen.incoming} jobs waiting; the producer waits for the consumers",
        )
    if seen.queue_state == "OVERFLOW":
        yield Reason(
            code="overflow",
            severity="CRITICAL",
            text=f"queue OVERFLOW: {seen.incoming} jobs waiting; the consumers do not keep up",
        )
    if seen.oldest_claim_age_s is not None and seen.oldest_claim_age_s > lease_s:
        yield Reason(
            code="lease_overdue",
            severity="WARNING",
            text=f"a job has been claimed for {seen.oldest_claim_age_s:.0f}s, past its {lease_s:.0f}s lease"
            " (its consumer died?); a consumer or cleanup will take it over",
        )


def _backend_reasons(down: list[str], wrappers: int) -> Iterable[Reason]:
    if not down:
        return
    severity: Severity = "CRITICAL" if len(down) >= wrappers else "WARNING"
    yield Reason(
        code="backend_down",
        severity=severity,
        text=f"backend down for {', '.join(sorted(down))}: jobs wait in incoming/, claims paused",
    )


def _queue_fault_reasons(faults: tuple[str, ...]) -> Iterable[Reason]:
    if not faults:
        return
    yield Reason(
        code="queue_unwritable",
        severity="CRITICAL",
        text=f"the queue cannot be written ({'; '.join(faults)}): claims paused, answers kept, "
        "probing until it can",
    )


def _service_reasons(silent: list[str], expected: int) -> Iterable[Reason]:
    if not silent:
        return
    severity: Severity = "CRITICAL" if 2 * len(silent) > expected else "WARNING"
    yield Reason(
        code="service_silent",
        severity=severity,
        text=f"no heartbeat from {', '.join(sorted(silent))}",
    )


def _nats_reasons(down_s: float | None, problem: str) -> Iterable[Reason]:
    if down_s is None:
        return
    why = f" ({problem})" if problem else ""
    yield Reason(
        code="nats_down",
        severity="CRITICAL",
        text=f"NATS has not answered for {down_s:.0f}s{why}: no tick or event is delivered; "
        "every service reconnects by itself",
    )


def _progress_reasons(seen: Observations) -> Iterable[Reason]:
    if seen.stalled_s is None or seen.backends_down or seen.queue_faults:
        return  # a backend down or a queue that cannot be written explains it, and says so
    yield Reason(
        code="stalled",
        severity="CRITICAL",
        text=f"nothing finished for {seen.stalled_s:.0f}s though {seen.incoming} jobs wait and "
        f"{seen.claimed} are claimed, and no backend is down: are the consumers stuck? (see their logs)",
    )


def missed_schedules(
    schedules: Mapping[str, tuple[Schedule, float]],
    last_fired: Mapping[str, datetime],
    since: datetime,
    now: datetime,
) -> list[str]:
    """Schedules (each with its grace in seconds) whose next two slots after their last tick — or
    after ``since``, the monitor's start — have passed without one."""
    texts = []
    for name, (schedule, grace_s) in schedules.items():
        seen = last_fired.get(name, since)
        second_slot = _second_slot(schedule, seen)
        if now > second_slot + timedelta(seconds=grace_s):
            when = f"{seen.astimezone(now.tzinfo):%Y-%m-%d %H:%M:%S %z}"
            texts.append(f"schedule {name} has not fired since {when} (two slots missed)")
    return texts


@functools.lru_cache(maxsize=SLOT_CACHE_SIZE)
def _second_slot(schedule: Schedule, seen: datetime) -> datetime:
    """The second slot after ``seen`` (cached: a scrape asks again until the next tick arrives)."""
    return schedule.next_after(schedule.next_after(seen))


def _duration(seconds: float) -> str:
    if seconds >= 3600 and seconds % 3600 == 0:
        hours = int(seconds // 3600)
        return "hour" if hours == 1 else f"{hours} hours"
    return f"{seconds / 60:.0f} minutes"

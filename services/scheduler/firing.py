"""One schedule's loop in one replica: claim each slot a little ahead, publish its tick at the slot, try
again what could not be stored, and watch the slots other replicas claimed until they are fired (taking
over one whose replica died before storing its tick).
"""

from __future__ import annotations

import asyncio
import enum
import logging
import random
import time
from dataclasses import dataclass, replace
from datetime import datetime

from services.scheduler.claims import Look, SlotClaims
from services.scheduler.timetable import Entry, SlotLog
from shared.config import Settings
from shared.messaging import Bus, BusError, PausedSchedules, Tick, subjects
from shared.service import ServiceTasks
from shared.timing import set_within

log = logging.getLogger(__name__)


class Fired(enum.Enum):
    STORED = "stored"  # this replica stored the tick (or the schedule is paused: nothing to store)
    BY_OTHER = "by another replica"  # another replica claimed the slot: watch it until it is fired
    NOT_YET = "not yet"  # the claim or the tick could not be stored: try again soon


@dataclass(frozen=True)
class Pending:
    """A slot due and not settled yet; ``since``: when it became due (epoch seconds); ``next_try``: when
    to try (or look) again."""

    slot: datetime
    missed: int
    since: float
    next_try: float = 0.0


class Firing:
    """The loop of one schedule; :meth:`fire` publishes one slot's tick if this replica holds its claim."""

    def __init__(
        self,
        settings: Settings,
        entry: Entry,
        bus: Bus,
        claims: SlotClaims,
        pauses: PausedSchedules,
        slots: SlotLog,
    ) -> None:
        self._settings = settings
        self._config = settings.scheduler
        self._entry = entry
        self._bus = bus
        self._claims = claims
        self._pauses = pauses
        self._slots = slots
        self._rng = random.Random()
        self._backlog: list[Pending] = []  # this replica's slots whose tick is not stored yet
        self._watched: list[Pending] = []  # other replicas' slots not seen fired yet
        self._early: list[datetime] = []  # slots to claim ahead of their time
        self._wake = asyncio.Event()  # the clock handed over a slot
        self._retries = 0  # backlog rounds in a row that left something unstored

    def catch_up(self, slot: datetime, missed: int) -> None:
        """Fire ``slot`` (missed while no scheduler ran) first; ``missed``: slots before it that never ran."""
        self._backlog.append(Pending(slot, missed, time.time()))

    async def run(self, first: datetime, unfired: int, stop: asyncio.Event) -> None:
        """The clock and the work in two tasks: a claim or tick that takes long to store (a cluster electing
        a leader) never holds up the clock, so no slot is stepped over."""
        async with ServiceTasks() as tasks:
            tasks.start(self._clock(first, unfired, stop), f"clock of {self._entry.name}")
            tasks.start(self._work(stop), f"ticks of {self._entry.name}")

    async def _clock(self, slot: datetime, unfired: int, stop: asyncio.Event) -> None:
        """Hand each slot to the work: its early claim ``claim_ahead_s`` before it, its tick when due."""
        try:
            while True:
                slot_due = self._due(slot)
                if await _wait_until(slot_due - self._config.claim_ahead_s, stop, self._config.clock_check_s):
                    return
                self._early.append(slot)
                self._wake.set()
                if await _wait_until(slot_due, stop, self._config.clock_check_s):
                    return
                now = time.time()
                self._backlog.append(Pending(slot, unfired, now, now))
                self._wake.set()
                unfired = 0
                slot = self._following(slot)
        finally:
            self._wake.set()  # the work sees the stop

    async def _work(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self._wake.clear()
            await self._settle()
            next_try = min(self._next_tries(), default=time.time() + self._config.clock_check_s)
            await set_within(self._wake, max(0.0, next_try - time.time()))

    def _following(self, slot: datetime) -> datetime:
        """The slot after ``slot``, even when the clock task woke late (a loaded machine, a long pause of
        the process): each such slot is then fired late rather than stepped over. Only a wall clock that
        jumped further than ``clock_check_s`` (a suspended host, a clock set forward) skips to now."""
        following = self._entry.next_slot(slot)
        now = datetime.now(self._settings.zone)
        if (now - following).total_seconds() > self._config.clock_check_s:
            return self._entry.next_slot(now)
        return following

    def _due(self, slot: datetime) -> float:
        return slot.timestamp() + self._entry.jitter_s(self._rng)

    def _next_tries(self) -> list[float]:
        return [pending.next_try for pending in (*self._backlog, *self._watched)]

    async def _claim_early(self) -> None:
        """Claim the coming slots before they are due, so only the publish is left at the slot. The answer
        is kept by the claims; one that cannot be had now is asked for again at the slot."""
        early, self._early = self._early, []
        for slot in early:
            if not self._pauses.is_paused(self._entry.name):
                await self._claims.claim(self._entry.name, slot)

    async def _settle(self) -> None:
        """Fire the due slots of the backlog, oldest first; claim the coming slots; look at the watched
        slots that are due."""
        now = time.time()
        backlog, self._backlog = self._backlog, []
        for pending in backlog:
            if pending.next_try > now:
                self._backlog.append(pending)
            elif self._within_window(pending):
                await self._settle_own(pending)
        self._retries = self._retries + 1 if self._backlog else 0
        await self._claim_early()
        watched, self._watched = self._watched, []
        for pending in watched:
            if pending.next_try > now:
                self._watched.append(pending)
            elif self._within_window(pending):
                await self._look_at(pending)

    async def _settle_own(self, pending: Pending) -> None:
        outcome = await self.fire(pending.slot, pending.missed)
        if outcome is Fired.NOT_YET:
            delay = self._settings.nats.publish_backoff.delay(self._retries + 1)
            self._backlog.append(replace(pending, next_try=time.time() + delay))
        elif outcome is Fired.BY_OTHER:
            look_at = pending.slot.timestamp() + self._config.takeover_after_s
            self._watched.append(replace(pending, next_try=max(look_at, time.time())))

    async def _look_at(self, pending: Pending) -> None:
        look = await self._claims.look(self._entry.name, pending.slot, self._config.takeover_after_s)
        if look is Look.TAKEN_OVER:
            await self._settle_own(replace(pending, next_try=0.0))
        elif look is not Look.FIRED:  # waiting, or the bucket could not answer: look again later
            self._watched.append(replace(pending, next_try=time.time() + self._config.takeover_after_s))

    def _within_window(self, pending: Pending) -> bool:
        """Still worth firing: inside the catch-up window, and never beyond a claim's lifetime (else a slot
        could be claimed twice)."""
        keep_trying_s = min(self._entry.settings.catchup_window_s, self._config.claim_ttl_s)
        if time.time() - pending.since <= keep_trying_s:
            return True
        log.error(
            "tick %s for slot %s given up: not stored within the catch-up window",
            self._entry.name,
            pending.slot.isoformat(),
        )
        self._claims.forget(self._entry.name, pending.slot)
        return False

    async def fire(self, slot: datetime, missed: int = 0) -> Fired:
        """Publish the tick of ``slot`` unless the schedule is paused or another replica claimed the slot;
        ``missed``: how many earlier slots never fired (for the monitor)."""
        name = self._entry.name
        if self._pauses.is_paused(name):
            log.info("schedule %s is paused: slot %s skipped", name, slot.isoformat())
            self._claims.forget(name, slot)  # an early claim of this slot is not kept
            return Fired.STORED
        claimed = await self._claims.claim(name, slot)
        if claimed is None:
            return Fired.NOT_YET
        if not claimed:
            self._slots.record(name, slot)  # fired by another replica
            log.debug("slot %s of %s claimed by another replica", slot.isoformat(), name)
            return Fired.BY_OTHER
        tick = Tick(schedule=name, slot=slot, source="scheduler", missed=missed)
        try:
            await self._bus.publish(subjects.tick(name), tick, msg_id=f"{name}@{slot.isoformat()}")
        except (TimeoutError, BusError) as exc:
            # Tried again soon; if this replica dies first, another one takes the claim over.
            log.error("tick %s for slot %s could not be stored yet: %s", name, slot.isoformat(), exc)
            return Fired.NOT_YET
        log.info("tick %s for slot %s", name, slot.isoformat())
        await self._claims.fired(name, slot)
        self._slots.record(name, slot)
        return Fired.STORED


async def _wait_until(due_epoch_s: float, stop: asyncio.Event, step_s: float) -> bool:
    """Wait for a wall-clock time in steps of ``step_s`` at most (robust to clock jumps); True if stopped."""
    while (remaining := due_epoch_s - time.time()) > 0:
        if await set_within(stop, min(remaining, step_s)):
            return True
    return stop.is_set()

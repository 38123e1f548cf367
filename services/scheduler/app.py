"""The scheduler: the only thing that keeps time. Publishes ``syntx.tick.<schedule>`` per cron slot.

Several replicas may run (on different nodes). Each slot is fired by the one replica that claims it
first (:mod:`services.scheduler.claims`), so even a plain subscriber sees every slot once; ticks also
carry a message id ``<schedule>@<slot>``, so JetStream would drop a second copy all the same. Paused
schedules (``syntx schedules pause NAME``) are skipped by every replica.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
import time
from dataclasses import dataclass
from datetime import datetime

import nats.errors
from pydantic import BaseModel, ConfigDict

from services.scheduler.claims import SlotClaims
from services.scheduler.timetable import Entry, SlotLog, build_entries, count_missed, missed_slot
from shared.config import Settings
from shared.messaging import PausedSchedules, Tick, subjects
from shared.messaging import bus as bus_module
from shared.service import ServiceTasks, presence
from shared.timing import set_within

log = logging.getLogger(__name__)

UPCOMING = 3


class ScheduleView(BaseModel):
    model_config = ConfigDict(frozen=True)
    name: str
    cron: str
    enabled: bool
    paused: bool = False
    missed: str
    next: list[datetime]
    last_fired: datetime | None


class SchedulesReply(BaseModel):
    model_config = ConfigDict(frozen=True)
    timezone: str
    schedules: list[ScheduleView]


@dataclass(frozen=True)
class Pending:
    """A slot due whose tick is not stored yet; ``since``: when it became due (epoch seconds)."""

    slot: datetime
    missed: int
    since: float


class Scheduler:
    def __init__(
        self, settings: Settings, bus: bus_module.Bus, claims: SlotClaims, pauses: PausedSchedules
    ) -> None:
        self._settings = settings
        self._bus = bus
        self._claims = claims
        self._pauses = pauses
        self._zone = settings.zone
        self._entries = build_entries(settings.schedules)
        self._slots = SlotLog(settings.data_dir / "scheduler" / "last_slots.json", self._zone)
        self._rng = random.Random()

    def now(self) -> datetime:
        return datetime.now(self._zone)

    async def run(self, stop: asyncio.Event) -> None:
        for entry in self._entries:
            paused = "" if entry.settings.enabled else " (paused)"
            log.info("schedule %s: %s%s", entry.name, entry.settings.cron, paused)
        async with ServiceTasks() as tasks:
            tasks.start(self._pauses.watch(stop), "paused schedules")
            for entry in self._entries:
                if entry.settings.enabled:
                    tasks.start(self._run_entry(entry, stop), f"schedule {entry.name}")

    async def _run_entry(self, entry: Entry, stop: asyncio.Event) -> None:
        now = self.now()
        unfired = count_missed(entry, self._slots.get(entry.name), now)
        catch_up = missed_slot(entry, self._slots.get(entry.name), now)
        if unfired:
            log.warning(
                "schedule %s missed %d slot(s) while no scheduler ran (missed: %s)",
                entry.name,
                unfired,
                entry.settings.missed,
            )
        backlog: list[Pending] = []  # slots whose tick is not stored yet
        if catch_up is not None:
            backlog, unfired = [Pending(catch_up, unfired - 1, time.time())], 0
        slot = entry.next_slot(now)
        slot_due = slot.timestamp() + entry.jitter_s(self._rng)
        retries = 0
        while not stop.is_set():
            backlog = await self._fire_backlog(entry, backlog)
            retries = retries + 1 if backlog else 0
            due = slot_due
            if backlog:  # a tick that could not be stored is tried again soon, not at the next slot
                due = min(due, time.time() + self._settings.nats.publish_backoff.delay(retries))
            if await _wait_until(due, stop, self._settings.scheduler.clock_check_s):
                return
            if time.time() >= slot_due:
                backlog.append(Pending(slot, unfired, time.time()))
                unfired = 0
                slot = entry.next_slot(max(slot, self.now()))
                slot_due = slot.timestamp() + entry.jitter_s(self._rng)

    async def _fire_backlog(self, entry: Entry, backlog: list[Pending]) -> list[Pending]:
        """Fire the waiting slots, oldest first; those still not stored stay, up to the catch-up window."""
        left = []
        for pending in backlog:
            slot = pending.slot
            if time.time() - pending.since > self._keep_trying_s(entry):
                log.error(
                    "tick %s for slot %s given up: not stored within the catch-up window",
                    entry.name,
                    slot.isoformat(),
                )
                continue
            if not await self.fire(entry, slot, pending.missed):
                left.append(pending)
        return left

    def _keep_trying_s(self, entry: Entry) -> float:
        """The catch-up window, but never beyond a claim's lifetime (else a slot could be claimed twice)."""
        return min(entry.settings.catchup_window_s, self._settings.scheduler.claim_ttl_s)

    async def fire(self, entry: Entry, slot: datetime, missed: int = 0) -> bool:
        """Publish the tick of ``slot`` unless the schedule is paused or another replica claimed the slot;
        ``missed``: how many earlier slots never fired (for the monitor). False: try again later (the
        claim or the tick could not be stored)."""
        if self._pauses.is_paused(entry.name):
            log.info("schedule %s is paused: slot %s skipped", entry.name, slot.isoformat())
            return True
        claimed = await self._claims.claim(entry.name, slot)
        if claimed is None:
            return False
        if not claimed:
            self._slots.record(entry.name, slot)  # fired by another replica
            log.debug("slot %s of %s fired by another replica", slot.isoformat(), entry.name)
            return True
        tick = Tick(schedule=entry.name, slot=slot, source="scheduler", missed=missed)
        try:
            await self._bus.publish(
                subjects.tick(entry.name), tick, msg_id=f"{entry.name}@{slot.isoformat()}"
            )
        except (TimeoutError, nats.errors.Error) as exc:
            # Tried again soon; if this replica stops first, a restart counts the slot as missed.
            log.error("tick %s for slot %s could not be stored yet: %s", entry.name, slot.isoformat(), exc)
            return False
        self._claims.fired(entry.name, slot)
        self._slots.record(entry.name, slot)
        log.info("tick %s for slot %s", entry.name, slot.isoformat())
        return True

    async def describe(self, _request: bytes) -> SchedulesReply:
        now = self.now()
        views = [
            ScheduleView(
                name=entry.name,
                cron=entry.settings.cron,
                enabled=entry.settings.enabled,
                paused=self._pauses.is_paused(entry.name),
                missed=entry.settings.missed,
                next=entry.upcoming(now, UPCOMING),
                last_fired=self._slots.get(entry.name),
            )
            for entry in self._entries
        ]
        return SchedulesReply(timezone=self._settings.timezone, schedules=views)


async def _wait_until(due_epoch_s: float, stop: asyncio.Event, step_s: float) -> bool:
    """Wait for a wall-clock time in steps of ``step_s`` at most (robust to clock jumps); True if stopped."""
    while (remaining := due_epoch_s - time.time()) > 0:
        if await set_within(stop, min(remaining, step_s)):
            return True
    return stop.is_set()


def replica_name() -> str:
    """Who claimed a slot, for an operator reading the claims bucket."""
    return f"{socket.gethostname()}:{os.getpid()}"


async def run(settings: Settings, stop: asyncio.Event) -> None:
    async with bus_module.connect(settings.nats, name="scheduler", stop=stop) as bus:
        config = settings.scheduler
        claims = SlotClaims(await bus.key_value(config.claims_bucket, config.claim_ttl_s), replica_name())
        pauses = PausedSchedules(await bus.key_value(config.state_bucket))
        scheduler = Scheduler(settings, bus, claims, pauses)
        await bus.serve(subjects.SCHEDULES, scheduler.describe, queue="scheduler")
        async with presence(bus, "scheduler", settings.heartbeat_s):
            await scheduler.run(stop)

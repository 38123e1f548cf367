"""The scheduler: the only thing that keeps time. Publishes ``syntx.tick.<schedule>`` per cron slot.

Several replicas may run (on different nodes). Each slot is fired by the one replica that claims it
first (:mod:`services.scheduler.claims`), so even a plain subscriber sees every slot once; ticks also
carry a message id ``<schedule>@<slot>``, so JetStream would drop a second copy all the same. One
schedule's loop is :mod:`services.scheduler.firing`. Paused schedules (``syntx schedules pause NAME``)
are skipped by every replica.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from datetime import datetime

from services.scheduler.claims import SlotClaims
from services.scheduler.firing import Firing
from services.scheduler.timetable import Entry, SlotLog, build_entries, count_missed, missed_slot
from shared.config import Settings
from shared.messaging import Bus, PausedSchedules, SchedulesReply, SchedulesRequest, ScheduleView, connect
from shared.service import ServiceTasks, presence

log = logging.getLogger(__name__)

UPCOMING = 3


class Scheduler:
    def __init__(self, settings: Settings, bus: Bus, claims: SlotClaims, pauses: PausedSchedules) -> None:
        self._settings = settings
        self._bus = bus
        self._claims = claims
        self._pauses = pauses
        self._zone = settings.zone
        self._entries = build_entries(settings.schedules)
        self._slots = SlotLog(settings.data_dir / "scheduler" / "last_slots.json", self._zone)

    def now(self) -> datetime:
        return datetime.now(self._zone)

    async def run(self, stop: asyncio.Event) -> None:
        for entry in self._entries:
            paused = "" if entry.settings.enabled else " (paused)"
            log.info("schedule %s: %s%s", entry.name, entry.settings.cron, paused)
        async with ServiceTasks() as tasks:
            tasks.start(self._pauses.watch(stop, self._settings.nats.resubscribe), "paused schedules")
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
        firing = Firing(self._settings, entry, self._bus, self._claims, self._pauses, self._slots)
        if catch_up is not None:
            firing.catch_up(catch_up, unfired - 1)
            unfired = 0
        await firing.run(entry.next_slot(now), unfired, stop)

    async def describe(self, _request: SchedulesRequest) -> SchedulesReply:
        now = self.now()
        views = [self._view(entry, now) for entry in self._entries]
        return SchedulesReply(timezone=self._settings.timezone, schedules=views)

    def _view(self, entry: Entry, now: datetime) -> ScheduleView:
        """A paused schedule has no next fire times: none of them will fire until it is resumed."""
        paused = self._pauses.is_paused(entry.name)
        return ScheduleView(
            name=entry.name,
            cron=entry.settings.cron,
            enabled=entry.settings.enabled,
            paused=paused,
            paused_since=self._pauses.since(entry.name),
            missed=entry.settings.missed,
            next=[] if paused else entry.upcoming(now, UPCOMING),
            last_fired=self._slots.get(entry.name),
        )


def replica_name() -> str:
    """Who claimed a slot, for an operator reading the claims bucket; the random part tells a restarted
    replica (in a container: the same host name and process id) from the one before it."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


async def run(settings: Settings, stop: asyncio.Event) -> None:
    async with connect(settings.nats, name="scheduler", stop=stop) as bus:
        config = settings.scheduler
        claims = SlotClaims(await bus.key_value(config.claims_bucket, config.claim_ttl_s), replica_name())
        pauses = PausedSchedules(await bus.key_value(config.state_bucket))
        scheduler = Scheduler(settings, bus, claims, pauses)
        await bus.serve(SchedulesRequest, scheduler.describe, queue="scheduler")
        async with presence(bus, "scheduler", settings.heartbeat_s):
            await scheduler.run(stop)

"""Cleanup: on its tick, remove staging leftovers and expired logs/results, quarantine broken files,
and take over claims whose lease expired (their consumer died) — so they are recovered even when no
consumer of theirs runs any more."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter

from services.cleanup.tidy import Report, Tidier
from shared.config import Settings
from shared.messaging import Bus, CleanupReport, Tick, connect, refused_event, subjects
from shared.queue import Claims, FileQueue, QueueFault, new_token, recover_expired
from shared.queue.recovery import Recovered
from shared.service import presence, reported

log = logging.getLogger(__name__)


class Cleanup:
    def __init__(self, settings: Settings, bus: Bus) -> None:
        queue = FileQueue(settings.queue_dir)
        queue.ensure()
        self._tidier = Tidier(queue, settings.logs_dir, settings.cleanup, settings.queue.max_result_bytes)
        self._bus = bus
        self._queue = queue
        self._claims = Claims(queue, new_token())
        self._queue_settings = settings.queue

    async def on_tick(self, _tick: Tick) -> None:
        report = await asyncio.to_thread(self._tidier.run)
        recovered = await self._recover(report)
        refused = [*report.refused, *(item.quarantined for item in recovered if item.quarantined)]
        for moved in refused:
            await self._bus.emit(subjects.FILE_REFUSED, refused_event("cleanup", moved))
        expired = Counter(item.outcome for item in recovered)
        try:
            kept = await asyncio.to_thread(self._queue.counts)  # a million files: off the event loop
        except QueueFault as fault:
            report.fault = report.fault or fault
            kept = {}
        if report.fault is not None:
            log.warning(
                "cleanup: the queue cannot be written (%s); what was to be moved waits for the next pass",
                report.fault,
            )
        await self._bus.emit(
            subjects.CLEANUP_REPORT,
            CleanupReport(
                removed=dict(report.removed),
                quarantined=report.quarantined,
                untrusted=dict(report.untrusted),
                expired_claims=dict(expired),
                kept=kept,
                errors=report.errors,
            ),
        )
        log.info(
            "cleanup: removed %s, quarantined %d, filed %d flat archive results by day, "
            "expired claims %s, %d errors",
            dict(report.removed) or "nothing",
            report.quarantined,
            report.refiled,
            dict(expired) or "none",
            len(report.errors),
        )

    async def _recover(self, report: Report) -> list[Recovered]:
        """Take over expired claims, unless the queue cannot be written (then the next pass does)."""
        if report.fault is not None:
            return []
        settings = self._queue_settings
        try:
            return await asyncio.to_thread(
                recover_expired, self._claims, settings.lease_s, settings.max_attempts
            )
        except QueueFault as fault:
            report.fault = fault
            return []


async def run(settings: Settings, stop: asyncio.Event) -> None:
    async with connect(settings.nats, name="cleanup", stop=stop) as bus:
        cleanup = Cleanup(settings, bus)
        ticks = await bus.subscribe_ticks("cleanup", settings.overlap("cleanup"))
        async with presence(bus, "cleanup", settings.heartbeat_s):
            await reported(ticks.run(cleanup.on_tick, stop), "cleanup ticks")

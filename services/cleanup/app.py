"""Cleanup: on its tick, remove staging leftovers and expired logs/results, quarantine broken files."""

from __future__ import annotations

import asyncio
import logging

from services.cleanup.tidy import Tidier
from shared import bus as bus_module
from shared import subjects
from shared.bus import Bus
from shared.messages import CleanupReport, Tick
from shared.queue import FileQueue
from shared.runner import presence
from shared.settings import Settings

log = logging.getLogger(__name__)


class Cleanup:
    def __init__(self, settings: Settings, bus: Bus) -> None:
        queue = FileQueue(settings.queue_dir)
        queue.ensure()
        self._tidier = Tidier(queue, settings.logs_dir, settings.cleanup)
        self._bus = bus
        self._queue = queue

    async def on_tick(self, _tick: Tick) -> None:
        report = await asyncio.to_thread(self._tidier.run)
        kept = self._queue.counts()
        await self._bus.publish(
            subjects.CLEANUP_REPORT,
            CleanupReport(
                removed=dict(report.removed), quarantined=report.quarantined, kept=kept, errors=report.errors
            ),
        )
        log.info(
            "cleanup: removed %s, quarantined %d, %d errors",
            dict(report.removed) or "nothing",
            report.quarantined,
            len(report.errors),
        )


async def run(settings: Settings, stop: asyncio.Event) -> None:
    async with bus_module.connect(settings.nats, name="cleanup") as bus:
        cleanup = Cleanup(settings, bus)
        ticks = await bus.subscribe_ticks("cleanup")
        async with presence(bus, "cleanup"):
            await ticks.run(cleanup.on_tick, stop)

"""What happens to a tick that arrives while the previous run of its schedule is still running.

``skip`` drops it, ``queue_one`` keeps one to run next (later ones are skipped), ``allow`` runs it
alongside. Every tick that did not simply start a run is logged and reported, so the monitor can count it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from shared.config import Overlap
from shared.messaging.messages import OverlapOutcome, Tick

log = logging.getLogger(__name__)

TickRun = Callable[[Tick], Coroutine[Any, Any, None]]
OverlapReport = Callable[[str, OverlapOutcome], None]  # (schedule, outcome)


class OverlapGate:
    def __init__(self, schedule: str, policy: Overlap, run: TickRun, report: OverlapReport) -> None:
        self._schedule = schedule
        self._policy = policy
        self._run = run
        self._report = report
        self._running: set[asyncio.Task[None]] = set()
        self._queued: Tick | None = None

    @property
    def busy(self) -> bool:
        return bool(self._running)

    def offer(self, tick: Tick) -> None:
        if not self._running:
            self._start(tick)
        elif self._policy == "allow":
            self._note(tick, "overlapped", "runs alongside the previous run")
            self._start(tick)
        elif self._policy == "queue_one" and self._queued is None:
            self._queued = tick
            self._note(tick, "queued", "runs when the previous run ends")
        else:
            self._note(tick, "skipped", "the previous run still runs")

    async def wait(self) -> None:
        """Until every started run (and a queued one) has ended."""
        while self._running:
            await asyncio.gather(*self._running, return_exceptions=True)

    def _start(self, tick: Tick) -> None:
        task = asyncio.create_task(self._run(tick), name=f"run of {self._schedule}")
        self._running.add(task)
        task.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        if not task.cancelled() and task.exception() is not None:  # the run is guarded; never expected
            log.error("run of %s failed", self._schedule, exc_info=task.exception())
        if self._queued is not None and not self._running:
            tick, self._queued = self._queued, None
            self._start(tick)

    def _note(self, tick: Tick, outcome: OverlapOutcome, why: str) -> None:
        slot = tick.slot.isoformat() if tick.slot else "now"
        log.info("tick %s for %s %s (overlap: %s): %s", self._schedule, slot, outcome, self._policy, why)
        self._report(self._schedule, outcome)

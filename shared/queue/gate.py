"""The queue gate: whether this process may write the queue now, paused like a backend outage.

A :class:`~shared.queue.faults.QueueFault` (a full disk, an unwritable folder, a failing device) closes
the gate: one warning says why, what writes the queue waits (claims stop, answers already paid for are
kept in memory), and :meth:`QueueGate.keep` probes the folders with the ``queue.fault_probe`` backoff
until every one can be written again (:meth:`FileQueue.probe`); then one line says so, the staging files
a failed write could not remove go, and everything waiting resumes. Both changes are reported to the
gate's ``report`` as a :class:`GateReport` (repeated while the fault lasts, so a monitor started later
learns of it); the service sends each as an event, which becomes the monitor's ``queue_unwritable``
health reason.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from shared.backoff import Backoff
from shared.queue.faults import QueueFault
from shared.queue.store import WRITTEN_FOLDERS, FileQueue
from shared.timing import first_set, set_within, utc_now

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GateReport:
    """Whether the queue can be written; if not, ``fault`` says why; ``since``: when it could no longer."""

    writable: bool
    fault: QueueFault | None
    since: datetime


Reporter = Callable[[GateReport], Awaitable[None]]


class QueueGate:
    def __init__(
        self,
        queue: FileQueue,
        probe: Backoff,
        report: Reporter,
        folders: Iterable[str] = WRITTEN_FOLDERS,
        waiting: str = "claims wait, answers in hand are kept,",
    ) -> None:
        """``waiting``: what the service holds back meanwhile, for the log line."""
        self._queue = queue
        self._backoff = probe
        self._report = report
        self._folders = tuple(folders)
        self._waiting = waiting
        self._open = asyncio.Event()
        self._open.set()
        self._closed = asyncio.Event()
        self._since = 0.0
        self._closed_at = utc_now()
        self.fault: QueueFault | None = None

    @property
    def is_open(self) -> bool:
        return self._open.is_set()

    def close(self, fault: QueueFault) -> None:
        """The queue cannot be written: pause (said once per outage, however many calls fail)."""
        if self.is_open:
            self._since = time.monotonic()
            self._closed_at = utc_now()
            log.warning("the queue cannot be written: %s; %s until it can", fault, self._waiting)
            self._open.clear()
            self._closed.set()
        self.fault = fault

    async def wait_open(self, stop: asyncio.Event) -> bool:
        """Wait until the queue can be written again; False when ``stop`` came first."""
        await first_set(self._open, stop)
        return self.is_open

    async def keep(self, stop: asyncio.Event) -> None:
        """Until ``stop``: whenever the gate closes, probe until the queue can be written, then open it."""
        while await self._closes_before(stop):
            failures = 0
            while self.fault is not None:
                await self._send(writable=False)
                failures += 1
                if await set_within(stop, self._backoff.delay(failures)):
                    return
                if (fault := await asyncio.to_thread(self._queue.probe, self._folders)) is None:
                    await self._reopen()
                else:
                    self.fault = fault

    async def _closes_before(self, stop: asyncio.Event) -> bool:
        await first_set(self._closed, stop)
        return not stop.is_set()

    async def _reopen(self) -> None:
        swept = await asyncio.to_thread(self._queue.sweep_staging)
        left = f"; {swept} staging files of failed writes removed" if swept else ""
        log.info(
            "the queue can be written again after %.1fs; resuming%s", time.monotonic() - self._since, left
        )
        await self._send(writable=True)
        self.fault = None
        self._closed.clear()
        self._open.set()

    async def _send(self, *, writable: bool) -> None:
        state = GateReport(writable=writable, fault=None if writable else self.fault, since=self._closed_at)
        try:
            await self._report(state)
        except Exception as exc:  # the bus may be failing too: the files are the truth, health follows
            log.debug("queue state not sent: %s", exc)

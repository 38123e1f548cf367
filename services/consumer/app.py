"""The consumer: claims jobs oldest first, up to ``concurrency`` LLM calls in flight.

Triggers: a tick on ``syntx.tick.consumer.<wrapper>`` processes one batch; with ``watch: true`` new
files in ``incoming/`` (and ``syntx.job.created`` from other hosts) are claimed as they land.
On stop: no new claims, in-flight calls get ``grace_s`` to finish, the rest go back to ``incoming/``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from typing import Any

from services.consumer.processing import ConsumerContext, JobProcessor, Outcome
from shared import subjects
from shared.messages import Event, Tick
from shared.queue import INCOMING, PROCESSING, FileQueue
from shared.watch import Change, watching

log = logging.getLogger(__name__)

RESCAN_S = 30.0
BACKEND_PAUSE_BASE_S = 1.0
BACKEND_PAUSE_MAX_S = 60.0


class Consumer:
    def __init__(self, context: ConsumerContext, stop: asyncio.Event, grace_s: float) -> None:
        self._ctx = context
        self._stop = stop
        self._grace_s = grace_s
        self._processor = JobProcessor(context)
        self._slots = asyncio.Semaphore(context.settings.concurrency)
        self._inflight: set[asyncio.Task[Outcome]] = set()
        self._wake = asyncio.Event()
        self._backend_failures = 0
        self._paused_until = 0.0
        self.processed = 0

    @property
    def queue(self) -> FileQueue:
        return self._ctx.queue

    async def on_tick(self, tick: Tick) -> None:
        batch = tick.batch or self._ctx.settings.batch
        log.info("tick %s: processing up to %d jobs", tick.schedule, batch)
        await self.drain(limit=batch)

    async def drain(self, limit: int | None) -> int:
        """Claim and process jobs until ``limit`` were claimed, the queue is empty, or we stop."""
        self._drop_finished_claims()
        claimed: dict[str, asyncio.Task[Outcome]] = {}  # a job released in this pass waits for the next
        while not self._stop.is_set() and (limit is None or len(claimed) < limit):
            if await self._backend_paused():
                break
            started = await self._claim_pass(claimed, limit)
            if not started:
                break
        if claimed:
            await asyncio.wait(claimed.values())
        return len(claimed)

    def _drop_finished_claims(self) -> None:
        """A claim whose result exists is a crash leftover (result written, claim not yet removed)."""
        for job_id in list(self.queue.job_ids(PROCESSING)):
            if self.queue.result_path(job_id) is not None:
                log.info("job %s already has a result; removing its leftover claim", job_id)
                self.queue.forget_claim(job_id)

    async def _claim_pass(self, claimed: dict[str, asyncio.Task[Outcome]], limit: int | None) -> int:
        started = 0
        for job_id in self.queue.incoming_ids():
            if job_id in claimed:
                continue
            if self._stop.is_set() or (limit is not None and len(claimed) >= limit) or self._paused():
                break
            await self._slots.acquire()
            if self._stop.is_set() or not self.queue.claim(job_id):
                self._slots.release()
                continue
            task = asyncio.create_task(self._run(job_id), name=f"job {job_id}")
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)
            claimed[job_id] = task
            started += 1
        return started

    async def _run(self, job_id: str) -> Outcome:
        try:
            outcome = await self._processor.process(job_id)
        except asyncio.CancelledError:
            self.queue.release(job_id)
            log.info("job %s released at shutdown", job_id)
            raise
        except Exception:
            log.exception("job %s: unexpected error; releasing it", job_id)
            self.queue.release(job_id)
            outcome = "released"
        finally:
            self._slots.release()
        self._note_backend(outcome)
        return outcome

    def _note_backend(self, outcome: Outcome) -> None:
        loop_time = asyncio.get_running_loop().time()
        if outcome == "backend_down":
            self._backend_failures += 1
            pause = min(BACKEND_PAUSE_MAX_S, BACKEND_PAUSE_BASE_S * 2 ** (self._backend_failures - 1))
            self._paused_until = loop_time + pause
            log.warning("backend unavailable; pausing claims for %.1fs", pause)
        elif outcome == "filed":
            if self._backend_failures:
                log.info("backend answers again; resuming")
            self._backend_failures = 0
            self.processed += 1

    def _paused(self) -> bool:
        return asyncio.get_running_loop().time() < self._paused_until

    async def _backend_paused(self) -> bool:
        """While the backend is down wait out the pause (then probe with one job); True if stopping."""
        remaining = self._paused_until - asyncio.get_running_loop().time()
        if remaining <= 0:
            return False
        try:
            await asyncio.wait_for(self._stop.wait(), timeout=remaining)
        except TimeoutError:
            return False
        return True

    # -- watch mode ------------------------------------------------------------------------------

    def on_change(self, change: Change) -> None:
        kind, folder, name = change
        if kind == "added" and folder == INCOMING and name.endswith(".txt"):
            self._wake.set()

    async def on_event(self, _event: Event) -> None:
        self._wake.set()

    async def feed(self) -> None:
        """Watch mode: drain whenever something lands, and rescan now and then for correctness."""
        self._wake.set()
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=RESCAN_S)
            self._wake.clear()
            await self.drain(limit=None)

    async def shutdown(self) -> None:
        """Give in-flight jobs the grace period, then cancel them (they go back to ``incoming/``)."""
        self._wake.set()  # lets the watch loop see the stop at once
        pending = set(self._inflight)
        if not pending:
            return
        log.info("waiting up to %.0fs for %d in-flight jobs", self._grace_s, len(pending))
        _done, late = await asyncio.wait(pending, timeout=self._grace_s)
        for task in late:
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)


async def run_consumer(
    consumer: Consumer,
    ticks: Coroutine[Any, Any, None],
    *,
    stop: asyncio.Event,
    watch: bool,
    polling: bool = False,
) -> None:
    tasks: list[asyncio.Task[None]] = [asyncio.create_task(ticks, name="ticks")]
    if watch:
        tasks.append(asyncio.create_task(_watch(consumer, polling, stop), name="watch"))
    await stop.wait()
    await consumer.shutdown()
    await asyncio.gather(*tasks)


async def _watch(consumer: Consumer, polling: bool, stop: asyncio.Event) -> None:
    async with watching([consumer.queue.folder(INCOMING)], consumer.on_change, polling=polling):
        await consumer.feed()


def tick_schedule(wrapper: str) -> str:
    return subjects.consumer_schedule(wrapper)

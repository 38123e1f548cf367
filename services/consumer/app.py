"""The consumer: claims jobs oldest first, up to ``concurrency`` LLM calls in flight.

Triggers: a tick on ``syntx.tick.consumer.<wrapper>`` processes one batch; with ``watch: true`` new
files in ``incoming/`` (and ``syntx.job.created`` from other hosts) are claimed as they land.
Leases: claims in flight are renewed every third of ``queue.lease_s``; expired claims of dead
consumers are taken over now and then. Backend down: claims stop, one probe job at a time after a
``backend_pause`` backoff, normal operation once it answers. Queue unwritable (a full disk, a read-only
folder): claims stop until the queue gate opens again (:mod:`shared.queue.gate`); answers in hand wait
for it, their leases renewed. On stop: no new claims, in-flight calls get ``shutdown_grace_s`` to
finish, the rest go back to ``incoming/`` with no attempt counted.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from services.consumer.processing import HIDDEN_DETAIL, ConsumerContext, JobProcessor, Outcome
from shared.messaging import EVENT_TEXT_CHARS, BackendState, Event, JobCreated, JobFailed, Tick, subjects
from shared.queue import (
    INCOMING,
    PROCESSING,
    ClaimFile,
    Claims,
    FileFault,
    FileQueue,
    QueueFault,
    QueueGate,
    Stray,
    job_id_problem,
    quarantine_strays,
    recover_expired,
    scan_jobs,
    shown,
)
from shared.service import ServiceTasks
from shared.timing import set_within
from shared.watch import arrivals

log = logging.getLogger(__name__)


class Consumer:
    def __init__(self, context: ConsumerContext, stop: asyncio.Event) -> None:
        self._ctx = context
        self._stop = stop
        self._processor = JobProcessor(context)
        self._slots = asyncio.Semaphore(context.settings.concurrency)
        self._inflight: dict[asyncio.Task[Outcome], ClaimFile] = {}
        self._wake = asyncio.Event()
        self._backend_failures = 0
        self._paused_until = 0.0
        self._hidden_seen: set[str] = set()  # dot-files in incoming/ reported already (only those present)
        self._left_seen: set[str] = set()  # entries that could not be quarantined, reported already
        self.processed = 0

    @property
    def claims(self) -> Claims:
        return self._ctx.claims

    @property
    def gate(self) -> QueueGate:
        return self._ctx.gate

    @property
    def free_slots(self) -> int:
        """Concurrency slots not held by a job in flight (all of them when idle: none leaked)."""
        return self._slots._value  # asyncio.Semaphore keeps no public count

    @property
    def queue(self) -> FileQueue:
        return self._ctx.claims.queue

    @property
    def rescan_s(self) -> float:
        return self._ctx.settings.rescan_s

    async def on_tick(self, tick: Tick) -> None:
        batch = tick.batch or self._ctx.settings.batch
        log.info("tick %s: processing up to %d jobs", tick.schedule, batch)
        await self.drain(limit=batch)

    async def drain(self, limit: int | None) -> int:
        """Claim and process jobs until ``limit`` were claimed, the queue is empty, or we stop. While
        the queue cannot be written this waits for it (the run resumes when it can)."""
        run = _Run(limit)
        tidied = False
        while not self._stop.is_set() and not run.full:
            if not await self.gate.wait_open(self._stop) or await self._backend_paused():
                break
            tidied = tidied or self._writing(self._drop_finished_claims)
            if tidied and not await self._claim_pass(run) and self.gate.is_open:
                break
        run.waiting.clear()  # the run claims no more: its tasks end with their jobs (a probe that
        # succeeded must not work through the rest alone; the next drain has every slot)
        if run.tasks:
            await asyncio.wait(run.tasks)
        return len(run.claimed)

    def _writing(self, step: Callable[[], None]) -> bool:
        """Run ``step`` (a call that writes the queue); False when the queue cannot be written (the gate
        closes and says so)."""
        try:
            step()
        except QueueFault as fault:
            self.gate.close(fault)
            return False
        return True

    def _drop_finished_claims(self) -> None:
        """Remove the claims of jobs whose result exists. One of this process's or another's within its
        lease is a job being finished this instant, or a removal that failed (said when it did): routine, a
        debug line. One past its lease was left by a consumer that stopped between result and removal."""
        for claim in self.claims.all():
            if self.queue.result_path(claim.job_id) is None:
                continue
            clock = claim.lease_clock()
            stale = clock is None or self.queue.file_clock() - clock > self._ctx.queue_settings.lease_s
            left = stale and claim.token != self.claims.token
            log.log(
                logging.INFO if left else logging.DEBUG,
                "job %s already has a result; removing its %s claim",
                claim.job_id,
                "leftover" if left else "finishing consumer's",
            )
            self.claims.forget(claim)

    async def _waiting(self) -> list[str]:
        """Job ids waiting in ``incoming/``, oldest first; what can never be a job goes to quarantine.
        None waits while the queue cannot be read or written (the gate closes)."""
        try:
            intake = scan_jobs(self.queue.folder(INCOMING))
            if intake.strays:
                await self._quarantine(intake.strays)
        except QueueFault as fault:
            self.gate.close(fault)
            return []
        await self._report_hidden(intake.hidden)
        return intake.jobs

    async def _quarantine(self, strays: list[Stray]) -> None:
        """Move ``strays`` to quarantine and report them; one the filesystem will not move is left where
        it is, logged and counted once while it stays. :class:`QueueFault` ends the pass."""
        moved = quarantine_strays(self.queue, strays)
        await self._processor.report_quarantined(moved.quarantined)
        left = {str(stray.path): stray for stray in moved.left}
        for key in left.keys() - self._left_seen:
            stray = left[key]
            log.warning(
                "%s/%s: %s; left where it is", stray.path.parent.name, shown(stray.path.name), stray.detail
            )
            await self._processor.report_left(stray)
        self._left_seen = set(left) | (self._left_seen & {str(stray.path) for stray in strays})

    async def _report_hidden(self, hidden: list[str]) -> None:
        """Dot-files are never jobs (by rule); each is logged and counted once while it stays."""
        for name in set(hidden) - self._hidden_seen:
            log.warning("incoming/%s: %s", shown(name), HIDDEN_DETAIL)
            await self._processor.report_hidden(shown(name)[:EVENT_TEXT_CHARS])
        self._hidden_seen = set(hidden)

    async def _claim_pass(self, run: _Run) -> int:
        """Claim the jobs waiting now, oldest first, each as a slot frees — taken by this pass or by a
        job of the run that has just finished (:meth:`_run`). The number claimed from this pass."""
        run.waiting = deque(await self._waiting())
        claims_before = run.claims_made
        while run.waiting and not (self._stop.is_set() or run.full or self._held()):
            await self._slots.acquire()
            claim = await self._claim_next(run)
            if claim is None:
                self._slots.release()
                break
            self._start(claim, run)
        return run.claims_made - claims_before

    async def _claim_next(self, run: _Run) -> ClaimFile | None:
        """The run's next waiting job, claimed for a slot the caller holds; None when the run has no
        more for now: none left in this pass, its limit reached, stopping, claims held, or a probe out
        while the backend is failing."""
        while run.waiting:
            if self._stop.is_set() or run.full or self._held() or self._probing():
                return None
            job_id = run.waiting.popleft()
            if job_id in run.claimed and run.claimed[job_id] != "paused":
                continue  # claimed in this run already and not handed back: left to a later run
            if (claim := await self._take(job_id)) is not None:
                run.claimed[job_id] = None
                run.claims_made += 1
                return claim
        return None

    def _held(self) -> bool:
        """No claims now: the backend is paused or the queue cannot be written."""
        return self._paused() or not self.gate.is_open

    async def _take(self, job_id: str) -> ClaimFile | None:
        """Claim ``job_id``; None when it is gone, the filesystem refuses its name (then it is
        quarantined) or the queue cannot be written (then the gate closes). Never raises for those."""
        try:
            return self.claims.take(job_id)
        except QueueFault as fault:
            self.gate.close(fault)
        except FileFault as fault:
            path = self.queue.job_path(INCOMING, job_id)
            try:
                await self._quarantine([Stray(path, "bad_name", f"cannot be claimed: {fault}")])
            except QueueFault as queue_fault:
                self.gate.close(queue_fault)
        return None

    def _start(self, claim: ClaimFile, run: _Run | None = None) -> None:
        """Process a claim (its slot acquired) in its own task, which releases the slot when done."""
        task = asyncio.create_task(self._run(claim, run), name=f"job {claim.job_id}")
        self._inflight[task] = claim
        task.add_done_callback(self._inflight.pop)
        if run is not None:
            run.tasks.add(task)

    async def _run(self, claim: ClaimFile, run: _Run | None) -> Outcome:
        """Process ``claim``, then — while its run has jobs waiting — claim and process the next one in
        the same task, holding the same slot.

        Taking the next job the moment one is filed keeps the calls to the backend spread out: when a
        slot freed only wakes the run's claiming, every job finished in one turn of the event loop is
        replaced in the next, all at once, and with a backend that answers in a fixed time they keep
        coming back together (a 50 ms backend at concurrency 64: 607–651 jobs/s where this does 732–744).
        """
        try:
            while True:
                outcome = await self._process(claim)
                if run is not None:
                    run.claimed[claim.job_id] = outcome
                await self._note_backend(outcome)
                following = None if run is None else await self._claim_next(run)
                if following is None:
                    return outcome
                claim = self._inflight[_this_task()] = following
        finally:
            self._slots.release()

    async def _process(self, claim: ClaimFile) -> Outcome:
        try:
            return await self._processor.process(claim)
        except asyncio.CancelledError:
            self._release_at_shutdown(claim)
            raise
        except Exception as exc:
            log.exception("job %s: unexpected error; counted as a failed attempt", claim.job_id)
            return await self._processor.crashed(claim, exc)

    def _release_at_shutdown(self, claim: ClaimFile) -> None:
        try:
            self.claims.release(claim)
        except (QueueFault, FileFault) as fault:
            log.warning(
                "job %s: cannot go back to incoming/ at shutdown (%s); left claimed", claim.job_id, fault
            )
            return
        log.info("job %s back in incoming/ at shutdown", claim.job_id)

    # -- backend availability --------------------------------------------------------------------

    async def _note_backend(self, outcome: Outcome) -> None:
        if outcome == "backend_down":
            self._backend_failures += 1
            pause = self._ctx.settings.backend_pause.delay(self._backend_failures)
            self._paused_until = asyncio.get_running_loop().time() + pause
            log.warning(
                "backend unavailable (%d in a row); next probe in %.1fs", self._backend_failures, pause
            )
            await self._publish_backend(available=False, pause_s=pause)
            return
        if outcome in ("answered", "filed"):
            self.processed += 1
        if outcome == "answered" and self._backend_failures:  # only an answer says the backend is back
            log.info("backend answers again after %d failures; resuming", self._backend_failures)
            self._backend_failures = 0
            await self._publish_backend(available=True, pause_s=0.0)
            self._wake.set()

    async def _publish_backend(self, *, available: bool, pause_s: float) -> None:
        state = BackendState(
            wrapper=self._ctx.name,
            backend=self._ctx.backend.name,
            available=available,
            consecutive_failures=self._backend_failures,
            pause_s=pause_s,
            instance=self._ctx.owner,
        )
        await self._ctx.bus.emit(subjects.CONSUMER_BACKEND, state)

    def _probing(self) -> bool:
        """While the backend is failing, only one job at a time goes out (a probe)."""
        return self._backend_failures > 0 and len(self._inflight) > 0

    def _paused(self) -> bool:
        return asyncio.get_running_loop().time() < self._paused_until

    async def _backend_paused(self) -> bool:
        """While the backend is down wait out the pause (then probe with one job); True if stopping."""
        remaining = self._paused_until - asyncio.get_running_loop().time()
        return remaining > 0 and await set_within(self._stop, remaining)

    # -- leases ----------------------------------------------------------------------------------

    async def keep_leases(self) -> None:
        """Renew our claims (answers waiting for the queue included) and take over expired ones of dead
        consumers, until stopped."""
        lease_s = self._ctx.queue_settings.lease_s
        while not await set_within(self._stop, lease_s / 3):
            self._renew()
            if self.gate.is_open:
                await self.recover()
                await asyncio.to_thread(self.queue.sweep_staging)  # what a failed write could not remove

    def _renew(self) -> None:
        for task, claim in list(self._inflight.items()):
            if task.done():
                continue
            try:
                if not self.claims.renew(claim):
                    log.warning("job %s: claim gone while in flight (lease taken over)", claim.job_id)
            except QueueFault as fault:  # a read-only queue: the claim stays ours, its clock does not move
                self.gate.close(fault)
            except FileFault as fault:
                log.warning("job %s: its lease cannot be renewed: %s", claim.job_id, fault)

    async def recover(self) -> None:
        """Quarantine strays in ``processing/`` and recover expired claims; a queue that cannot be
        written closes the gate (tried again once it opens)."""
        try:
            await self._recover()
        except QueueFault as fault:
            self.gate.close(fault)

    async def _recover(self) -> None:
        settings = self._ctx.queue_settings
        strays = scan_jobs(self.queue.folder(PROCESSING)).strays  # e.g. claims made by older versions
        if strays:
            await self._quarantine(strays)
        recovered = await asyncio.to_thread(
            recover_expired, self.claims, settings.lease_s, settings.max_attempts
        )
        await self._processor.report_quarantined([item.quarantined for item in recovered if item.quarantined])
        for item in recovered:
            if item.outcome == "finished":
                continue
            event = JobFailed(
                job_id=item.job_id,
                wrapper=self._ctx.name,
                backend=self._ctx.backend.name,
                reason=item.reason,
                attempt=item.attempt,
                will_retry=item.outcome == "released",
                final_status="failed" if item.outcome == "failed" else None,
                cause="lease_expired",
            )
            await self._ctx.bus.emit(subjects.JOB_FAILED, event)
        if any(item.outcome == "released" for item in recovered):
            self._wake.set()

    # -- watch mode ------------------------------------------------------------------------------

    def ring(self) -> None:
        """Files arrived in ``incoming/`` (or may have: a rescan is due)."""
        self._wake.set()

    async def on_event(self, event: Event) -> None:
        """``syntx.job.created`` (from any host): claim the named job at once, without a folder scan.

        This is how a consumer that does not see the writer's file notifications (polling, another
        mount of the queue, another host) picks a job up within milliseconds. A job it cannot take
        now — no free slot, backend paused, an id that names no waiting job — is left to the next
        drain; a malformed id is ignored (the file itself, if any, is judged by the folder scan).
        """
        if not isinstance(event, JobCreated) or job_id_problem(event.job_id) is not None:
            return
        if not await self._take_named(event.job_id):
            self._wake.set()

    async def _take_named(self, job_id: str) -> bool:
        """Claim ``job_id`` if a slot is free; False when it must wait for the next drain.

        An id that names no waiting job (another consumer won the rename, or it was never there) costs
        one failed rename and is otherwise ignored.
        """
        if self._stop.is_set() or self._held() or self._backend_failures or self._slots.locked():
            return False
        await self._slots.acquire()  # free: returns at once
        claim = await self._take(job_id)
        if claim is None:
            self._slots.release()
            return True
        self._start(claim)
        return True

    async def feed(self) -> None:
        """Watch mode: drain whenever something lands, and rescan now and then for correctness."""
        self._wake.set()
        while not self._stop.is_set():
            if not self._wake.is_set():
                await set_within(self._wake, self.rescan_s)
            self._wake.clear()
            await self.drain(limit=None)

    async def shutdown(self) -> None:
        """Give in-flight jobs the grace period, then cancel them (they go back to ``incoming/``)."""
        self._wake.set()  # lets the watch loop see the stop at once
        pending = set(self._inflight)
        if not pending:
            return
        grace = self._ctx.settings.shutdown_grace_s
        log.info("waiting up to %.0fs for %d in-flight jobs", grace, len(pending))
        _done, late = await asyncio.wait(pending, timeout=grace)
        for task in late:
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)


def _this_task() -> asyncio.Task[Outcome]:
    task = asyncio.current_task()
    assert task is not None, "called from a job's task"
    return task


@dataclass
class _Run:
    """One drain: the jobs it claimed (their outcome once filed; ``"paused"``: handed back because the
    queue could not be written, to be claimed again), the ids of its current pass not yet tried, and the
    tasks processing them."""

    limit: int | None
    claimed: dict[str, Outcome | None] = field(default_factory=dict)
    claims_made: int = 0  # a job handed back and claimed again counts twice
    waiting: deque[str] = field(default_factory=deque)
    tasks: set[asyncio.Task[Outcome]] = field(default_factory=set)

    @property
    def full(self) -> bool:
        return self.limit is not None and len(self.claimed) >= self.limit


async def run_consumer(
    consumer: Consumer,
    ticks: Coroutine[Any, Any, None],
    *,
    service: str,
    stop: asyncio.Event,
    watch: bool,
    polling: bool = False,
) -> None:
    """Ticks, leases and (with ``watch``) the folder watch as one group: one failing stops the consumer."""
    await consumer.recover()
    async with ServiceTasks() as tasks:
        tasks.start(consumer.gate.keep(stop), f"{service} queue gate")
        tasks.start(ticks, f"{service} ticks")
        tasks.start(consumer.keep_leases(), f"{service} leases")
        if watch:
            tasks.start(_watch(consumer, polling), f"{service} watch")
        await stop.wait()
        await consumer.shutdown()


async def _watch(consumer: Consumer, polling: bool) -> None:
    folder = consumer.queue.folder(INCOMING)
    async with arrivals(folder, consumer.ring, polling=polling, retry_s=consumer.rescan_s):
        await consumer.feed()

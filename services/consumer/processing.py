"""One claimed job, from its file to its result: read, wrap, call the backend, parse, score, file.

Filing is: write the result (created exclusively — no second result for a job id, whoever finishes
first), then remove the claim. A crash between any two steps leaves the job recoverable.

When the queue cannot be written (:class:`QueueFault`) the job is never the one to pay: before the
backend was called the claim goes straight back to ``incoming/`` (no attempt counted); an answer that
cannot be filed is kept here — its lease renewed by the consumer — and filed once the queue gate opens
again, without calling the backend again and without counting an attempt. A name the filesystem
refuses (:class:`FileFault`) is the job file's: it is quarantined.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, TypeVar

from services.consumer.failpoints import Failpoints
from shared.config import ConsumerSettings, QueueSettings
from shared.llm import BackendError, Completion, LLMBackend, PromptContext
from shared.messaging import (
    EVENT_TEXT_CHARS,
    Bus,
    FileRefused,
    JobFailed,
    JobScored,
    refused_event,
    subjects,
    utc_now,
)
from shared.queue import (
    Attempt,
    ClaimFile,
    Claims,
    FileFault,
    Job,
    JobFileError,
    JobResult,
    Quarantined,
    QueueFault,
    QueueGate,
    Status,
    Stray,
    counted_failures,
    describe_parse,
    job_meta,
    load_history,
    quarantine,
    scored_status,
    shown,
)
from shared.scoring import FormatSpec, ParsedResponse, ScoreResult, Wrapper, parse_response, score_response

log = logging.getLogger(__name__)

# answered: the backend answered and the result is filed; filed: filed without an answer (malformed,
# given up); paused: handed back because the queue cannot be written.
Outcome = Literal["answered", "filed", "released", "backend_down", "gone", "lost", "paused"]
EVENT_META = {"topic", "category", "style", "language", "generation"}
HIDDEN_DETAIL = "a dot-file: never a job, left alone"
T = TypeVar("T")


class Stopped(Exception):
    """The service stopped while the queue could not be written: the step waiting for it gave up."""

    def __init__(self, fault: QueueFault) -> None:
        super().__init__(str(fault))
        self.fault = fault


@dataclass(frozen=True)
class Answer:
    """What the backend answered and what it scored: the part of a result only an answered job has."""

    completion: Completion
    parsed: ParsedResponse
    score: ScoreResult


def prompt_context(job: Job) -> PromptContext:
    meta = job.meta
    return PromptContext(
        category=meta.category, style=meta.style, language=meta.language, generation=meta.generation
    )


def scored_event(
    ctx: ConsumerContext, job: Job, answer: Answer, result: JobResult, attempt: int
) -> JobScored:
    """The ``syntx.job.scored`` event of an answered job whose result was filed."""
    return JobScored(
        job_id=job.job_id,
        wrapper=ctx.name,
        backend=ctx.backend.name,
        model=answer.completion.model,
        score=answer.score.total,
        threshold=ctx.settings.threshold,
        status="passed" if result.status == "passed" else "rejected",
        format=answer.parsed.format,
        llm_seconds=answer.completion.duration_s,
        total_seconds=result.total_seconds,
        attempt=attempt,
        scorer=answer.score.scorer,
        **job.meta.model_dump(include=EVENT_META),
    )


@dataclass(frozen=True)
class ConsumerContext:
    name: str
    owner: str
    settings: ConsumerSettings
    queue_settings: QueueSettings
    wrapper: Wrapper
    format: FormatSpec
    formats: dict[str, FormatSpec]
    backend: LLMBackend
    claims: Claims
    bus: Bus
    failpoints: Failpoints
    gate: QueueGate
    stop: asyncio.Event


class JobProcessor:
    def __init__(self, context: ConsumerContext) -> None:
        self._ctx = context
        self._claims = context.claims
        self._queue = context.claims.queue

    async def process(self, claim: ClaimFile) -> Outcome:
        """Take a claimed job to a result, or release it; never raises for a bad job, a backend or a
        queue that cannot be written."""
        try:
            return await self._process(claim)
        except Stopped as stopped:
            return await self._stopped(claim, stopped.fault)

    async def _process(self, claim: ClaimFile) -> Outcome:
        ctx = self._ctx
        ctx.failpoints.hit("after_claim")
        started, clock = utc_now(), time.monotonic()
        try:
            finished = self._queue.result_path(claim.job_id) is not None
        except QueueFault as fault:
            return await self.hand_back(claim, fault)
        if finished:  # finished before a crash: drop the claim
            await self.persist(lambda: self._claims.forget(claim))
            return "gone"
        try:
            job = self._read(claim)
        except FileNotFoundError:
            if claim.lease_clock() is None:
                return "lost"  # taken over: our lease had expired
            return await self._file_malformed(
                claim, "job file cannot be read: it is not found", started, clock
            )
        except JobFileError as exc:
            return await self._file_malformed(claim, str(exc), started, clock)
        except FileFault as exc:
            return await self._file_malformed(claim, f"job file cannot be read: {exc}", started, clock)
        except QueueFault as fault:
            return await self._read_failed(claim, fault, started, clock)
        try:
            completion = await ctx.backend.complete(
                ctx.wrapper.render(job.prompt),
                expected_headers=ctx.format.header_lines(),
                context=prompt_context(job),
            )
        except BackendError as exc:
            return await self._backend_failed(claim, job, exc, started)
        ctx.failpoints.hit("after_call")
        return await self._file_answer(claim, job, completion, started, clock)

    def _read(self, claim: ClaimFile) -> Job:
        settings = self._ctx.settings
        return self._claims.read_job(claim, settings.max_job_bytes, settings.max_header_bytes)

    async def _read_failed(
        self, claim: ClaimFile, fault: QueueFault, started: datetime, clock: float
    ) -> Outcome:
        """Reading the job failed with what may be the queue's fault (``EIO``, ``EACCES``): a probe of
        the queue decides. If every folder can be written, it was this file — filed as malformed."""
        queue_fault = await asyncio.to_thread(self._queue.probe)
        if queue_fault is None:
            return await self._file_malformed(claim, f"job file cannot be read: {fault}", started, clock)
        return await self.hand_back(claim, queue_fault)

    async def hand_back(self, claim: ClaimFile, fault: QueueFault) -> Outcome:
        """The queue cannot be written, and the backend was not called: the job goes back to
        ``incoming/`` at once (no attempt counted) — or as soon as a rename works again."""
        self._ctx.gate.close(fault)
        if await self._release(claim):
            log.info("job %s back in incoming/ until the queue can be written", claim.job_id)
        return "paused"

    async def _release(self, claim: ClaimFile) -> bool:
        """The job back to ``incoming/`` (when the queue can be written); False when the claim was gone.
        A job the filesystem will not move back is quarantined."""
        try:
            return await self.persist(lambda: self._claims.release(claim))
        except FileFault as fault:
            await self._quarantine_claim(claim, f"it cannot go back to incoming/: {fault}")
            return False

    async def persist(self, step: Callable[[], T], *, in_thread: bool = False) -> T:
        """Run ``step``, a call that writes the queue, until it works: while the queue cannot be written
        the gate is closed and this waits for it to open. :class:`Stopped` when the service stops first."""
        gate = self._ctx.gate
        while True:
            try:
                return await asyncio.to_thread(step) if in_thread else step()
            except QueueFault as fault:
                gate.close(fault)
                if not await gate.wait_open(self._ctx.stop):
                    raise Stopped(fault) from None

    async def _stopped(self, claim: ClaimFile, fault: QueueFault) -> Outcome:
        """Stopping while the queue cannot be written: one try to hand the job back (no attempt counted);
        if even that fails the claim stays and is taken over after its lease."""
        try:
            released = self._claims.release(claim)
        except (QueueFault, FileFault):
            released = False
        where = "back in incoming/" if released else "left claimed (taken over after its lease)"
        log.warning("job %s: stopping while the queue cannot be written (%s); %s", claim.job_id, fault, where)
        return "paused"

    async def _history(self, job_id: str) -> list[Attempt]:
        """The job's attempts so far; a broken history file is quarantined (counted) and read as empty."""
        loaded = await self.persist(lambda: load_history(self._queue, job_id))
        if loaded.quarantined is not None:
            await self.report_quarantined([loaded.quarantined])
        return loaded.attempts

    async def report_quarantined(self, moved: list[Quarantined]) -> None:
        """Tell the monitor about files this consumer moved to ``quarantine/``."""
        for item in moved:
            await self._ctx.bus.emit(subjects.FILE_REFUSED, refused_event(self._service, item))

    async def report_hidden(self, name: str) -> None:
        """Tell the monitor about a dot-file in ``incoming/`` (never a job, left alone)."""
        event = FileRefused(service=self._service, reason="hidden", name=name, detail=HIDDEN_DETAIL)
        await self._ctx.bus.emit(subjects.FILE_REFUSED, event)

    async def report_left(self, stray: Stray) -> None:
        """Tell the monitor about an entry that should be quarantined but cannot be moved (left alone)."""
        name = shown(stray.path.name)[:EVENT_TEXT_CHARS]
        event = FileRefused(
            service=self._service, reason=stray.reason, name=name, detail=stray.detail[:EVENT_TEXT_CHARS]
        )
        await self._ctx.bus.emit(subjects.FILE_REFUSED, event)

    @property
    def _service(self) -> str:
        return f"consumer.{self._ctx.name}"

    async def _file_answer(
        self, claim: ClaimFile, job: Job, completion: Completion, started: datetime, clock: float
    ) -> Outcome:
        ctx = self._ctx
        parsed = parse_response(completion.text, ctx.formats, expected=ctx.format.name)
        score = score_response(
            completion.text, parsed, ctx.format, job.prompt, scorer=ctx.settings.scorer, wrapper=ctx.wrapper
        )
        status, reason = scored_status(score.total, ctx.settings.threshold)
        history = await self._history(job.job_id)
        attempt = self._attempt(len(history) + 1, started, "answered", completion.duration_s)
        answer = Answer(completion, parsed, score)
        result = self._result(
            job.job_id, status, reason, job=job, attempts=[*history, attempt], clock=clock, answer=answer
        )
        if not await self._file(claim, result):
            return "lost"
        await ctx.bus.emit(subjects.JOB_SCORED, scored_event(ctx, job, answer, result, attempt.number))
        log.info("job %s %s: score %d (%s)", job.job_id, status, score.total, reason)
        return "answered"

    async def _file_malformed(
        self, claim: ClaimFile, reason: str, started: datetime, clock: float
    ) -> Outcome:
        attempt = self._attempt(
            len(await self._history(claim.job_id)) + 1, started, "answered", 0.0, error=reason
        )
        if not await self._file(
            claim, self._result(claim.job_id, "malformed", reason, attempts=[attempt], clock=clock)
        ):
            return "lost"
        await self._publish_failure(claim.job_id, reason, attempt.number, will_retry=False, final="malformed")
        log.warning("job %s malformed: %s", claim.job_id, reason)
        return "filed"

    async def crashed(self, claim: ClaimFile, exc: Exception) -> Outcome:
        """An unexpected error while processing: a counted attempt, like a backend that refused the job."""
        try:
            job: Job | None = self._read(claim)
        except Exception:  # whatever failed may fail again here; the record goes on without the job
            job = None
        error = BackendError(f"internal error: {type(exc).__name__}: {exc}", retryable=False, attempts=1)
        return await self._backend_failed(claim, job, error, utc_now())

    async def _backend_failed(
        self, claim: ClaimFile, job: Job | None, error: BackendError, started: datetime
    ) -> Outcome:
        job_id = claim.job_id
        history = await self._history(job_id)
        counts = not error.retryable or error.stalled  # a stalled reply counts: it could last forever
        attempt = self._attempt(
            len(history) + 1, started, "backend_error", 0.0, error=error.reason, retryable=not counts
        )
        history.append(attempt)
        failures = counted_failures(history)
        if counts and failures >= self._ctx.queue_settings.max_attempts:
            reason = f"gave up after {failures} failed attempts; last: {error.reason}"
            result = self._result(job_id, "failed", reason, job=job, attempts=history, clock=None)
            if not await self._file(claim, result):
                return "lost"
            await self._publish_failure(job_id, reason, attempt.number, will_retry=False, final="failed")
            log.warning("job %s failed: %s", job_id, reason)
            return "backend_down" if error.retryable else "filed"  # a stalling backend still stalls
        records = [entry.model_dump(mode="json") for entry in history]
        try:
            await self.persist(lambda: self._queue.write_attempts(job_id, records))
        except FileFault as fault:  # its attempts could never be counted: it would circle forever
            await self._quarantine_claim(claim, f"its attempt history cannot be written: {fault}")
            return "filed"
        if not await self._release(claim):
            return "lost"
        await self._publish_failure(job_id, error.reason, attempt.number, will_retry=True)
        if error.retryable:  # the backend is down: the job waits, it is not burned into error/
            counted = f" (attempt {failures} counted: the reply stalled)" if counts else ""
            log.warning("job %s back in incoming/, backend unavailable%s: %s", job_id, counted, error.reason)
            return "backend_down"
        log.warning("job %s attempt %d failed, will retry: %s", job_id, failures, error.reason)
        return "released"

    def _attempt(
        self,
        number: int,
        started: datetime,
        outcome: Literal["answered", "backend_error"],
        llm_seconds: float,
        *,
        error: str | None = None,
        retryable: bool = False,
    ) -> Attempt:
        return Attempt(
            number=number,
            owner=self._ctx.owner,
            started_at=started,
            finished_at=utc_now(),
            llm_seconds=llm_seconds,
            outcome=outcome,
            error=error,
            retryable=retryable,
        )

    def _result(
        self,
        job_id: str,
        status: Status,
        reason: str,
        *,
        clock: float | None,
        attempts: list[Attempt],
        job: Job | None = None,
        answer: Answer | None = None,
    ) -> JobResult:
        ctx = self._ctx
        completion, parsed, score = (
            (answer.completion, answer.parsed, answer.score) if answer else (None, None, None)
        )
        return JobResult(
            job_id=job_id,
            status=status,
            reason=reason,
            wrapper=ctx.name,
            format=parsed.format if parsed else ctx.format.name,
            backend=ctx.backend.name,
            model=completion.model if completion else ctx.backend.model,
            prompt=job.prompt if job else None,
            meta=job_meta(job),
            created_at=job.meta.created if job else None,
            response=completion.text if completion else None,
            truncated=completion.truncated if completion else False,
            fields=parsed.fields if parsed else {},
            parse_problems=describe_parse(parsed) if parsed else [],
            score=score,
            scorer=score.scorer if score else None,
            threshold=ctx.settings.threshold,
            attempts=attempts,
            llm_seconds=completion.duration_s if completion else 0.0,
            total_seconds=time.monotonic() - clock if clock is not None else 0.0,
        )

    async def _file(self, claim: ClaimFile, result: JobResult) -> bool:
        """Write the result (exclusively), then drop the claim. False when the job had a result already
        (our lease was taken over and the other holder finished first): ours is dropped. While the queue
        cannot be written the result waits here (see :meth:`persist`); a result whose name the filesystem
        refuses sends the job to quarantine (False)."""
        record = result.encoded()
        fsync = self._ctx.queue_settings.fsync

        def write() -> bool:
            return self._queue.write_result(result.folder, result.job_id, record, fsync=fsync)

        try:
            # A flush to disk waits on the device (or the network): then the event loop must not wait with it.
            filed = await self.persist(write, in_thread=fsync)
        except FileFault as fault:
            await self._quarantine_claim(claim, f"its result cannot be filed: {fault}")
            return False
        if not filed:
            log.warning(
                "job %s already has a result (its lease was taken over); dropping ours", result.job_id
            )
        self._ctx.failpoints.hit("after_result")
        with contextlib.suppress(Stopped):  # filed: the next drain removes a claim whose result exists
            await self.persist(lambda: self._claims.forget(claim))
        return filed

    async def _quarantine_claim(self, claim: ClaimFile, why: str) -> None:
        """Quarantine a claimed job whose result the filesystem will not take; if it will not take the
        job in quarantine either, the job goes back to ``incoming/`` (asked again later)."""
        try:
            moved = await self.persist(lambda: quarantine(self._queue, claim.path, "bad_name", why))
        except FileFault as fault:
            log.error("job %s: %s, and it cannot be quarantined (%s)", claim.job_id, why, fault)
            with contextlib.suppress(FileFault):  # then it stays claimed: taken over after its lease
                await self.persist(lambda: self._claims.release(claim))
            return
        if moved is not None:
            await self.report_quarantined([moved])

    async def _publish_failure(
        self,
        job_id: str,
        reason: str,
        attempt: int,
        *,
        will_retry: bool,
        final: Literal["failed", "malformed"] | None = None,
    ) -> None:
        ctx = self._ctx
        event = JobFailed(
            job_id=job_id,
            wrapper=ctx.name,
            backend=ctx.backend.name,
            reason=reason,
            attempt=attempt,
            will_retry=will_retry,
            final_status=final,
            cause="malformed" if final == "malformed" else "backend",
        )
        await ctx.bus.emit(subjects.JOB_FAILED, event)

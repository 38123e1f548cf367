"""One claimed job, from its file to its result: read, wrap, call the backend, parse, score, file.

Filing is: write the result (created exclusively — no second result for a job id, whoever finishes
first), then remove the claim. A crash between any two steps leaves the job recoverable.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from services.consumer.failpoints import Failpoints
from shared.config import ConsumerSettings, QueueSettings
from shared.llm import BackendError, Completion, LLMBackend
from shared.messaging import Bus, FileRefused, JobFailed, JobScored, subjects, utc_now
from shared.queue import (
    Attempt,
    ClaimFile,
    Claims,
    Job,
    JobFileError,
    JobResult,
    Quarantined,
    Status,
    counted_failures,
    describe_parse,
    job_meta,
    load_history,
    refused_event,
    scored_status,
)
from shared.scoring import FormatSpec, ParsedResponse, ScoreResult, Wrapper, parse_response, score_response

log = logging.getLogger(__name__)

Outcome = Literal["filed", "released", "backend_down", "gone", "lost"]
EVENT_META = {"topic", "category", "style", "language", "generation"}
HIDDEN_DETAIL = "a dot-file: never a job, left alone"


@dataclass(frozen=True)
class Answer:
    """What the backend answered and what it scored: the part of a result only an answered job has."""

    completion: Completion
    parsed: ParsedResponse
    score: ScoreResult


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


class JobProcessor:
    def __init__(self, context: ConsumerContext) -> None:
        self._ctx = context
        self._claims = context.claims
        self._queue = context.claims.queue

    async def process(self, claim: ClaimFile) -> Outcome:
        """Take a claimed job to a result, or release it; never raises for a bad job or backend."""
        ctx = self._ctx
        ctx.failpoints.hit("after_claim")
        started, clock = utc_now(), time.monotonic()
        if self._queue.result_path(claim.job_id) is not None:  # finished before a crash: drop the claim
            self._claims.forget(claim)
            return "gone"
        try:
            job = self._read(claim)
        except FileNotFoundError:
            return "lost"
        except JobFileError as exc:
            return await self._file_malformed(claim, str(exc), started, clock)
        try:
            completion = await ctx.backend.complete(
                ctx.wrapper.render(job.prompt), expected_headers=ctx.format.header_lines()
            )
        except BackendError as exc:
            return await self._backend_failed(claim, job, exc, started)
        ctx.failpoints.hit("after_call")
        return await self._file_answer(claim, job, completion, started, clock)

    def _read(self, claim: ClaimFile) -> Job:
        settings = self._ctx.settings
        return self._claims.read_job(claim, settings.max_job_bytes, settings.max_header_bytes)

    async def _history(self, job_id: str) -> list[Attempt]:
        """The job's attempts so far; a broken history file is quarantined (counted) and read as empty."""
        loaded = load_history(self._queue, job_id)
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
        await ctx.bus.emit(
            subjects.JOB_SCORED,
            JobScored(
                job_id=job.job_id,
                wrapper=ctx.name,
                backend=ctx.backend.name,
                model=completion.model,
                score=score.total,
                threshold=ctx.settings.threshold,
                status="passed" if status == "passed" else "rejected",
                format=parsed.format,
                llm_seconds=completion.duration_s,
                total_seconds=result.total_seconds,
                attempt=attempt.number,
                scorer=score.scorer,
                **job.meta.model_dump(include=EVENT_META),
            ),
        )
        log.info("job %s %s: score %d (%s)", job.job_id, status, score.total, reason)
        return "filed"

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
            return "filed"
        self._queue.write_attempts(job_id, [entry.model_dump(mode="json") for entry in history])
        if not self._claims.release(claim):
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
        (our lease was taken over and the other holder finished first): ours is dropped."""
        record = result.encoded()
        fsync = self._ctx.queue_settings.fsync
        write = functools.partial(self._queue.write_result, result.folder, result.job_id, record, fsync=fsync)
        # A flush to disk waits on the device (or the network): then the event loop must not wait with it.
        filed = await asyncio.to_thread(write) if fsync else write()
        if not filed:
            log.warning(
                "job %s already has a result (its lease was taken over); dropping ours", result.job_id
            )
        self._ctx.failpoints.hit("after_result")
        self._claims.forget(claim)
        return filed

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

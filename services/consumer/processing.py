"""One claimed job, from its file to its result: read, wrap, call the backend, parse, score, file."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from services.consumer.records import Attempt, JobResult, describe_parse, job_meta, scored_status
from shared import subjects
from shared.bus import Bus
from shared.formats import FormatSpec, Wrapper
from shared.jobfile import Job, JobFileError, parse_job
from shared.llm import BackendError, Completion, LLMBackend
from shared.messages import JobFailed, JobScored, utc_now
from shared.parsing import parse_response
from shared.queue import PROCESSING, FileQueue
from shared.scoring import score_response
from shared.settings import ConsumerSettings

log = logging.getLogger(__name__)

Outcome = Literal["filed", "released", "backend_down", "gone"]


@dataclass(frozen=True)
class ConsumerContext:
    name: str
    owner: str
    settings: ConsumerSettings
    wrapper: Wrapper
    format: FormatSpec
    formats: dict[str, FormatSpec]
    backend: LLMBackend
    queue: FileQueue
    bus: Bus


class JobProcessor:
    def __init__(self, context: ConsumerContext) -> None:
        self._ctx = context

    async def process(self, job_id: str) -> Outcome:
        """Take a claimed job to a result, or release it; never raises for a bad job or backend."""
        ctx = self._ctx
        started, clock = utc_now(), time.monotonic()
        if ctx.queue.result_path(job_id) is not None:  # finished before a crash: just drop the claim
            ctx.queue.forget_claim(job_id)
            return "gone"
        try:
            job = self._read(job_id)
        except FileNotFoundError:
            return "gone"
        except JobFileError as exc:
            await self._file_malformed(job_id, str(exc), started, clock)
            return "filed"
        try:
            completion = await ctx.backend.complete(
                ctx.wrapper.render(job.prompt), expected_headers=ctx.format.header_lines()
            )
        except BackendError as exc:
            return await self._backend_failed(job, exc, started)
        await self._file_answer(job, completion, started, clock)
        return "filed"

    def _read(self, job_id: str) -> Job:
        queue = self._ctx.queue
        raw = queue.job_path(PROCESSING, job_id).read_bytes()
        try:
            sidecar: bytes | None = queue.sidecar_path(PROCESSING, job_id).read_bytes()
        except FileNotFoundError:
            sidecar = None
        return parse_job(job_id, raw, self._ctx.settings.max_job_bytes, sidecar)

    def _attempts(self, job_id: str) -> list[Attempt]:
        return [Attempt.model_validate(entry) for entry in self._ctx.queue.read_attempts(job_id)]

    async def _file_answer(self, job: Job, completion: Completion, started: datetime, clock: float) -> None:
        ctx = self._ctx
        parsed = parse_response(completion.text, ctx.formats, expected=ctx.format.name)
        score = score_response(completion.text, parsed, ctx.format, job.prompt, scorer=ctx.settings.scorer)
        status, reason = scored_status(score.total, ctx.settings.threshold)
        attempts = self._attempts(job.job_id)
        attempt = self._attempt(len(attempts) + 1, started, "answered", completion.duration_s)
        result = self._result(
            job.job_id,
            status,
            reason,
            job=job,
            attempts=[*attempts, attempt],
            clock=clock,
            format=parsed.format,
            response=completion.text,
            truncated=completion.truncated,
            fields=parsed.fields,
            parse_problems=describe_parse(parsed),
            score=score,
            scorer=score.scorer,
            model=completion.model,
            llm_seconds=completion.duration_s,
        )
        await self._file(result)
        await ctx.bus.publish(
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
                **job.meta.model_dump(include={"topic", "category", "style", "language", "generation"}),
            ),
        )
        log.info("job %s %s: score %d (%s)", job.job_id, status, score.total, reason)

    async def _file_malformed(self, job_id: str, reason: str, started: datetime, clock: float) -> None:
        attempt = self._attempt(len(self._attempts(job_id)) + 1, started, "answered", 0.0, error=reason)
        result = self._result(job_id, "malformed", reason, attempts=[attempt], clock=clock)
        await self._file(result)
        await self._publish_failure(job_id, reason, attempt.number, will_retry=False, final="malformed")
        log.warning("job %s malformed: %s", job_id, reason)

    async def _backend_failed(self, job: Job, error: BackendError, started: datetime) -> Outcome:
        ctx = self._ctx
        attempts = self._attempts(job.job_id)
        counted = 1 + sum(1 for attempt in attempts if attempt.outcome == "backend_error")
        attempt = self._attempt(len(attempts) + 1, started, "backend_error", 0.0, error=error.reason)
        history = [*attempts, attempt]
        if error.retryable:  # the backend is down: the job waits, it is not burned into error/
            ctx.queue.write_attempts(job.job_id, [a.model_dump(mode="json") for a in history])
            ctx.queue.release(job.job_id)
            await self._publish_failure(job.job_id, error.reason, attempt.number, will_retry=True)
            log.warning("job %s released, backend unavailable: %s", job.job_id, error.reason)
            return "backend_down"
        if counted < ctx.settings.max_attempts:
            ctx.queue.write_attempts(job.job_id, [a.model_dump(mode="json") for a in history])
            ctx.queue.release(job.job_id)
            await self._publish_failure(job.job_id, error.reason, attempt.number, will_retry=True)
            log.warning("job %s attempt %d failed, will retry: %s", job.job_id, counted, error.reason)
            return "released"
        reason = f"backend failed {counted} times; last: {error.reason}"
        result = self._result(job.job_id, "failed", reason, job=job, attempts=history, clock=None)
        await self._file(result)
        await self._publish_failure(job.job_id, reason, attempt.number, will_retry=False, final="failed")
        log.warning("job %s failed: %s", job.job_id, reason)
        return "filed"

    def _attempt(
        self,
        number: int,
        started: datetime,
        outcome: Literal["answered", "backend_error"],
        llm_seconds: float,
        error: str | None = None,
    ) -> Attempt:
        return Attempt(
            number=number,
            owner=self._ctx.owner,
            started_at=started,
            finished_at=utc_now(),
            llm_seconds=llm_seconds,
            outcome=outcome,
            error=error,
        )

    def _result(
        self, job_id: str, status: str, reason: str, *, clock: float | None, **extra: object
    ) -> JobResult:
        ctx = self._ctx
        job = extra.pop("job", None)
        fields: dict[str, object] = {
            "job_id": job_id,
            "status": status,
            "reason": reason,
            "wrapper": ctx.name,
            "format": ctx.format.name,
            "backend": ctx.backend.name,
            "model": ctx.backend.model,
            "threshold": ctx.settings.threshold,
            "total_seconds": time.monotonic() - clock if clock is not None else 0.0,
        }
        if isinstance(job, Job):
            fields.update(prompt=job.prompt, meta=job_meta(job), created_at=job.meta.created)
        fields.update(extra)
        return JobResult.model_validate(fields)

    async def _file(self, result: JobResult) -> None:
        queue = self._ctx.queue
        if not queue.write_result(result.folder, result.job_id, result.model_dump(mode="json")):
            log.info("job %s already has a result; dropping the duplicate claim", result.job_id)
        queue.forget_claim(result.job_id)

    async def _publish_failure(
        self, job_id: str, reason: str, attempt: int, *, will_retry: bool, final: str | None = None
    ) -> None:
        ctx = self._ctx
        event = JobFailed(
            job_id=job_id,
            wrapper=ctx.name,
            backend=ctx.backend.name,
            reason=reason,
            attempt=attempt,
            will_retry=will_retry,
            final_status="failed" if final == "failed" else "malformed" if final == "malformed" else None,
        )
        await ctx.bus.publish(subjects.JOB_FAILED, event)

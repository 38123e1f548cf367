"""A valid message for every subject, as the services send them: what hostile variations start from."""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel

from shared.messaging import (
    BackendState,
    CleanupReport,
    FileRefused,
    GeneratorBudgetExhausted,
    GeneratorCall,
    JobCreated,
    JobFailed,
    ProducerGeneration,
    QueueState,
    ServiceHeartbeat,
    StatusRequest,
    Tick,
    TickOverlapped,
    subjects,
)
from tests.support.harness import scored


def valid_messages() -> dict[str, BaseModel]:
    """One valid message for every subject under syntx.> that carries one."""
    now = datetime.now(UTC)
    return {
        subjects.JOB_CREATED: JobCreated(job_id="20251206T140000123456Z-3fa2c1"),
        subjects.JOB_SCORED: scored("20251206T140000123456Z-3fa2c1"),
        subjects.JOB_FAILED: JobFailed(
            job_id="j1", wrapper="sigma", backend="offline", reason="timeout", attempt=1, will_retry=True
        ),
        subjects.FILE_REFUSED: FileRefused(service="cleanup", reason="stray", name="x", detail="why"),
        subjects.CONSUMER_BACKEND: BackendState(
            wrapper="sigma", backend="offline", available=False, consecutive_failures=2, pause_s=1.0
        ),
        subjects.QUEUE_STATE: QueueState(
            service="consumer.sigma", instance="consumer.sigma@h:1", writable=True, since=now
        ),
        subjects.PRODUCER_GENERATION: ProducerGeneration(
            generation=1, learned_from=0, produced=3, requested=3, queue_state="LOW", incoming=3
        ),
        subjects.PRODUCER_GENERATOR: GeneratorCall(model="m", outcome="used", category="c", style="s"),
        subjects.PRODUCER_BUDGET: GeneratorBudgetExhausted(
            model="m", day="2025-12-06", spent=1.0, daily_budget=1.0, calls=3, input_tokens=1, output_tokens=1
        ),
        subjects.CLEANUP_REPORT: CleanupReport(removed={"tmp": 2}),
        subjects.TICK_OVERLAP: TickOverlapped(schedule="producer", outcome="skipped"),
        subjects.SERVICE_HEARTBEAT: ServiceHeartbeat(
            service="monitor", instance="monitor@h:1", started_at=now
        ),
        subjects.tick("producer"): Tick(batch=5),
        subjects.STATUS: StatusRequest(reconcile=True),
    }

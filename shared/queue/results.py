"""The result record: one JSON file per job holding everything about how it ended."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.messaging import utc_now
from shared.queue.folders import ERROR, PROCESSED, ResultFolder
from shared.queue.jobfile import Job
from shared.scoring import ParsedResponse, ScoreResult

Status = Literal["passed", "rejected", "failed", "malformed"]


class Attempt(BaseModel):
    model_config = ConfigDict(frozen=True)
    number: int
    owner: str
    started_at: datetime
    finished_at: datetime
    llm_seconds: float = 0.0
    outcome: Literal["answered", "backend_error", "lease_expired"]
    error: str | None = None
    retryable: bool = False


class JobResult(BaseModel):
    model_config = ConfigDict(frozen=True)
    version: Literal[1] = 1
    job_id: str
    status: Status
    reason: str
    wrapper: str | None = None
    format: str | None = None
    backend: str | None = None
    model: str | None = None
    prompt: str | None = None
    meta: dict[str, Any] = Field(default_factory=dict)
    response: str | None = None
    truncated: bool = False
    fields: dict[str, str] = Field(default_factory=dict)
    parse_problems: list[str] = Field(default_factory=list)
    score: ScoreResult | None = None
    threshold: int | None = None
    scorer: str | None = None
    attempts: list[Attempt] = Field(default_factory=list)
    created_at: datetime | None = None
    finished_at: datetime = Field(default_factory=utc_now)
    llm_seconds: float = 0.0
    total_seconds: float = 0.0

    @property
    def folder(self) -> ResultFolder:
        return PROCESSED if self.status == "passed" else ERROR


COUNTED_OUTCOMES = ("backend_error", "lease_expired")


def counted_failures(attempts: list[Attempt]) -> int:
    """Attempts that count towards ``max_attempts``: a backend that refused the job, a crashed holder.

    A backend that was down does not count: the job waited, it did not fail.
    """
    return sum(1 for attempt in attempts if attempt.outcome in COUNTED_OUTCOMES and not attempt.retryable)


def scored_status(score: int, threshold: int) -> tuple[Status, str]:
    if score >= threshold:
        return "passed", f"score {score} >= threshold {threshold}"
    return "rejected", f"score {score} < threshold {threshold}"


def describe_parse(parsed: ParsedResponse) -> list[str]:
    problems = list(parsed.problems)
    problems.extend(f"duplicated section: {key}" for key in parsed.duplicates)
    return problems


def job_meta(job: Job | None) -> dict[str, Any]:
    return job.meta.model_dump(mode="json", exclude_none=True) if job else {}

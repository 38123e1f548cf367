"""The result record: one JSON file per job holding everything about how it ended."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from shared.messaging import utc_now
from shared.queue.intake import Quarantined, UnreadableFile, quarantine, read_bounded
from shared.queue.jobfile import Job
from shared.queue.store import FileQueue
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
    def folder(self) -> Literal["processed", "error"]:
        return "processed" if self.status == "passed" else "error"


COUNTED_OUTCOMES = ("backend_error", "lease_expired")
MAX_HISTORY_BYTES: Final = 16 * 1024 * 1024  # ~50,000 attempts; a longer history is not one we wrote
_HISTORY: TypeAdapter[list[Attempt]] = TypeAdapter(list[Attempt])


@dataclass(frozen=True)
class History:
    """A job's attempts so far; ``quarantined`` when its file was broken and moved aside."""

    attempts: list[Attempt]
    quarantined: Quarantined | None = None


def load_history(queue: FileQueue, job_id: str) -> History:
    """The attempts of ``job_id`` from ``attempts/<id>.json``.

    A file that is not a list of valid attempts (wrong types, not JSON, too big, not a regular file)
    is moved to ``quarantine/`` with a note and the history counts as empty: the job goes on.
    """
    path = queue.attempts_path(job_id)
    try:
        return History(_HISTORY.validate_json(read_bounded(path, MAX_HISTORY_BYTES)))
    except FileNotFoundError:
        return History([])
    except UnreadableFile as exc:
        why = str(exc)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(step) for step in first["loc"]) or "top level"
        why = f"{where}: {first['msg']}"
    detail = f"attempt history unreadable ({why}); counted as empty"
    return History([], quarantine(queue.root, path, "bad_attempts", detail))


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

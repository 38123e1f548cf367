"""Message payloads: JSON validated by pydantic. Frozen, versioned and tagged by ``kind``.

Events are facts in the past tense. A tick may arrive with an empty body (``nats pub
syntx.tick.producer ""``); :func:`decode_tick` turns that into a tick with defaults.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Final, Literal, get_args
from uuid import uuid4

from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, TypeAdapter

from shared.names import JobId


def utc_now() -> datetime:
    return datetime.now(UTC)


class Message(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    version: Literal[1] = 1
    id: str = Field(default_factory=lambda: uuid4().hex)
    at: datetime = Field(default_factory=utc_now)


class Tick(Message):
    """Run now. Every field is optional so that an empty body is a valid tick."""

    kind: Literal["tick"] = "tick"
    schedule: str | None = None
    slot: datetime | None = Field(None, description="the scheduled time this tick stands for")
    batch: int | None = Field(None, ge=1, le=10_000, description="override the configured batch size")
    missed: int = Field(0, ge=0, description="earlier slots of this schedule that never fired")
    source: str = "operator"


JobSource = Literal["producer", "watcher", "retry"]
JOB_SOURCES: Final[tuple[str, ...]] = get_args(JobSource)


class JobCreated(Message):
    kind: Literal["job.created"] = "job.created"
    job_id: JobId
    source: JobSource = "producer"
    topic: str | None = None
    category: str | None = None
    style: str | None = None
    language: str | None = None
    generation: int | None = None


class JobScored(Message):
    kind: Literal["job.scored"] = "job.scored"
    job_id: JobId
    wrapper: str
    backend: str
    model: str
    score: int = Field(ge=0, le=100)
    threshold: int = Field(ge=0, le=100)
    status: Literal["passed", "rejected"]
    format: str | None
    topic: str | None = None
    category: str | None = None
    style: str | None = None
    language: str | None = None
    generation: int | None = None
    llm_seconds: float = Field(ge=0)
    total_seconds: float = Field(ge=0)
    attempt: int = Field(ge=1)
    scorer: str


class JobFailed(Message):
    kind: Literal["job.failed"] = "job.failed"
    job_id: JobId
    wrapper: str
    backend: str
    reason: str
    attempt: int = Field(ge=1)
    will_retry: bool
    final_status: Literal["failed", "malformed"] | None = None
    cause: Literal["backend", "malformed", "lease_expired"] = "backend"


QuarantineReason = Literal["not_regular_file", "bad_name", "bad_attempts", "hidden", "stray", "bad_result"]
QUARANTINE_REASONS: Final[tuple[str, ...]] = get_args(QuarantineReason)


class FileRefused(Message):
    """A file of the queue was not read as what it claims to be: moved to ``quarantine/`` (with a
    ``.why.txt`` note, ``quarantined_as`` its name there), or — a dot-file in ``incoming/`` — left alone
    by rule (reported once per consumer process)."""

    kind: Literal["job.refused"] = "job.refused"
    service: str
    reason: QuarantineReason
    name: str = Field(max_length=1024, description="the file's name, non-printable characters escaped")
    detail: str = Field(max_length=1024)
    quarantined_as: str | None = Field(None, max_length=1024)


class BackendState(Message):
    """A consumer's backend stopped answering (claims pause, probes follow) or answers again."""

    kind: Literal["consumer.backend"] = "consumer.backend"
    wrapper: str
    backend: str
    available: bool
    consecutive_failures: int = Field(ge=0)
    pause_s: float = Field(ge=0)


# Bounds of a QueueState's texts: a folder name, what was tried, the error as the system said it.
QUEUE_STATE_TEXT_CHARS: Final = 256


class QueueState(Message):
    """A service cannot write the queue (a full disk, an unwritable folder): it pauses what writes,
    keeps answers it has, and probes until it can; or it can write it again. Repeated while it lasts."""

    kind: Literal["queue.state"] = "queue.state"
    service: str = Field(max_length=QUEUE_STATE_TEXT_CHARS)
    instance: str = Field(max_length=QUEUE_STATE_TEXT_CHARS)
    writable: bool
    folder: str | None = Field(None, max_length=QUEUE_STATE_TEXT_CHARS, description="where: processed/")
    operation: str | None = Field(None, max_length=QUEUE_STATE_TEXT_CHARS, description="what was tried")
    error: str | None = Field(None, max_length=QUEUE_STATE_TEXT_CHARS, description="No space left … (ENOSPC)")
    since: datetime = Field(description="when the queue could no longer be written")


class ProducerGeneration(Message):
    kind: Literal["producer.generation"] = "producer.generation"
    generation: int = Field(ge=1)
    learned_from: int = Field(ge=0)
    produced: int = Field(ge=0)
    requested: int = Field(ge=0)
    queue_state: str
    incoming: int = Field(ge=0)
    skipped_reason: str | None = None
    archived: int = Field(0, ge=0)
    favoured: list[str] = Field(default_factory=list)
    arm_jobs: dict[str, Annotated[int, Field(ge=0)]] = Field(default_factory=dict)  # produced per arm
    mean_score: float | None = Field(None, ge=0, le=100)  # of the results learned at this generation


GeneratorOutcome = Literal["used", "refused", "truncated", "empty", "error", "over_budget"]
GENERATOR_OUTCOMES: tuple[GeneratorOutcome, ...] = (
    "used",
    "refused",
    "truncated",
    "empty",
    "error",
    "over_budget",
)


class GeneratorCall(Message):
    """One prompt the LLM generator was asked for; anything but ``used`` means the template generator
    wrote that prompt instead. ``over_budget``: no call was made."""

    kind: Literal["producer.generator"] = "producer.generator"
    model: str
    outcome: GeneratorOutcome
    category: str
    style: str
    input_tokens: int = Field(0, ge=0)
    output_tokens: int = Field(0, ge=0)
    tokens_estimated: bool = False
    cost: float = Field(0.0, ge=0)
    spent_today: float = Field(0.0, ge=0)
    daily_budget: float | None = None


class GeneratorBudgetExhausted(Message):
    """The generator's daily budget is used up: the template generator writes prompts until the day ends."""

    kind: Literal["producer.budget"] = "producer.budget"
    model: str
    day: str = Field(description="the UTC day, YYYY-MM-DD")
    spent: float = Field(ge=0)
    daily_budget: float = Field(ge=0)
    calls: int = Field(ge=0)
    input_tokens: int = Field(ge=0)
    output_tokens: int = Field(ge=0)


class CleanupReport(Message):
    kind: Literal["cleanup.report"] = "cleanup.report"
    removed: dict[str, int] = Field(default_factory=dict)
    quarantined: int = Field(0, ge=0)
    untrusted: dict[str, NonNegativeInt] = Field(
        default_factory=dict, description="result files quarantined, by reason"
    )
    expired_claims: dict[str, int] = Field(default_factory=dict, description="released / failed / finished")
    kept: dict[str, int] = Field(default_factory=dict)
    errors: list[str] = Field(default_factory=list)


class ServiceHeartbeat(Message):
    """Sent by every service when it is ready and then periodically; the monitor tracks liveness."""

    kind: Literal["service.heartbeat"] = "service.heartbeat"
    service: str
    instance: str
    started_at: datetime
    stopping: bool = False


OverlapOutcome = Literal["skipped", "queued", "overlapped"]


class TickOverlapped(Message):
    """A tick arrived while its schedule's previous run was still running (see ``overlap``)."""

    kind: Literal["tick.overlapped"] = "tick.overlapped"
    schedule: str
    outcome: OverlapOutcome


Event = Annotated[
    JobCreated
    | JobScored
    | JobFailed
    | BackendState
    | QueueState
    | ProducerGeneration
    | GeneratorCall
    | GeneratorBudgetExhausted
    | FileRefused
    | CleanupReport
    | ServiceHeartbeat
    | TickOverlapped,
    Field(discriminator="kind"),
]
_EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)


def encode(message: BaseModel) -> bytes:
    return message.model_dump_json().encode()


def decode_event(data: bytes) -> Event:
    """Raises ``pydantic.ValidationError`` on anything that is not a known event."""
    return _EVENT_ADAPTER.validate_json(data)


def decode_tick(data: bytes, schedule: str) -> Tick:
    """An empty or whitespace body is a valid tick; otherwise a JSON object with Tick fields."""
    if not data.strip():
        return Tick(schedule=schedule)
    tick = Tick.model_validate_json(data)
    return tick if tick.schedule == schedule else tick.model_copy(update={"schedule": schedule})

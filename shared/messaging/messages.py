"""Message payloads: JSON validated by pydantic. Frozen, versioned and tagged by ``kind``.

Events are facts in the past tense. A tick may arrive with an empty body (``nats pub
syntx.tick.producer ""``). Every field is bounded — a name by its length, a number by its range, a list
or mapping by its entries, free text clipped to :data:`TEXT_MAX_CHARS` — so a message that validates
holds nothing bigger than these; job ids follow the file-name rule (:data:`shared.names.JobId`).
Which model a subject carries is said once, in :data:`EVENT_TYPES` and :data:`REQUEST_TYPES`;
:mod:`shared.messaging.decoding` reads every body through them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Final, Literal, get_args
from uuid import uuid4

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, TypeAdapter

from shared.messaging import subjects
from shared.names import JobId, clipped
from shared.queue import GateReport, Quarantined, QuarantineReason
from shared.timing import utc_now

# The longest name we give anything: a service instance is a service name, a host name (at most 253
# characters) and a process id.
NAME_MAX_CHARS: Final = 512
# Free text (a reason, a detail, a topic from a job's header) is cut to this, its length said, never
# refused: a long reason must not stop the event that carries it.
TEXT_MAX_CHARS: Final = 1024
EVENT_TEXT_CHARS: Final = TEXT_MAX_CHARS  # a name or detail from outside is cut to this before it is sent
_CUT_NOTE_CHARS: Final = 32  # room for "… (N characters)" after the cut
# The largest integer every JSON reader keeps exactly (2^53).
COUNT_MAX: Final = 2**53
# Entries of a list or a mapping: arms, folders, errors — a few dozen in practice.
ITEMS_MAX: Final = 1000
# Ten years: a duration or an amount of money beyond this is a broken clock or a broken meter.
SECONDS_MAX: Final = 10 * 365 * 86400.0
MONEY_MAX: Final = 1e9


def _clip_text(value: Any) -> Any:
    return clipped(value, TEXT_MAX_CHARS - _CUT_NOTE_CHARS) if isinstance(value, str) else value


def _clip_items(value: Any) -> Any:
    """A longer list of text keeps its first entries and says how many more there were."""
    if isinstance(value, list) and len(value) > ITEMS_MAX:
        return [*value[: ITEMS_MAX - 1], f"… {len(value) - ITEMS_MAX + 1} more"]
    return value


Name = Annotated[str, Field(max_length=NAME_MAX_CHARS)]
Text = Annotated[str, BeforeValidator(_clip_text), Field(max_length=TEXT_MAX_CHARS)]
Count = Annotated[int, Field(ge=0, le=COUNT_MAX)]
Seconds = Annotated[float, Field(ge=0, le=SECONDS_MAX)]
Money = Annotated[float, Field(ge=0, le=MONEY_MAX)]
Score = Annotated[int, Field(ge=0, le=100)]
Attempt = Annotated[int, Field(ge=1, le=COUNT_MAX)]
Tally = Annotated[dict[Text, Count], Field(max_length=ITEMS_MAX)]  # a number per name (an arm, a folder)
TextList = Annotated[list[Text], BeforeValidator(_clip_items), Field(max_length=ITEMS_MAX)]


class Message(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)
    version: Literal[1] = 1
    id: Name = Field(default_factory=lambda: uuid4().hex)
    at: datetime = Field(default_factory=utc_now)


class Tick(Message):
    """Run now. Every field is optional so that an empty body is a valid tick."""

    kind: Literal["tick"] = "tick"
    schedule: Name | None = None
    slot: datetime | None = Field(None, description="the scheduled time this tick stands for")
    batch: int | None = Field(None, ge=1, le=10_000, description="override the configured batch size")
    missed: Count = Field(0, description="earlier slots of this schedule that never fired")
    source: Name = "operator"


JobSource = Literal["producer", "watcher", "retry"]
JOB_SOURCES: Final[tuple[str, ...]] = get_args(JobSource)


class JobCreated(Message):
    kind: Literal["job.created"] = "job.created"
    job_id: JobId
    source: JobSource = "producer"
    topic: Text | None = None
    category: Text | None = None
    style: Text | None = None
    language: Text | None = None
    generation: Count | None = None


class JobScored(Message):
    kind: Literal["job.scored"] = "job.scored"
    job_id: JobId
    wrapper: Name
    backend: Name
    model: Text
    score: Score
    threshold: Score
    status: Literal["passed", "rejected"]
    format: Name | None
    topic: Text | None = None
    category: Text | None = None
    style: Text | None = None
    language: Text | None = None
    generation: Count | None = None
    llm_seconds: Seconds
    total_seconds: Seconds
    attempt: Attempt
    scorer: Name


class JobFailed(Message):
    kind: Literal["job.failed"] = "job.failed"
    job_id: JobId
    wrapper: Name
    backend: Name
    reason: Text
    attempt: Attempt
    will_retry: bool
    final_status: Literal["failed", "malformed"] | None = None
    cause: Literal["backend", "malformed", "lease_expired"] = "backend"


class FileRefused(Message):
    """A file of the queue was not read as what it claims to be: moved to ``quarantine/`` (with a
    ``.why.txt`` note, ``quarantined_as`` its name there), or — a dot-file in ``incoming/`` — left alone
    by rule (reported once per consumer process)."""

    kind: Literal["job.refused"] = "job.refused"
    service: Name
    reason: QuarantineReason
    name: Text = Field(description="the file's name, non-printable characters escaped")
    detail: Text
    quarantined_as: Text | None = None


def refused_event(service: str, moved: Quarantined) -> FileRefused:
    """The event that tells the monitor about a quarantined file."""
    return FileRefused(
        service=service,
        reason=moved.reason,
        name=moved.shown[:EVENT_TEXT_CHARS],
        detail=moved.detail[:EVENT_TEXT_CHARS],
        quarantined_as=moved.target,
    )


class BackendState(Message):
    """A consumer's backend stopped answering (claims pause, probes follow) or answers again."""

    kind: Literal["consumer.backend"] = "consumer.backend"
    wrapper: Name
    backend: Name
    available: bool
    consecutive_failures: Count
    pause_s: Seconds
    instance: Name | None = None  # the process that says it (service@host:pid); a consumer may run several


class QueueState(Message):
    """A service cannot write the queue (a full disk, an unwritable folder): it pauses what writes,
    keeps answers it has, and probes until it can; or it can write it again. Repeated while it lasts."""

    kind: Literal["queue.state"] = "queue.state"
    service: Name
    instance: Name
    writable: bool
    folder: Text | None = Field(None, description="where: processed/")
    operation: Text | None = Field(None, description="what was tried")
    error: Text | None = Field(None, description="No space left on device (ENOSPC)")
    since: datetime = Field(description="when the queue could no longer be written")

    @classmethod
    def of(cls, service: str, instance: str, report: GateReport) -> QueueState:
        """The event for what a service's queue gate reported."""
        fault = report.fault
        return cls(
            service=service,
            instance=instance,
            writable=report.writable,
            folder=None if fault is None else fault.folder,
            operation=None if fault is None else fault.operation,
            error=None if fault is None else f"{fault.reason} ({fault.errno_name})",
            since=report.since,
        )


class ProducerGeneration(Message):
    kind: Literal["producer.generation"] = "producer.generation"
    generation: Attempt
    learned_from: Count
    produced: Count
    requested: Count
    queue_state: Name
    incoming: Count
    skipped_reason: Text | None = None
    archived: Count = 0
    favoured: Annotated[list[Text], Field(max_length=ITEMS_MAX)] = Field(default_factory=list)
    arm_jobs: Tally = Field(default_factory=dict)  # produced per arm
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
    model: Text
    outcome: GeneratorOutcome
    category: Text
    style: Text
    input_tokens: Count = 0
    output_tokens: Count = 0
    tokens_estimated: bool = False
    cost: Money = 0.0
    spent_today: Money = 0.0
    daily_budget: Money | None = None


class GeneratorBudgetExhausted(Message):
    """The generator's daily budget is used up: the template generator writes prompts until the day ends."""

    kind: Literal["producer.budget"] = "producer.budget"
    model: Text
    day: str = Field(max_length=10, pattern=r"^\d{4}-\d{2}-\d{2}$", description="the UTC day, YYYY-MM-DD")
    spent: Money
    daily_budget: Money
    calls: Count
    input_tokens: Count
    output_tokens: Count


class CleanupReport(Message):
    kind: Literal["cleanup.report"] = "cleanup.report"
    removed: Tally = Field(default_factory=dict)
    quarantined: Count = 0
    untrusted: Tally = Field(default_factory=dict, description="result files quarantined, by reason")
    expired_claims: Tally = Field(default_factory=dict, description="released / failed / finished")
    kept: Tally = Field(default_factory=dict)
    errors: TextList = Field(default_factory=list)


class ServiceHeartbeat(Message):
    """Sent by every service when it is ready and then periodically; the monitor tracks liveness."""

    kind: Literal["service.heartbeat"] = "service.heartbeat"
    service: Name
    instance: Name
    started_at: datetime
    stopping: bool = False
    # The name `syntx up` runs the process under (consumer.sigma-2); unset elsewhere. A process that
    # `syntx up` started again in its place replaces it at once in the monitor's count.
    supervised_as: Name | None = None


OverlapOutcome = Literal["skipped", "queued", "overlapped"]


class TickOverlapped(Message):
    """A tick arrived while its schedule's previous run was still running (see ``overlap``)."""

    kind: Literal["tick.overlapped"] = "tick.overlapped"
    schedule: Name
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
EVENT_ADAPTER: Final[TypeAdapter[Event]] = TypeAdapter(Event)

EVENT_TYPES: Final[dict[str, type[Message]]] = {  # what each event subject carries
    subjects.JOB_CREATED: JobCreated,
    subjects.JOB_SCORED: JobScored,
    subjects.JOB_FAILED: JobFailed,
    subjects.FILE_REFUSED: FileRefused,
    subjects.CONSUMER_BACKEND: BackendState,
    subjects.QUEUE_STATE: QueueState,
    subjects.PRODUCER_GENERATION: ProducerGeneration,
    subjects.PRODUCER_GENERATOR: GeneratorCall,
    subjects.PRODUCER_BUDGET: GeneratorBudgetExhausted,
    subjects.CLEANUP_REPORT: CleanupReport,
    subjects.TICK_OVERLAP: TickOverlapped,
    subjects.SERVICE_HEARTBEAT: ServiceHeartbeat,
}


class Request(BaseModel):
    """The body of a request (empty means ``{}``); answered with a reply (:mod:`shared.messaging.replies`)."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class StatusRequest(Request):
    """``syntx.status``; ``reconcile``: recount the folders before answering."""

    reconcile: bool = False


class SchedulesRequest(Request):
    """``syntx.schedules``: nothing to ask."""


class ProducerStatsRequest(Request):
    """``syntx.producer.stats``: nothing to ask."""


class ServicePing(Request):
    """``syntx.service.ping``: nothing to ask; every service answers with a heartbeat."""


REQUEST_TYPES: Final[dict[str, type[Request]]] = {  # what each request subject carries
    subjects.STATUS: StatusRequest,
    subjects.SCHEDULES: SchedulesRequest,
    subjects.PRODUCER_STATS: ProducerStatsRequest,
}


def encode(message: BaseModel) -> bytes:
    return message.model_dump_json().encode()

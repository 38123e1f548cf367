"""Every NATS subject and stream name the system uses. No other module spells a subject."""

from __future__ import annotations

from typing import Final

PREFIX: Final = "syntx"

TICK_PREFIX: Final = f"{PREFIX}.tick"
TICK_ALL: Final = f"{TICK_PREFIX}.>"

JOB_CREATED: Final = f"{PREFIX}.job.created"
JOB_SCORED: Final = f"{PREFIX}.job.scored"
JOB_FAILED: Final = f"{PREFIX}.job.failed"
FILE_REFUSED: Final = f"{PREFIX}.job.refused"
JOB_ALL: Final = f"{PREFIX}.job.>"
CONSUMER_BACKEND: Final = f"{PREFIX}.consumer.backend"
QUEUE_STATE: Final = f"{PREFIX}.queue.state"
PRODUCER_GENERATION: Final = f"{PREFIX}.producer.generation"
PRODUCER_GENERATOR: Final = f"{PREFIX}.producer.generator"
PRODUCER_BUDGET: Final = f"{PREFIX}.producer.budget"
CLEANUP_REPORT: Final = f"{PREFIX}.cleanup.report"
TICK_OVERLAP: Final = f"{PREFIX}.schedule.overlap"  # not below syntx.tick: that is the tick stream

SERVICE_HEARTBEAT: Final = f"{PREFIX}.service.heartbeat"
SERVICE_PING: Final = f"{PREFIX}.service.ping"

STATUS: Final = f"{PREFIX}.status"
SCHEDULES: Final = f"{PREFIX}.schedules"
PRODUCER_STATS: Final = f"{PREFIX}.producer.stats"

TICK_STREAM: Final = "SYNTX_TICKS"
EVENT_STREAM: Final = "SYNTX_EVENTS"
EVENTS: Final = (  # stored in the event stream
    JOB_CREATED,
    JOB_SCORED,
    JOB_FAILED,
    FILE_REFUSED,
    CONSUMER_BACKEND,
    QUEUE_STATE,
    PRODUCER_GENERATION,
    PRODUCER_GENERATOR,
    PRODUCER_BUDGET,
    CLEANUP_REPORT,
    TICK_OVERLAP,
)
# the event stream's subject filter: every job event under one wildcard
EVENT_SUBJECTS: Final = (
    JOB_ALL,
    *(subject for subject in EVENTS if not subject.startswith(JOB_ALL.removesuffix(">"))),
)
REQUEST_SUBJECTS: Final = (STATUS, SCHEDULES, PRODUCER_STATS)
ALL: Final = f"{PREFIX}.>"
ALL_FIXED: Final = (*EVENTS, SERVICE_HEARTBEAT, SERVICE_PING, *REQUEST_SUBJECTS)


def tick(schedule: str) -> str:
    """``producer`` -> ``syntx.tick.producer``; ``consumer.sigma`` -> ``syntx.tick.consumer.sigma``."""
    return f"{TICK_PREFIX}.{schedule}"


def schedule_of(subject: str) -> str:
    """The schedule name a tick subject is for."""
    if not subject.startswith(TICK_PREFIX + "."):
        raise ValueError(f"{subject!r} is not a tick subject")
    return subject[len(TICK_PREFIX) + 1 :]


def consumer_schedule(name: str) -> str:
    """``sigma`` -> ``consumer.sigma``: the schedule of the consumer ``name``, and its service name."""
    return f"consumer.{name}"


def durable_name(schedule: str) -> str:
    """JetStream consumer names may not contain dots."""
    return "tick-" + schedule.replace(".", "_")

"""The replies to requests: what a service sends and a command reads, as one model on both sides.

``syntx.status`` is answered by the monitor with a :class:`StatusReply`, ``syntx.schedules`` by the
scheduler with a :class:`SchedulesReply`, ``syntx.producer.stats`` by the producer with a
:class:`ProducerStatsReply`; a request that was not understood or could not be answered
gets an :class:`ErrorReply` instead (:meth:`shared.messaging.Bus.serve`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.learning.state import Estimates
from shared.messaging.messages import Name, Text
from shared.timing import utc_now

Severity = Literal["WARNING", "CRITICAL"]


class ErrorReply(BaseModel):
    """The answer to a request that was not understood or could not be answered: why, in one line."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    kind: Literal["error"] = "error"
    subject: Name
    error: Text


class Reason(BaseModel):
    """One cause of the health state, as a sentence (its code names the alert it drives)."""

    model_config = ConfigDict(frozen=True)
    code: str
    severity: Severity
    text: str


class LastRun(BaseModel):
    model_config = ConfigDict(frozen=True)
    at: datetime
    summary: str


class StatusReply(BaseModel):
    model_config = ConfigDict(frozen=True)
    at: datetime = Field(default_factory=utc_now)
    counts: dict[str, int]
    queue_state: str
    health: str
    health_reasons: list[Reason] = Field(default_factory=list)
    oldest_incoming_age_s: float
    services: dict[str, int]
    last_runs: dict[str, LastRun]
    scored: dict[str, dict[str, int]]


class ScheduleView(BaseModel):
    model_config = ConfigDict(frozen=True)
    name: str
    cron: str
    enabled: bool
    paused: bool = False
    paused_since: datetime | None = None
    missed: str
    next: list[datetime]
    last_fired: datetime | None


class SchedulesReply(BaseModel):
    model_config = ConfigDict(frozen=True)
    timezone: str
    schedules: list[ScheduleView]


class ProducerStatsReply(BaseModel):
    """What the producer's learner believes now, after learning the results scored since its last tick:
    the same :class:`~shared.learning.state.Estimates` its checkpoint stores at a tick (``syntx learning``
    shows either)."""

    model_config = ConfigDict(frozen=True)
    generation: int = Field(ge=0)  # the last generation in the evolution log
    observed: int = Field(ge=0)  # scored jobs learned
    refused: dict[str, int]  # why results were not learned -> how many
    estimates: Estimates

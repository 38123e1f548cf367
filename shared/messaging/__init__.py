"""Talking over NATS: every subject, every message model, the typed bus (streams, events, ticks, replies)."""

from __future__ import annotations

from shared.messaging.bus import (
    Bus,
    StoppedWhileConnecting,
    connect_options,
    shown_url,
)
from shared.messaging.malformed import (
    MalformedLog,
    message_problem,
)
from shared.messaging.messages import (
    GENERATOR_OUTCOMES,
    JOB_SOURCES,
    QUARANTINE_REASONS,
    BackendState,
    CleanupReport,
    Event,
    FileRefused,
    GeneratorBudgetExhausted,
    GeneratorCall,
    GeneratorOutcome,
    JobCreated,
    JobFailed,
    JobScored,
    OverlapOutcome,
    ProducerGeneration,
    QuarantineReason,
    ServiceHeartbeat,
    Tick,
    TickOverlapped,
    decode_event,
    decode_tick,
    encode,
    utc_now,
)
from shared.messaging.pauses import PausedSchedules

__all__ = [
    "PausedSchedules",
    "MalformedLog",
    "message_problem",
    "FileRefused",
    "QUARANTINE_REASONS",
    "QuarantineReason",
    "BackendState",
    "Bus",
    "CleanupReport",
    "Event",
    "GENERATOR_OUTCOMES",
    "JOB_SOURCES",
    "GeneratorBudgetExhausted",
    "GeneratorCall",
    "GeneratorOutcome",
    "JobCreated",
    "JobFailed",
    "JobScored",
    "OverlapOutcome",
    "ProducerGeneration",
    "ServiceHeartbeat",
    "TickOverlapped",
    "StoppedWhileConnecting",
    "Tick",
    "connect_options",
    "decode_event",
    "decode_tick",
    "encode",
    "shown_url",
    "utc_now",
]

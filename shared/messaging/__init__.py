"""Talking over NATS: every subject, every message model, the typed bus (streams, events, ticks, replies)."""

from __future__ import annotations

from shared.messaging.bus import (
    Bus,
    StoppedWhileConnecting,
    shown_url,
)
from shared.messaging.malformed import (
    MalformedLog,
    message_problem,
)
from shared.messaging.messages import (
    GENERATOR_OUTCOMES,
    BackendState,
    CleanupReport,
    Event,
    GeneratorBudgetExhausted,
    GeneratorCall,
    GeneratorOutcome,
    JobCreated,
    JobFailed,
    JobScored,
    OverlapOutcome,
    ProducerGeneration,
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
    "BackendState",
    "Bus",
    "CleanupReport",
    "Event",
    "GENERATOR_OUTCOMES",
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
    "decode_event",
    "decode_tick",
    "encode",
    "shown_url",
    "utc_now",
]

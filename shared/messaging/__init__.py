"""Talking over NATS: every subject, every message model, the typed bus (streams, events, ticks, replies)."""

from __future__ import annotations

from shared.messaging.bus import (
    Bus,
    StoppedWhileConnecting,
    connect_options,
    shown_url,
)
from shared.messaging.messages import (
    BackendState,
    CleanupReport,
    Event,
    JobCreated,
    JobFailed,
    JobScored,
    ProducerGeneration,
    ServiceHeartbeat,
    Tick,
    decode_event,
    decode_tick,
    encode,
    utc_now,
)

__all__ = [
    "BackendState",
    "Bus",
    "CleanupReport",
    "Event",
    "JobCreated",
    "JobFailed",
    "JobScored",
    "ProducerGeneration",
    "ServiceHeartbeat",
    "StoppedWhileConnecting",
    "Tick",
    "connect_options",
    "decode_event",
    "decode_tick",
    "encode",
    "shown_url",
    "utc_now",
]

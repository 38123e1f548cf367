"""Talking over NATS, in three rooms; import from here, not from the modules.

- **The bus** (:mod:`~shared.messaging.bus`): :func:`connect`, then :class:`Bus` — ``publish`` into
  JetStream, ``emit`` an event, ``request`` and ``serve`` request/reply, ``subscribe`` (events, plain
  deliveries, a stream), key-value buckets; the failures callers may catch (:mod:`~shared.messaging.errors`);
  a probe for a service's heartbeat (:mod:`~shared.messaging.probe`).
- **Ticks** (:mod:`~shared.messaging.ticks`, :mod:`~shared.messaging.overlap`,
  :mod:`~shared.messaging.pauses`): a schedule's subscription, its overlap gate, paused schedules.
- **Messages** (:mod:`~shared.messaging.subjects`, :mod:`~shared.messaging.messages`,
  :mod:`~shared.messaging.replies`, :mod:`~shared.messaging.decoding`): every subject, every event and
  request, the replies the services send and the commands read, and how a body becomes one.

No module outside this package imports nats-py (``tests/unit/test_layers.py``).
"""

from __future__ import annotations

from shared.messaging import subjects
from shared.messaging.bodies import MalformedMessage
from shared.messaging.bus import (
    Bus,
    Delivery,
    StoppedWhileConnecting,
    connect,
    connect_options,
    shown_url,
)
from shared.messaging.connection import Unreachable
from shared.messaging.decoding import decode_event, decode_on, decode_request, decode_tick, describe
from shared.messaging.errors import Bucket, BusError, KeyExists, KeyMissing, NoResponders, RequestTimeout
from shared.messaging.malformed import (
    MalformedLog,
    message_problem,
)
from shared.messaging.messages import (
    EVENT_TEXT_CHARS,
    GENERATOR_OUTCOMES,
    JOB_SOURCES,
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
    ProducerStatsRequest,
    QueueState,
    Request,
    SchedulesRequest,
    ServiceHeartbeat,
    StatusRequest,
    Tick,
    TickOverlapped,
    encode,
    refused_event,
)
from shared.messaging.pauses import PausedSchedules
from shared.messaging.probe import heartbeat_heard
from shared.messaging.replies import (
    ErrorReply,
    LastRun,
    ProducerStatsReply,
    Reason,
    SchedulesReply,
    ScheduleView,
    Severity,
    StatusReply,
)
from shared.messaging.ticks import TickSubscription
from shared.queue import QUARANTINE_REASONS, QuarantineReason
from shared.timing import utc_now

__all__ = [
    "EVENT_TEXT_CHARS",
    "GENERATOR_OUTCOMES",
    "JOB_SOURCES",
    "QUARANTINE_REASONS",
    "BackendState",
    "Bucket",
    "Bus",
    "BusError",
    "CleanupReport",
    "Delivery",
    "ErrorReply",
    "Event",
    "FileRefused",
    "GeneratorBudgetExhausted",
    "GeneratorCall",
    "GeneratorOutcome",
    "JobCreated",
    "JobFailed",
    "JobScored",
    "KeyExists",
    "KeyMissing",
    "LastRun",
    "MalformedLog",
    "MalformedMessage",
    "NoResponders",
    "OverlapOutcome",
    "PausedSchedules",
    "ProducerGeneration",
    "ProducerStatsReply",
    "ProducerStatsRequest",
    "QuarantineReason",
    "QueueState",
    "Reason",
    "Request",
    "RequestTimeout",
    "ScheduleView",
    "SchedulesReply",
    "SchedulesRequest",
    "ServiceHeartbeat",
    "Severity",
    "StatusReply",
    "StatusRequest",
    "StoppedWhileConnecting",
    "Tick",
    "TickOverlapped",
    "TickSubscription",
    "Unreachable",
    "connect",
    "connect_options",
    "decode_event",
    "decode_on",
    "decode_request",
    "decode_tick",
    "describe",
    "encode",
    "heartbeat_heard",
    "message_problem",
    "refused_event",
    "shown_url",
    "subjects",
    "utc_now",
]

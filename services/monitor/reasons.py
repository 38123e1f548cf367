"""Every health reason once: its code, the severities the monitor may give it, and what its alert says.

Health and alerts are one model. :func:`services.monitor.health.judge` decides whether a reason holds and
how severe it is (every threshold lives there and in ``monitor.health``); the monitor exports that verdict
as ``syntx_health_reason{reason}`` (0 it does not hold, 1 WARNING, 2 CRITICAL), and each alert of
``deploy/alerts.yml`` — generated from this table by :mod:`services.monitor.alerts` — fires on exactly that
value. So an alert has its reason's name, thresholds and severity by construction; ``for`` only asks the
verdict to last a little before a person is paged.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.messaging import Severity

SEVERITY_VALUE: dict[Severity, int] = {"WARNING": 1, "CRITICAL": 2}  # syntx_health_reason's value


@dataclass(frozen=True)
class ReasonRule:
    code: str
    severities: tuple[Severity, ...]  # what judge() may say of it
    for_s: int  # the verdict lasts this long before its alert fires (a debounce; thresholds are judge()'s)
    summary: str
    action: str  # what to do, for the alert's description

    @property
    def alert(self) -> str:
        """``backend_down`` -> ``SyntxBackendDown``."""
        return "Syntx" + "".join(part.capitalize() for part in self.code.split("_"))


MINUTE = 60
REASON_RULES: tuple[ReasonRule, ...] = (
    ReasonRule(
        "error_share",
        ("WARNING", "CRITICAL"),
        5 * MINUTE,
        "A large share of the last hour's jobs failed (no answer, or a malformed one)",
        "Check the backends' logs and `syntx results --status failed`; re-queue with `syntx retry`.",
    ),
    ReasonRule(
        "rejected_share",
        ("WARNING",),
        15 * MINUTE,
        "Nearly every answer of the last hour scored below its threshold",
        "Look at a rejected result (`syntx show JOB`): the model, the wrapper or the threshold is off.",
    ),
    ReasonRule(
        "backlog",
        ("WARNING",),
        15 * MINUTE,
        "The queue is HIGH: the producer waits for the consumers",
        "Consumers are slower than the producer: add consumers or concurrency, or check their backends.",
    ),
    ReasonRule(
        "overflow",
        ("CRITICAL",),
        5 * MINUTE,
        "The queue is in OVERFLOW: the consumers do not keep up",
        "Scale the consumers (docker compose up -d --scale consumer-sigma=3), check their backends.",
    ),
    ReasonRule(
        "lease_overdue",
        ("WARNING",),
        5 * MINUTE,
        "A claimed job is past its lease: its consumer died or hangs",
        "A consumer or cleanup takes it over; look at the consumers (`syntx status`, their logs).",
    ),
    ReasonRule(
        "schedule_missed",
        ("WARNING",),
        1 * MINUTE,
        "A schedule has not fired for two of its slots",
        "Is a scheduler running (`syntx status`)? A paused schedule (`syntx schedules`) never misses.",
    ),
    ReasonRule(
        "backend_down",
        ("WARNING", "CRITICAL"),
        2 * MINUTE,
        "An LLM backend is down: its jobs wait in incoming/",
        "Check the backend's URL, key and server; claims resume by themselves when it answers.",
    ),
    ReasonRule(
        "queue_unwritable",
        ("CRITICAL",),
        2 * MINUTE,
        "The queue cannot be written",
        "A full disk or a folder that cannot be written: `syntx status` says where and why; "
        "it resumes by itself once it can write.",
    ),
    ReasonRule(
        "service_silent",
        ("WARNING", "CRITICAL"),
        1 * MINUTE,
        "A service has sent no heartbeat",
        "Check `syntx status`, `docker compose ps` and the service's log.",
    ),
    ReasonRule(
        "nats_down",
        ("CRITICAL",),
        1 * MINUTE,
        "The monitor has no connection to NATS",
        "No tick or event is delivered; check the nats-server. Every service reconnects by itself.",
    ),
    ReasonRule(
        "stalled",
        ("CRITICAL",),
        5 * MINUTE,
        "Jobs wait but nothing has finished, and no backend is down",
        "Look at the consumers' logs; restarting them is safe (their claims go back).",
    ),
)
REASONS: tuple[str, ...] = tuple(rule.code for rule in REASON_RULES)
BY_CODE: dict[str, ReasonRule] = {rule.code: rule for rule in REASON_RULES}

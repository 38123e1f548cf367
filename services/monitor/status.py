"""What the monitor knows beyond counts: last runs, live services; the ``syntx.status`` reply."""

from __future__ import annotations

import time
from collections import Counter
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from services.monitor.metrics import OTHER_ARM, MonitorMetrics
from shared.messaging import (
    BackendState,
    CleanupReport,
    Event,
    JobCreated,
    JobFailed,
    JobScored,
    ProducerGeneration,
    ServiceHeartbeat,
    Tick,
    utc_now,
)

HEARTBEAT_TIMEOUT_S = 45.0


class LastRun(BaseModel):
    model_config = ConfigDict(frozen=True)
    at: datetime
    summary: str


class StatusRequest(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    reconcile: bool = False


class StatusReply(BaseModel):
    model_config = ConfigDict(frozen=True)
    at: datetime = Field(default_factory=utc_now)
    counts: dict[str, int]
    queue_state: str
    health: str
    oldest_incoming_age_s: float
    services: dict[str, int]
    last_runs: dict[str, LastRun]
    scored: dict[str, dict[str, int]]


class Tracker:
    """Feeds events into the metrics and remembers the latest of each kind for status replies."""

    def __init__(self, metrics: MonitorMetrics) -> None:
        self._metrics = metrics
        self.last_runs: dict[str, LastRun] = {}
        self.scored: dict[str, dict[str, int]] = {}
        self._instances: dict[str, tuple[str, float]] = {}  # instance -> (service, last seen)

    async def on_event(self, event: Event) -> None:
        metrics = self._metrics
        if isinstance(event, JobScored):
            metrics.jobs_scored.labels(wrapper=event.wrapper, status=event.status).inc()
            metrics.job_score.labels(wrapper=event.wrapper).observe(event.score)
            metrics.llm_seconds.labels(wrapper=event.wrapper, backend=event.backend).observe(
                event.llm_seconds
            )
            per_wrapper = self.scored.setdefault(event.wrapper, {"passed": 0, "rejected": 0})
            per_wrapper[event.status] += 1
            self._ran(f"consumer.{event.wrapper}", f"job {event.job_id} {event.status} ({event.score})")
        elif isinstance(event, JobFailed):
            self._on_failed(event)
        elif isinstance(event, BackendState):
            metrics.backend_available.labels(wrapper=event.wrapper).set(1 if event.available else 0)
            state = "available" if event.available else f"down ({event.consecutive_failures} failures)"
            self._ran(f"backend.{event.wrapper}", f"{event.backend} {state}")
        elif isinstance(event, JobCreated):
            metrics.jobs_created.labels(source=event.source).inc()
        elif isinstance(event, ProducerGeneration):
            self._on_generation(event)
        elif isinstance(event, CleanupReport):
            for kind, count in event.removed.items():
                metrics.cleanup_removed.labels(kind=kind).inc(count)
            metrics.cleanup_quarantined.inc(event.quarantined)
            for outcome, count in event.expired_claims.items():
                metrics.cleanup_expired_claims.labels(outcome=outcome).inc(count)
            self._ran("cleanup", f"removed {sum(event.removed.values())}, quarantined {event.quarantined}")
        elif isinstance(event, ServiceHeartbeat):
            self._on_heartbeat(event)

    def _on_failed(self, event: JobFailed) -> None:
        if event.cause == "lease_expired":
            self._metrics.lease_expiries.labels(wrapper=event.wrapper).inc()
        elif event.cause == "backend":
            retry = str(event.will_retry).lower()
            self._metrics.backend_failures.labels(wrapper=event.wrapper, will_retry=retry).inc()
        if event.final_status is not None:
            self._metrics.jobs_failed.labels(wrapper=event.wrapper, status=event.final_status).inc()

    def _on_generation(self, event: ProducerGeneration) -> None:
        self._metrics.producer_generation.set(event.generation)
        self._metrics.producer_produced.inc(event.produced)
        self._metrics.producer_favoured.clear()
        for arm in event.favoured:
            self._metrics.producer_favoured.labels(arm=arm).set(1)
        self._set_shares(event.arm_jobs)
        if event.mean_score is not None:
            self._metrics.producer_mean_score.set(event.mean_score)
        reason = f" ({event.skipped_reason})" if event.skipped_reason else ""
        self._ran("producer", f"generation {event.generation}: produced {event.produced}{reason}")

    def _set_shares(self, arm_jobs: dict[str, int]) -> None:
        """Each arm's share of the generation's jobs (kept as they were when it produced nothing)."""
        jobs: Counter[str] = Counter()
        for arm, count in arm_jobs.items():
            jobs[self._metrics.arm(arm)] += count
        total = jobs.total()
        if not total:
            return
        for arm in {*self._metrics.arms, OTHER_ARM, *jobs}:
            self._metrics.producer_arm_share.labels(arm=arm).set(jobs[arm] / total)

    def _on_heartbeat(self, event: ServiceHeartbeat) -> None:
        if event.stopping:
            self._instances.pop(event.instance, None)
        else:
            self._instances[event.instance] = (event.service, time.monotonic())
        self.refresh_services()

    def on_tick(self, tick: Tick, received_at: datetime) -> None:
        schedule = tick.schedule or "unknown"
        self._metrics.ticks.labels(schedule=schedule).inc()
        if tick.missed:
            self._metrics.ticks_missed.labels(schedule=schedule).inc(tick.missed)
        if tick.slot is not None:
            lag = max(0.0, (received_at - tick.slot).total_seconds())
            self._metrics.tick_lag.labels(schedule=schedule).observe(lag)

    def note_run(self, name: str, summary: str) -> None:
        self._ran(name, summary)

    def _ran(self, name: str, summary: str) -> None:
        self.last_runs[name] = LastRun(at=utc_now(), summary=summary)

    def refresh_services(self) -> dict[str, int]:
        cutoff = time.monotonic() - HEARTBEAT_TIMEOUT_S
        live: dict[str, int] = {}
        for instance, (service, seen) in list(self._instances.items()):
            if seen < cutoff:
                del self._instances[instance]
            else:
                live[service] = live.get(service, 0) + 1
        self._metrics.services_up.clear()
        for service, count in live.items():
            self._metrics.services_up.labels(service=service).set(count)
        return live

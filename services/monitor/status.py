"""What the monitor knows beyond counts: last runs, live services; the ``syntx.status`` reply."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from services.monitor.health import OutcomeWindow
from services.monitor.labels import Labels
from services.monitor.metrics import MonitorMetrics
from shared.config import MonitorSettings
from shared.messaging import (
    BackendState,
    CleanupReport,
    Event,
    FileRefused,
    GeneratorBudgetExhausted,
    GeneratorCall,
    JobCreated,
    JobFailed,
    JobScored,
    LastRun,
    ProducerGeneration,
    QueueState,
    ServiceHeartbeat,
    Tick,
    TickOverlapped,
    subjects,
    utc_now,
)
from shared.queue import RESULT_PROBLEMS
from shared.service import instance_host

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LiveInstance:
    instance: str  # service@host:pid
    service: str
    at: float  # its last heartbeat, monotonic


def place_of(beat: ServiceHeartbeat) -> str:
    """Where a process counts as one live instance: its instance name; under `syntx up` the name it runs
    under on its host, so a process started again in a killed one's place takes that place at once (not
    a second live instance until the dead one's heartbeats time out)."""
    if beat.supervised_as is None:
        return beat.instance
    return f"{beat.supervised_as}@{instance_host(beat.instance)}"


class Tracker:
    """Feeds events into the metrics and remembers the latest of each kind for status replies."""

    def __init__(
        self,
        metrics: MonitorMetrics,
        labels: Labels,
        settings: MonitorSettings,
        expected_services: Iterable[str] = (),
    ) -> None:
        self._expected = tuple(expected_services)
        self._metrics = metrics
        self._label = labels
        self._service_timeout_s = settings.service_timeout_s  # not heard from for this long: gone
        self.outcomes = OutcomeWindow(settings.health.window_s)
        self._backends: dict[str, dict[str, bool]] = {}  # wrapper -> instance ("": unnamed) -> said down
        self._queue_faults: dict[str, QueueState] = {}  # instance -> its last "cannot write" report
        self.last_fired: dict[str, datetime] = {}
        self.last_runs: dict[str, LastRun] = {}
        self.scored: dict[str, dict[str, int]] = {}
        self._instances: dict[str, LiveInstance] = {}  # by its place (place_of)

    async def on_event(self, event: Event) -> None:
        metrics = self._metrics
        if isinstance(event, JobScored):
            wrapper = self._label("wrapper", event.wrapper)
            metrics.jobs_scored.labels(wrapper=wrapper, status=event.status).inc()
            metrics.job_score.labels(wrapper=wrapper).observe(event.score)
            backend = self._label("backend", event.backend)
            metrics.llm_seconds.labels(wrapper=wrapper, backend=backend).observe(event.llm_seconds)
            per_wrapper = self.scored.setdefault(wrapper, {"passed": 0, "rejected": 0})
            per_wrapper[event.status] += 1
            self.outcomes.add(event.status)
            self._ran(
                subjects.consumer_schedule(wrapper), f"job {event.job_id} {event.status} ({event.score})"
            )
        elif isinstance(event, JobFailed):
            self._on_failed(event)
        elif isinstance(event, FileRefused):
            metrics.files_refused.labels(reason=event.reason).inc()
        elif isinstance(event, BackendState):
            wrapper = self._label("wrapper", event.wrapper)
            self._backends.setdefault(wrapper, {})[event.instance or ""] = not event.available
            self._backend_failing(wrapper)
            state = "available" if event.available else f"down ({event.consecutive_failures} failures)"
            self._ran(f"backend.{wrapper}", f"{self._label('backend', event.backend)} {state}")
        elif isinstance(event, QueueState):
            self._on_queue_state(event)
        elif isinstance(event, JobCreated):
            metrics.jobs_created.labels(source=event.source).inc()
        elif isinstance(event, ProducerGeneration):
            self._on_generation(event)
        elif isinstance(event, GeneratorCall):
            self._on_generator_call(event)
        elif isinstance(event, GeneratorBudgetExhausted):
            metrics.generator_budget_exhausted.set(1)
            metrics.generator_spent_today.set(event.spent)
            self._ran("generator", f"daily budget {event.daily_budget} exhausted on {event.day}")
        elif isinstance(event, CleanupReport):
            for kind, count in event.removed.items():
                metrics.cleanup_removed.labels(kind=self._label("kind", kind)).inc(count)
            metrics.cleanup_quarantined.inc(event.quarantined)
            self._count_untrusted(event.untrusted)
            for outcome, count in event.expired_claims.items():
                metrics.cleanup_expired_claims.labels(outcome=self._label("outcome", outcome)).inc(count)
            self._ran("cleanup", f"removed {sum(event.removed.values())}, quarantined {event.quarantined}")
        elif isinstance(event, ServiceHeartbeat):
            self._on_heartbeat(event)
        elif isinstance(event, TickOverlapped):
            schedule = self._label("schedule", event.schedule)
            metrics.ticks_overlapped.labels(schedule=schedule, outcome=event.outcome).inc()

    def _count_untrusted(self, untrusted: dict[str, int]) -> None:
        for reason, count in untrusted.items():
            if reason in RESULT_PROBLEMS:
                self._metrics.results_untrusted.labels(reason=reason).inc(count)
            else:
                log.warning("cleanup reported %d untrusted results for an unknown reason %r", count, reason)

    def _on_failed(self, event: JobFailed) -> None:
        wrapper = self._label("wrapper", event.wrapper)
        if event.cause == "lease_expired":
            self._metrics.lease_expiries.labels(wrapper=wrapper).inc()
        elif event.cause == "backend":
            retry = str(event.will_retry).lower()
            self._metrics.backend_failures.labels(wrapper=wrapper, will_retry=retry).inc()
        if event.final_status is not None:
            self._metrics.jobs_failed.labels(wrapper=wrapper, status=event.final_status).inc()
            self.outcomes.add("failed")

    def _on_generation(self, event: ProducerGeneration) -> None:
        self._metrics.producer_generation.set(event.generation)
        self._metrics.producer_produced.inc(event.produced)
        self._metrics.producer_favoured.clear()
        for arm in event.favoured:
            self._metrics.producer_favoured.labels(arm=self._label("arm", arm)).set(1)
        self._set_shares(event.arm_jobs)
        if event.mean_score is not None:
            self._metrics.producer_mean_score.set(event.mean_score)
        reason = f" ({event.skipped_reason})" if event.skipped_reason else ""
        self._ran("producer", f"generation {event.generation}: produced {event.produced}{reason}")

    def _set_shares(self, arm_jobs: dict[str, int]) -> None:
        """Each arm's share of the generation's jobs (kept as they were when it produced nothing)."""
        jobs: Counter[str] = Counter()
        for arm, count in arm_jobs.items():
            jobs[self._label("arm", arm)] += count
        total = jobs.total()
        if not total:
            return
        for arm in self._label.values("arm"):
            self._metrics.producer_arm_share.labels(arm=arm).set(jobs[arm] / total)

    def _on_generator_call(self, event: GeneratorCall) -> None:
        metrics = self._metrics
        metrics.generator_calls.labels(outcome=event.outcome).inc()
        metrics.generator_tokens.labels(direction="input").inc(event.input_tokens)
        metrics.generator_tokens.labels(direction="output").inc(event.output_tokens)
        metrics.generator_cost.inc(event.cost)
        metrics.generator_spent_today.set(event.spent_today)
        metrics.generator_budget_exhausted.set(1 if event.outcome == "over_budget" else 0)

    def _on_queue_state(self, event: QueueState) -> None:
        if event.writable:
            if self._queue_faults.pop(event.instance, None) is not None:
                self._ran(f"queue.{event.service}", "writable again")
            return
        if event.instance not in self._queue_faults:
            self._ran(f"queue.{event.service}", f"cannot write {event.folder}: {event.error}")
        self._queue_faults[event.instance] = event

    def backends_down(self) -> list[str]:
        """The wrappers whose backend one of their live processes last said is down (each of a consumer's
        instances says so for itself: one that answers again does not speak for one still failing). A
        process that stopped or went silent takes what it said with it; one started in its place has said
        nothing yet. A report that names no process counts until another replaces it."""
        live = self._live_instances()
        for said in self._backends.values():
            for instance in [name for name in said if name and name not in live]:
                del said[instance]
        return [wrapper for wrapper in self._backends if self._backend_failing(wrapper)]

    def _backend_failing(self, wrapper: str) -> bool:
        """Whether a process of ``wrapper`` says its backend is down; the gauge is set to say the same."""
        failing = any(self._backends[wrapper].values())
        self._metrics.backend_available.labels(wrapper=wrapper).set(0 if failing else 1)
        return failing

    def _live_instances(self) -> set[str]:
        return {seen.instance for seen in self._instances.values()}

    def queue_faults(self) -> tuple[str, ...]:
        """Each instance that reported it cannot write the queue and is still alive: where and why."""
        live = self._live_instances()
        for instance in [name for name in self._queue_faults if name not in live]:
            del self._queue_faults[instance]  # gone or silent: its fault ends with it (a new one reports)
        now = utc_now()
        return tuple(
            f"{state.service}: {state.operation} in {state.folder}: {state.error}, "
            f"for {(now - state.since).total_seconds():.0f}s"
            for state in self._queue_faults.values()
        )

    def _on_heartbeat(self, event: ServiceHeartbeat) -> None:
        place = place_of(event)
        if not event.stopping:
            self._instances[place] = LiveInstance(event.instance, event.service, time.monotonic())
        elif (known := self._instances.get(place)) is not None and known.instance == event.instance:
            del self._instances[place]  # not a successor that already took the place
        self.refresh_services()

    def on_tick(self, tick: Tick, received_at: datetime) -> None:
        schedule = self._label("schedule", tick.schedule or "")
        self.last_fired[schedule] = tick.slot or received_at
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
        """Live instances per service; ``syntx_services_up`` says 0 for an expected one that has none (a
        silent service is a 0, never a series that vanishes)."""
        cutoff = time.monotonic() - self._service_timeout_s
        live: dict[str, int] = {}
        for place, seen in list(self._instances.items()):
            if seen.at < cutoff:
                del self._instances[place]
            else:
                live[seen.service] = live.get(seen.service, 0) + 1
        self._metrics.services_up.clear()
        for service in self._expected:
            self._metrics.services_up.labels(service=self._label("service", service))
        for service, count in live.items():
            self._metrics.services_up.labels(service=self._label("service", service)).inc(count)
        return live

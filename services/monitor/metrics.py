"""Every Prometheus metric the monitor exports, on a registry of its own (tests make a fresh one)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import get_args

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics

from services.monitor.health import REASONS as HEALTH_REASONS
from services.monitor.health import STATES as HEALTH_STATES
from services.monitor.labels import Labels
from services.monitor.reasons import SEVERITY_VALUE
from shared.messaging import GENERATOR_OUTCOMES, JOB_SOURCES, QUARANTINE_REASONS, OverlapOutcome, Severity
from shared.queue import COUNTED_FOLDERS, RESULT_PROBLEMS

QUEUE_STATES = ("STARVING", "LOW", "BALANCED", "HIGH", "OVERFLOW")
SCORE_BUCKETS = (10, 20, 30, 40, 50, 60, 70, 80, 85, 90, 95, 100)
LATENCY_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
TOKEN_DIRECTIONS = ("input", "output")
LAG_BUCKETS = (0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 60)


class MonitorMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        # No `<counter>_created` series: the text format turns each into a gauge nobody queries, and they
        # were a quarter of every scrape's samples (a process-wide switch of prometheus-client).
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = registry
        self.queue_jobs = Gauge("syntx_queue_jobs", "Files per queue folder", ["folder"], registry=registry)
        self.oldest_incoming_age = Gauge(
            "syntx_queue_oldest_incoming_age_seconds", "Age of the oldest waiting job", registry=registry
        )
        self.queue_state = Gauge(
            "syntx_queue_state",
            "1 for the current queue state, 0 for the others",
            ["state"],
            registry=registry,
        )
        self.health = Gauge("syntx_health_ok", "1 when the health is OK", registry=registry)
        self.health_state = Gauge(
            "syntx_health_state", "1 for the current health, 0 for the others", ["state"], registry=registry
        )
        self.health_reason = Gauge(
            "syntx_health_reason",
            "0: the reason does not hold, 1: it holds as a WARNING, 2: as CRITICAL (README: Health)",
            ["reason"],
            registry=registry,
        )
        self.jobs_scored = Counter(
            "syntx_jobs_scored", "Jobs finished with a score", ["wrapper", "status"], registry=registry
        )
        self.job_score = Histogram(
            "syntx_job_score",
            "Scores of finished jobs",
            ["wrapper"],
            buckets=SCORE_BUCKETS,
            registry=registry,
        )
        self.llm_seconds = Histogram(
            "syntx_llm_request_seconds",
            "LLM call time of finished jobs",
            ["wrapper", "backend"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.backend_failures = Counter(
            "syntx_backend_failures",
            "Failed backend attempts (will_retry=false: the job was filed as failed)",
            ["wrapper", "will_retry"],
            registry=registry,
        )
        self.jobs_failed = Counter(
            "syntx_jobs_failed",
            "Jobs filed into error/ without a score",
            ["wrapper", "status"],
            registry=registry,
        )
        self.lease_expiries = Counter(
            "syntx_lease_expiries",
            "Claims taken over after their lease expired",
            ["wrapper"],
            registry=registry,
        )
        self.backend_available = Gauge(
            "syntx_backend_available", "0 while a consumer's backend is down", ["wrapper"], registry=registry
        )
        self.jobs_created = Counter(
            "syntx_jobs_created", "Jobs landed in incoming/", ["source"], registry=registry
        )
        self.producer_generation = Gauge(
            "syntx_producer_generation", "Latest producer generation", registry=registry
        )
        self.producer_produced = Counter(
            "syntx_producer_jobs_produced", "Jobs written by the producer", registry=registry
        )
        self.producer_favoured = Gauge(
            "syntx_producer_favoured",
            "1 for the (category, style) arms the producer currently favours",
            ["arm"],
            registry=registry,
        )
        self.generator_calls = Counter(
            "syntx_producer_generator_calls",
            "Prompts asked of the LLM generator, by outcome (all but used: the template generator wrote it)",
            ["outcome"],
            registry=registry,
        )
        self.generator_tokens = Counter(
            "syntx_producer_generator_tokens",
            "Tokens the LLM generator used",
            ["direction"],
            registry=registry,
        )
        self.generator_cost = Counter(
            "syntx_producer_generator_cost",
            "What the LLM generator's calls cost, in the price table's currency",
            registry=registry,
        )
        self.generator_spent_today = Gauge(
            "syntx_producer_generator_spent_today",
            "The LLM generator's spend on the current UTC day",
            registry=registry,
        )
        self.generator_budget_exhausted = Gauge(
            "syntx_producer_generator_budget_exhausted",
            "1 while the LLM generator's daily budget is used up",
            registry=registry,
        )
        self.producer_arm_share = Gauge(
            "syntx_producer_arm_share",
            "Share of each (category, style) arm among the jobs of the latest generation that produced",
            ["arm"],
            registry=registry,
        )
        self.producer_mean_score = Gauge(
            "syntx_producer_mean_score",
            "Mean score of the results the producer learned at its latest generation that learned any",
            registry=registry,
        )
        self.cleanup_removed = Counter(
            "syntx_cleanup_removed", "Files removed by cleanup", ["kind"], registry=registry
        )
        self.cleanup_quarantined = Counter(
            "syntx_cleanup_quarantined", "Files moved to quarantine/", registry=registry
        )
        self.files_refused = Counter(
            "syntx_files_refused",
            "Files not read as jobs: quarantined, or dot-files in incoming/ left alone (once per consumer)",
            ["reason"],
            registry=registry,
        )
        self.results_untrusted = Counter(
            "syntx_results_untrusted",
            "Result files quarantined by cleanup because they are not results the loop wrote (never learned)",
            ["reason"],
            registry=registry,
        )
        self.cleanup_expired_claims = Counter(
            "syntx_cleanup_expired_claims", "Expired claims cleanup took over", ["outcome"], registry=registry
        )
        self.ticks = Counter("syntx_ticks", "Ticks seen", ["schedule"], registry=registry)
        self.ticks_missed = Counter(
            "syntx_ticks_missed",
            "Scheduled slots that never fired (no scheduler ran)",
            ["schedule"],
            registry=registry,
        )
        self.ticks_overlapped = Counter(
            "syntx_ticks_overlapped",
            "Ticks that arrived during their schedule's previous run: skipped, queued or run alongside",
            ["schedule", "outcome"],
            registry=registry,
        )
        self.tick_lag = Histogram(
            "syntx_tick_lag_seconds",
            "Delay from a tick's scheduled slot to its arrival",
            ["schedule"],
            buckets=LAG_BUCKETS,
            registry=registry,
        )
        self.services_up = Gauge(
            "syntx_services_up", "Live instances per service", ["service"], registry=registry
        )
        self.malformed = Counter(
            "syntx_malformed_messages",
            "Messages the monitor dropped as malformed",
            ["subject"],
            registry=registry,
        )
        self._initialise_labels()

    def _initialise_labels(self) -> None:
        for folder in COUNTED_FOLDERS:
            self.queue_jobs.labels(folder=folder)
        for state in QUEUE_STATES:
            self.queue_state.labels(state=state)
        self.set_health("OK", {})
        for outcome in GENERATOR_OUTCOMES:
            self.generator_calls.labels(outcome=outcome)
        for direction in TOKEN_DIRECTIONS:
            self.generator_tokens.labels(direction=direction)
        for reason in QUARANTINE_REASONS:
            self.files_refused.labels(reason=reason)
        for reason in RESULT_PROBLEMS:
            self.results_untrusted.labels(reason=reason)

    def initialise_wrappers(self, wrappers: Iterable[str]) -> None:
        """Export every configured wrapper's series from the start (0 until something happens)."""
        for wrapper in wrappers:
            for status in ("passed", "rejected"):
                self.jobs_scored.labels(wrapper=wrapper, status=status)
            for will_retry in ("true", "false"):
                self.backend_failures.labels(wrapper=wrapper, will_retry=will_retry)
            for status in ("failed", "malformed"):
                self.jobs_failed.labels(wrapper=wrapper, status=status)
            self.lease_expiries.labels(wrapper=wrapper)
            self.backend_available.labels(wrapper=wrapper).set(1)
            self.job_score.labels(wrapper=wrapper)

    def initialise_backends(self, backends: Iterable[tuple[str, str]]) -> None:
        """Each consumer's LLM call time, per (wrapper, configured backend kind), from the start."""
        for wrapper, backend in backends:
            self.llm_seconds.labels(wrapper=wrapper, backend=backend)

    def initialise_bounded(self, labels: Labels) -> None:
        """Every series whose label values the configuration bounds starts at 0: ``increase()`` sees
        the first event, and a dashboard panel is never empty for want of one."""
        for schedule in labels.values("schedule"):
            self.ticks.labels(schedule=schedule)
            self.ticks_missed.labels(schedule=schedule)
            for outcome in get_args(OverlapOutcome):
                self.ticks_overlapped.labels(schedule=schedule, outcome=outcome)
        for subject in labels.values("subject"):
            self.malformed.labels(subject=subject)
        for kind in labels.values("kind"):
            self.cleanup_removed.labels(kind=kind)
        for outcome in labels.values("outcome"):
            self.cleanup_expired_claims.labels(outcome=outcome)
        for arm in labels.values("arm"):
            self.producer_arm_share.labels(arm=arm)
        for source in JOB_SOURCES:
            self.jobs_created.labels(source=source)

    def set_health(self, current: str, reasons: Mapping[str, Severity]) -> None:
        """The state, and each reason's severity (:data:`SEVERITY_VALUE`; 0 for one that does not hold)."""
        self.health.set(1 if current == "OK" else 0)
        for state in HEALTH_STATES:
            self.health_state.labels(state=state).set(1 if state == current else 0)
        for reason in HEALTH_REASONS:
            severity = reasons.get(reason)
            self.health_reason.labels(reason=reason).set(SEVERITY_VALUE[severity] if severity else 0)

    def set_state(self, current: str) -> None:
        for state in QUEUE_STATES:
            self.queue_state.labels(state=state).set(1 if state == current else 0)

"""Every Prometheus metric the monitor exports, on a registry of its own (tests make a fresh one)."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

QUEUE_STATES = ("STARVING", "LOW", "BALANCED", "HIGH", "OVERFLOW")
FOLDERS = ("incoming", "processing", "processed", "error", "archive", "quarantine", ".tmp")
SCORE_BUCKETS = (10, 20, 30, 40, 50, 60, 70, 80, 85, 90, 95, 100)
LATENCY_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
LAG_BUCKETS = (0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 60)
OTHER_ARM = "other"  # an arm the configuration does not name: one series for all of them


class MonitorMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
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
        self.health = Gauge("syntx_health_ok", "1 when the queue health is OK", registry=registry)
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
        self.arms: frozenset[str] = frozenset()
        self.cleanup_removed = Counter(
            "syntx_cleanup_removed", "Files removed by cleanup", ["kind"], registry=registry
        )
        self.cleanup_quarantined = Counter(
            "syntx_cleanup_quarantined", "Files moved to quarantine/", registry=registry
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
        for folder in FOLDERS:
            self.queue_jobs.labels(folder=folder)
        for state in QUEUE_STATES:
            self.queue_state.labels(state=state)

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

    def initialise_arms(self, arms: Iterable[str]) -> None:
        """The arms the configuration names bound the ``arm`` label; each series starts at 0."""
        self.arms = frozenset(arms)
        for arm in self.arms | {OTHER_ARM}:
            self.producer_arm_share.labels(arm=arm)

    def arm(self, name: str) -> str:
        return name if name in self.arms else OTHER_ARM

    def set_state(self, current: str) -> None:
        for state in QUEUE_STATES:
            self.queue_state.labels(state=state).set(1 if state == current else 0)


def exported_metric_names(registry: CollectorRegistry) -> set[str]:
    """Every sample name the registry exports (``_total``, ``_bucket`` … included)."""
    return {sample.name for family in registry.collect() for sample in family.samples} | {
        family.name for family in registry.collect()
    }

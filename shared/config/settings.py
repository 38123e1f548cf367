"""Configuration: one YAML file (or several, merged in order) plus ``SYNTX_*`` environment overrides.

Precedence, highest first: keyword arguments, environment (``SYNTX_DATA_DIR``,
``SYNTX_CONSUMERS__SIGMA__BATCH=5`` for nested keys), the YAML files named by ``SYNTX_CONFIG``
(``:``-separated, later files override earlier ones), the built-in defaults below.
Settings are built in ``main()`` only; nothing here reads the environment at import.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, ValidationInfo, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)
from pydantic_settings.sources.types import ConfigFileSourceType, Traversable

from shared.config.environment import CONFIG_ENV, supervised_as_problems, unknown_variables
from shared.config.sections import (
    CONSUMER_SCHEDULE_PREFIX,
    CleanupSettings,
    ConsumerSettings,
    LLMSettings,
    LoggingSettings,
    MonitorSettings,
    NatsSettings,
    Overlap,
    ProducerSettings,
    QueueSettings,
    SchedulerSettings,
    ScheduleSettings,
    UpSettings,
    default_consumers,
    default_schedules,
)
from shared.names import clipped
from shared.safe_yaml import YamlRefused, load_yaml_file
from shared.service_table import instance_names

# The shipped config/syntx.yaml, every topic listed, is about 20 KB; a file fifty times that is a mistake.
CONFIG_MAX_BYTES = 1024 * 1024

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG = PROJECT_ROOT / "config" / "syntx.yaml"
DEMO_CONFIG = PROJECT_ROOT / "config" / "demo.yaml"


class Settings(BaseSettings):
    """Everything every service may read. Build it with :func:`load_settings`."""

    model_config = SettingsConfigDict(
        env_prefix="SYNTX_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    data_dir: Path = Path("data")
    timezone: str = "Europe/Berlin"
    nats: NatsSettings = NatsSettings()
    logging: LoggingSettings = LoggingSettings()
    queue: QueueSettings = QueueSettings()
    wrapper_dirs: list[Path] = Field(
        default_factory=list, description="your wrapper directories, read after the built-in wrappers/"
    )
    schedules: dict[str, ScheduleSettings] = Field(default_factory=default_schedules)
    consumers: dict[str, ConsumerSettings] = Field(default_factory=default_consumers)
    producer: ProducerSettings = ProducerSettings()
    monitor: MonitorSettings = MonitorSettings()
    cleanup: CleanupSettings = CleanupSettings()
    scheduler: SchedulerSettings = SchedulerSettings()
    up: UpSettings = UpSettings()
    heartbeat_s: float = Field(15.0, gt=0, description="every service announces itself this often")
    llm: LLMSettings = LLMSettings()
    topics: dict[str, list[str]] = Field(default_factory=dict)
    styles: dict[str, str] = Field(default_factory=dict)
    languages: dict[str, float] = Field(default_factory=lambda: {"de": 1.0})

    @field_validator("consumers", mode="before")
    @classmethod
    def _wrapper_defaults_to_name(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        return {
            name: {"wrapper": name, **spec} if isinstance(spec, dict) and "wrapper" not in spec else spec
            for name, spec in value.items()
        }

    @field_validator("heartbeat_s")
    @classmethod
    def _beats_within_the_monitors_timeout(cls, value: float, info: ValidationInfo) -> float:
        monitor = info.data.get("monitor")
        if isinstance(monitor, MonitorSettings) and value >= monitor.service_timeout_s:
            raise ValueError(
                f"must be below monitor.service_timeout_s ({monitor.service_timeout_s:g}), "
                "or live services count as gone"
            )
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown IANA time zone {value!r}") from exc
        return value

    @field_validator("languages")
    @classmethod
    def _positive_weights(cls, value: dict[str, float]) -> dict[str, float]:
        if not value or any(weight <= 0 for weight in value.values()):
            raise ValueError("need at least one language, every weight > 0")
        return value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def overlap(self, schedule: str) -> Overlap:
        """A schedule's overlap policy; unset: ``skip`` for a consumer's schedule, ``queue_one`` else."""
        spec = self.schedules.get(schedule)
        if spec is not None and spec.overlap is not None:
            return spec.overlap
        return "skip" if schedule.startswith(CONSUMER_SCHEDULE_PREFIX) else "queue_one"

    @property
    def queue_dir(self) -> Path:
        return self.data_dir / "queue"

    @property
    def logs_dir(self) -> Path:
        return self.data_dir / "logs"

    @property
    def catalog_dirs(self) -> list[Path]:
        """Where wrappers and formats come from: the built-in ones, then yours (which may override)."""
        return [PROJECT_ROOT / "wrappers", *self.wrapper_dirs]


class ConfigError(Exception):
    """A configuration problem, already phrased for the operator (one line per problem)."""


def config_paths(environ: dict[str, str] | None = None) -> list[Path]:
    env = os.environ if environ is None else environ
    raw = env.get(CONFIG_ENV, "")
    return [Path(part) for part in raw.split(":") if part] or [DEFAULT_CONFIG]


def read_config_file(path: Path) -> dict[str, Any]:
    """One configuration layer, read by the project's one bounded YAML reader (no aliases, at most
    :data:`CONFIG_MAX_BYTES`); an empty file is an empty layer."""
    try:
        loaded = load_yaml_file(path, CONFIG_MAX_BYTES)
    except FileNotFoundError as exc:
        raise ConfigError(f"config file {path} does not exist (set {CONFIG_ENV} to another)") from exc
    except OSError as exc:  # a directory, no permission
        reason = exc.strerror or type(exc).__name__
        raise ConfigError(
            f"config file {path} cannot be read: {reason} (set {CONFIG_ENV} to a file)"
        ) from exc
    except YamlRefused as exc:
        raise ConfigError(f"config file {path} {exc.reason}") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top, not {type(loaded).__name__}")
    named = [key for key in loaded if not isinstance(key, str)]
    if named:
        key = clipped(repr(named[0]))
        raise ConfigError(f"config file {path} has a key that is not a name at the top: {key}")
    return loaded


def load_settings(paths: list[Path] | None = None, **overrides: Any) -> Settings:
    """Validate defaults < YAML files < ``SYNTX_*`` environment < ``overrides``.

    Raises :class:`ConfigError` with one operator-readable line per problem.
    """
    from pydantic import ValidationError

    from shared.config.errors import describe_validation_error

    settings_type = _with_yaml_below_env(paths if paths is not None else config_paths())
    try:
        settings = settings_type(**overrides)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc, Settings)) from exc
    problems = [
        *unknown_variables(settings, os.environ),
        *supervised_as_problems(os.environ),
        *instance_clashes(settings),
    ]
    if problems:
        raise ConfigError("\n".join(problems))
    return settings


def instance_clashes(settings: Settings) -> list[str]:
    """``sigma`` with ``instances: 2`` runs a second process called ``consumer.sigma-2`` (its output, its
    log file): a consumer named ``sigma-2`` beside it is a mistake, one line each."""
    return [
        f"config: consumers.{instance} has the name of instance {number} of consumers.{name} "
        f"(instances: {consumer.instances}); rename it"
        for name, consumer in settings.consumers.items()
        for number, instance in enumerate(instance_names(name, consumer.instances)[1:], start=2)
        if instance in settings.consumers
    ]


class _BoundedYamlSource(YamlConfigSettingsSource):
    """pydantic-settings' YAML layers (the files in order, deep-merged) read by :func:`read_config_file`.

    The library's own reading is replaced: it builds whatever ``yaml.safe_load`` builds (aliases, a
    file of any size) and passes over a named file that does not exist, which here is a mistake.
    """

    @staticmethod
    def _existing_files(files: ConfigFileSourceType | None) -> list[Path | Traversable]:
        return [Path(str(file)) for file in files] if isinstance(files, list) else []

    def _read_file(self, file_path: Path | Traversable) -> dict[str, Any]:
        return read_config_file(Path(str(file_path)))

    def __call__(self) -> dict[str, Any]:
        """The merged layers as written: a key is matched exactly (as nested keys are), not ignoring case."""
        return self.yaml_data


def _with_yaml_below_env(paths: list[Path]) -> type[Settings]:
    class YamlBackedSettings(Settings):
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            yaml_settings = _BoundedYamlSource(settings_cls, list(paths), deep_merge=True)
            return (init_settings, env_settings, yaml_settings)

    return YamlBackedSettings

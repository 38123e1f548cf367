"""Configuration: YAML files plus ``SYNTX_*`` environment overrides, validated into typed sections."""

from __future__ import annotations

from shared.config.environment import (
    FAIL_TASKS_ENV,
    FAILPOINTS_ENV,
)
from shared.config.sections import (
    BackendSettings,
    BackPressureSettings,
    CleanupSettings,
    ConsumerSettings,
    GeneratorSettings,
    HealthSettings,
    LearningSettings,
    LoggingSettings,
    ModelPrice,
    MonitorSettings,
    NatsSettings,
    Overlap,
    QueueSettings,
    RetrySettings,
    SchedulerSettings,
    ScheduleSettings,
    TimeoutSettings,
    UpSettings,
)
from shared.config.settings import (
    CONFIG_ENV,
    DEFAULT_CONFIG,
    DEMO_CONFIG,
    PROJECT_ROOT,
    ConfigError,
    Settings,
    config_paths,
    load_settings,
)

__all__ = [
    "FAILPOINTS_ENV",
    "FAIL_TASKS_ENV",
    "BackPressureSettings",
    "BackendSettings",
    "CONFIG_ENV",
    "CleanupSettings",
    "ConfigError",
    "ConsumerSettings",
    "DEFAULT_CONFIG",
    "DEMO_CONFIG",
    "GeneratorSettings",
    "HealthSettings",
    "LearningSettings",
    "LoggingSettings",
    "ModelPrice",
    "MonitorSettings",
    "NatsSettings",
    "Overlap",
    "PROJECT_ROOT",
    "QueueSettings",
    "RetrySettings",
    "ScheduleSettings",
    "SchedulerSettings",
    "Settings",
    "TimeoutSettings",
    "UpSettings",
    "config_paths",
    "load_settings",
]

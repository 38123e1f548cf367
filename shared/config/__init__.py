"""Configuration: YAML files plus ``SYNTX_*`` environment overrides, validated into typed sections."""

from __future__ import annotations

from shared.config.sections import (
    BackendSettings,
    BackPressureSettings,
    CleanupSettings,
    ConsumerSettings,
    GeneratorSettings,
    LearningSettings,
    LoggingSettings,
    MonitorSettings,
    NatsSettings,
    OfflineTaste,
    QueueSettings,
    RetrySettings,
    ScheduleSettings,
    TasteDrift,
    TimeoutSettings,
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
    "BackPressureSettings",
    "BackendSettings",
    "CONFIG_ENV",
    "CleanupSettings",
    "ConfigError",
    "ConsumerSettings",
    "DEFAULT_CONFIG",
    "DEMO_CONFIG",
    "GeneratorSettings",
    "LearningSettings",
    "LoggingSettings",
    "MonitorSettings",
    "NatsSettings",
    "OfflineTaste",
    "PROJECT_ROOT",
    "QueueSettings",
    "RetrySettings",
    "ScheduleSettings",
    "Settings",
    "TasteDrift",
    "TimeoutSettings",
    "config_paths",
    "load_settings",
]

"""What every service process shares: settings and logging at start, one stop event, presence on the bus."""

from __future__ import annotations

from shared.service.runner import (
    CONFIG_EXIT_CODE,
    instance_name,
    presence,
    service_main,
)
from shared.service.tasks import FAIL_ENV, PlantedFailure, ServiceTasks, reported

__all__ = [
    "CONFIG_EXIT_CODE",
    "FAIL_ENV",
    "PlantedFailure",
    "ServiceTasks",
    "instance_name",
    "presence",
    "reported",
    "service_main",
]

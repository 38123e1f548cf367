"""What every service process shares: settings and logging at start, one stop event, presence on the bus."""

from __future__ import annotations

from shared.service.logs import use_zone_for_command
from shared.service.names import (
    SERVICES,
    service_names,
)
from shared.service.runner import (
    CONFIG_EXIT_CODE,
    instance_host,
    instance_name,
    presence,
    queue_state_sender,
    service_main,
)
from shared.service.tasks import FAIL_ENV, PlantedFailure, ServiceTasks, reported

__all__ = [
    "CONFIG_EXIT_CODE",
    "FAIL_ENV",
    "PlantedFailure",
    "SERVICES",
    "ServiceTasks",
    "instance_host",
    "instance_name",
    "presence",
    "queue_state_sender",
    "reported",
    "service_main",
    "service_names",
    "use_zone_for_command",
]

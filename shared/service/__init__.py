"""What every service process shares: settings and logging at start, one stop event, presence on the bus."""

from __future__ import annotations

from shared.service.names import (
    SERVICES,
    service_names,
)
from shared.service.runner import (
    CONFIG_EXIT_CODE,
    instance_name,
    presence,
    service_main,
)

__all__ = ["CONFIG_EXIT_CODE", "SERVICES", "instance_name", "presence", "service_main", "service_names"]

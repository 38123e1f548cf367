"""The services of the system and the names their instances go by (heartbeats, logs, schedules)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from shared.messaging import subjects

SERVICES: Final = ("scheduler", "producer", "consumer", "monitor", "cleanup")


def service_names(wrappers: Iterable[str]) -> list[str]:
    """Every service one system runs: each consumer under ``consumer.<wrapper>``."""
    consumers = [subjects.consumer_schedule(wrapper) for wrapper in wrappers]
    return [name for service in SERVICES for name in (consumers if service == "consumer" else [service])]

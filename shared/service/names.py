"""The names the instances of the services go by (heartbeats, logs, schedules), from the service table."""

from __future__ import annotations

from collections.abc import Iterable

from shared.messaging import subjects
from shared.service_table import SERVICE_TABLE, SERVICES

__all__ = ["SERVICES", "service_names"]


def service_names(wrappers: Iterable[str]) -> list[str]:
    """Every service one system runs: each consumer under ``consumer.<wrapper>``."""
    consumers = [subjects.consumer_schedule(wrapper) for wrapper in wrappers]
    return [name for row in SERVICE_TABLE for name in (consumers if row.per_consumer else [row.name])]

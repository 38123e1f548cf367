"""The services of the system, one row each: what runs, how, under which name, on which default schedules.

Everything that lists services reads this table: the service names (heartbeats, logs, ``syntx run``,
``syntx health``, the monitor's ``service`` label), the default schedules of the configuration and
``syntx up``'s children. docker-compose.yml is data and cannot read it; a test holds it to the table.
Adding a service: its package ``services/<name>/`` (run as ``python -m services.<name>``, announcing itself
with ``presence``: the monitor expects every service of the table) and one row here; its compose service
and its settings section, if it has one, are checked against this table.

A leaf module, below the configuration (which reads the default schedules from here).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final


@dataclass(frozen=True)
class ServiceRow:
    name: str  # heartbeats, logs/<name>.log, `syntx run NAME`; a consumer's: consumer.<wrapper>
    module: str  # runs as `python -m <module>`
    settings: str | None  # the field of Settings that holds its section; None: it has no settings
    schedules: Mapping[str, str] = field(default_factory=dict)  # default cron by schedule name
    per_consumer: bool = False  # one per configured consumer (its `instances`), started with --wrapper <name>
    cluster_replicas: int = 1  # instances `syntx up --cluster N` runs (see instance_names)


SERVICE_TABLE: Final = (
    ServiceRow("scheduler", "services.scheduler", "scheduler", cluster_replicas=2),
    ServiceRow("producer", "services.producer", "producer", {"producer": "0 */2 * * *"}),
    ServiceRow(
        "consumer",
        "services.consumer",
        "consumers",
        {"consumer.syntex_system": "0 3 * * *", "consumer.sigma": "0 4,10,16,22 * * *"},
        per_consumer=True,
    ),
    ServiceRow("monitor", "services.monitor", "monitor", {"monitor": "0 * * * *"}),
    ServiceRow("cleanup", "services.cleanup", "cleanup", {"cleanup": "0 2 * * *"}),
)

SERVICES: Final = tuple(row.name for row in SERVICE_TABLE)


def service_row(name: str) -> ServiceRow | None:
    """The row of the service called ``name`` (``consumer``, not ``consumer.<wrapper>``), if any."""
    return next((row for row in SERVICE_TABLE if row.name == name), None)


def instance_names(service: str, count: int) -> list[str]:
    """What ``syntx up`` calls the ``count`` processes of one service: ``service``, ``service-2``, … (the
    prefix of their output lines; each writes its own ``logs/<that name>.log``). All of them announce
    themselves as ``service``."""
    return [service, *(f"{service}{INSTANCE_MARK}{index}" for index in range(2, count + 1))]


INSTANCE_MARK = "-"  # between a service's name and the number of its second, third, … instance


def default_crons() -> dict[str, str]:
    """Every default schedule with its cron, in the table's order."""
    return {schedule: cron for row in SERVICE_TABLE for schedule, cron in row.schedules.items()}

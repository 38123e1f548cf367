"""``syntx health --service NAME``: is that service alive and connected to NATS?

The check asks every service for a heartbeat (``syntx.service.ping``) and waits for one from NAME. By default
only an instance on this host counts (its instance name is ``service@hostname:pid``), so a container's
healthcheck speaks for the service in that container, not for a replica elsewhere.
"""

from __future__ import annotations

import asyncio
import socket
import sys
from dataclasses import dataclass

from shared.config import Settings
from shared.messaging import BusError, ServiceHeartbeat, heartbeat_heard, shown_url
from shared.service import service_names
from shared.service_table import SERVICE_TABLE
from syntx import exits
from syntx.cli.output import usage
from syntx.cli.parser import Invocation, Subparsers, runs
from syntx.suggest import unknown

DEFAULT_WAIT_S = 5.0


def register(commands: Subparsers) -> None:
    parser = commands.add_parser(
        "health", help="exit 0 if the service answers with a heartbeat (a container healthcheck)"
    )
    parser.add_argument("--service", required=True, help=_service_choices())
    parser.add_argument(
        "--wait", type=float, default=DEFAULT_WAIT_S, help="seconds to wait for the heartbeat"
    )
    parser.add_argument("--any-host", action="store_true", help="count an instance on any host")
    runs(parser, run)


def _service_choices() -> str:
    """``scheduler, producer, monitor, cleanup or consumer.<name>``: the service table's names."""
    alone = [row.name for row in SERVICE_TABLE if not row.per_consumer]
    per_consumer = [f"{row.name}.<name>" for row in SERVICE_TABLE if row.per_consumer]
    return f"{', '.join(alone)} or {', '.join(per_consumer)}"


def run(call: Invocation) -> int:
    args, settings = call.args, call.settings
    known = service_names(settings.consumers)
    if args.service not in known:
        return usage(f"syntx health: {unknown('service', args.service, known)}")
    wanted = heartbeat_filter(args.service, args.any_host)
    return asyncio.run(health(settings, wanted, args.wait))


@dataclass(frozen=True)
class HeartbeatFilter:
    service: str
    host: str | None  # None: any host

    def matches(self, beat: ServiceHeartbeat) -> bool:
        if beat.service != self.service or beat.stopping:
            return False
        return self.host is None or beat.instance.startswith(f"{self.service}@{self.host}:")

    def describe(self) -> str:
        return self.service if self.host is None else f"{self.service} on {self.host}"


def heartbeat_filter(service: str, any_host: bool) -> HeartbeatFilter:
    return HeartbeatFilter(service=service, host=None if any_host else socket.gethostname())


async def health(settings: Settings, wanted: HeartbeatFilter, wait_s: float) -> int:
    """0 when ``wanted`` answers within ``wait_s``; otherwise one line on stderr and a non-zero code."""
    url = shown_url(settings.nats.effective_url)
    try:
        heard = await heartbeat_heard(settings.nats, "syntx-health", wanted.matches, wait_s)
    except (OSError, TimeoutError, BusError) as exc:
        return _report(f"cannot reach NATS at {url} ({exc or type(exc).__name__})", exits.NOT_REACHABLE)
    if not heard:
        return _report(
            f"no heartbeat from {wanted.describe()} within {wait_s:g} s via {url}", exits.NOTHING_DONE
        )
    return exits.OK


def _report(line: str, code: int) -> int:
    sys.stderr.write(f"syntx health: {line}\n")
    return code

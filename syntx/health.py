"""``syntx health --service NAME``: is that service alive and connected to NATS?

The check asks every service for a heartbeat (``syntx.service.ping``) and waits for one from NAME. By default
only an instance on this host counts (its instance name is ``service@hostname:pid``), so a container's
healthcheck speaks for the service in that container, not for a replica elsewhere.
"""

from __future__ import annotations

import socket
import sys
from dataclasses import dataclass

from shared.config import Settings
from shared.messaging import BusError, ServiceHeartbeat, heartbeat_heard, shown_url
from syntx import exits


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

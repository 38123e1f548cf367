"""The service runner: settings and logging in ``main()``, SIGTERM/SIGINT -> one stop event."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime

from shared.config import SUPERVISED_AS_ENV, ConfigError, Settings, load_settings
from shared.messaging import (
    Bus,
    Delivery,
    QueueState,
    ServiceHeartbeat,
    StoppedWhileConnecting,
    subjects,
    utc_now,
)
from shared.queue import GateReport
from shared.service.logs import setup_logging
from shared.service.tasks import ServiceTasks
from shared.timing import set_within

log = logging.getLogger(__name__)

ServiceBody = Callable[[Settings, asyncio.Event], Awaitable[None]]
CONFIG_EXIT_CODE = 2
# Pings are answered at most this often: one ping gets one heartbeat (at once), a flood of pings a few,
# not one each. Well below any wait for an answer (`syntx health`, a monitor that starts).
PING_ANSWER_GAP_S = 1.0


def load_or_exit() -> Settings:
    """Build the settings; on a bad value print one line per problem and exit with code 2."""
    try:
        return load_settings()
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)  # noqa: T201 - logging is not set up before the settings
        raise SystemExit(CONFIG_EXIT_CODE) from None


def service_main(service: str, body: ServiceBody) -> None:
    settings = load_or_exit()
    log_name = supervised_as() or service  # a second instance under `syntx up` has its own log file
    setup_logging(service, settings.logging, settings.logs_dir, settings.zone, log_name)
    log.info("starting %s (data %s)", service, settings.data_dir.resolve())
    try:
        asyncio.run(_serve(settings, body))
    except ConfigError as exc:
        log.error("%s", exc)
        raise SystemExit(CONFIG_EXIT_CODE) from None
    except StoppedWhileConnecting as exc:
        log.info("%s", exc)
    except Exception:
        log.exception("%s crashed", service)
        raise SystemExit(1) from None
    log.info("%s stopped", service)


async def _serve(settings: Settings, body: ServiceBody) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await body(settings, stop)


def instance_name(service: str) -> str:
    return f"{service}@{socket.gethostname()}:{os.getpid()}"


def instance_host(instance: str) -> str:
    """The host in an :func:`instance_name` (``consumer.sigma@box:4242`` -> ``box``)."""
    return instance.rsplit(":", 1)[0].partition("@")[2]


def supervised_as() -> str | None:
    """The name `syntx up` runs this process under (``consumer.sigma-2``), or None outside it."""
    return os.environ.get(SUPERVISED_AS_ENV) or None


@asynccontextmanager
async def presence(bus: Bus, service: str, heartbeat_s: float) -> AsyncIterator[None]:
    """Announce the service as ready now, every ``heartbeat_s`` and whenever asked (a monitor that starts
    later pings ``syntx.service.ping``; pings that come within :data:`PING_ANSWER_GAP_S` of an answer
    share the next one); say goodbye on exit. A failing heartbeat stops the service."""
    started = utc_now()
    instance = instance_name(service)
    asked = asyncio.Event()

    async def on_ping(_ping: Delivery) -> None:
        asked.set()

    await bus.subscribe(subjects.SERVICE_PING, on_ping)
    await _beat(bus, service, instance, started, stopping=False)
    log.info("%s connected and ready (%s)", service, instance)
    async with ServiceTasks() as tasks:
        beats = _beat_forever(bus, service, instance, started, heartbeat_s, asked)
        beating = tasks.start(beats, f"{service} heartbeat")
        try:
            yield
        finally:
            beating.cancel()
            await _beat(bus, service, instance, started, stopping=True)


async def _beat_forever(
    bus: Bus, service: str, instance: str, started: datetime, period_s: float, asked: asyncio.Event
) -> None:
    """A heartbeat every period, and one as soon as a ping asks (then none for the answer gap)."""
    while True:
        await set_within(asked, period_s)
        asked.clear()
        await _beat(bus, service, instance, started, stopping=False)
        await asyncio.sleep(PING_ANSWER_GAP_S)  # a rate limit, not a wait for an event


async def _beat(bus: Bus, service: str, instance: str, started: datetime, *, stopping: bool) -> None:
    beat = ServiceHeartbeat(
        service=service,
        instance=instance,
        started_at=started,
        stopping=stopping,
        supervised_as=supervised_as(),
    )
    try:  # not flushed: the client sends it at once, and a flush waits with asyncio.wait_for (see set_within)
        await bus.emit(subjects.SERVICE_HEARTBEAT, beat)
    except Exception as exc:
        log.debug("heartbeat not sent: %s", exc)


def queue_state_sender(bus: Bus, service: str, instance: str) -> Callable[[GateReport], Awaitable[None]]:
    """What the queue gate of ``instance`` reports, sent as a ``queue.state`` event."""

    async def send(report: GateReport) -> None:
        await bus.emit(subjects.QUEUE_STATE, QueueState.of(service, instance, report))

    return send

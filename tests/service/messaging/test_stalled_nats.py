"""A nats-server that stops answering without closing (SIGSTOP), then answers again (SIGCONT).

nats-py 2.16 loses its reader when a PONG arrives for a flush that gave up waiting (the first test shows
it with nats-py's own client; ``shared/messaging/connection.py`` explains it and mends it). The services
notice a stalled server within seconds (client pings), say so in ``/healthz``, and turn again within
seconds of the server answering.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import nats.aio.client
import nats.errors
import pytest

from services.monitor.app import run as run_monitor
from services.producer.app import run as run_producer
from services.scheduler.app import run as run_scheduler
from shared.config import DEFAULT_CONFIG, NatsSettings, Settings, load_settings
from shared.messaging import ProducerGeneration, connect, subjects
from shared.messaging.connection import Client
from syntx import exits
from tests.support.cli import syntx
from tests.support.harness import (
    HEARTBEATS,
    EventLog,
    ServiceRun,
    behind_the_bus,
    free_port,
    observer,
    running,
)
from tests.support.natsserver import NatsServer

PAUSE_S = 30.0  # the fault as it was found: a nats-server stopped for 30 s
WAIT_S = 1  # seconds a flush waits before it gives up, while the server is stopped
NOTICED_WITHIN_S = 20.0  # shipped client pings: 5 s, 2 unanswered (10-15 s), and room for a busy machine
RESUMED_WITHIN_S = 20.0  # "within seconds" of the server answering (it was 5 min 17 s)
FIGURES = "chaos"  # tests/conftest.py prints what a test records under this name


async def until(condition: Callable[[], bool], within_s: float) -> None:
    async with asyncio.timeout(within_s):
        while not condition():  # noqa: ASYNC110 - the client offers no event for these states
            await asyncio.sleep(0.05)


async def test_nats_py_stops_reading_when_a_flush_that_gave_up_gets_its_pong(nats_server: NatsServer) -> None:
    """The fault in nats-py itself (its private reader task is looked at to show it). Should this test
    fail, nats-py has mended the fault: ``shared.messaging.connection.Client`` and this test can go."""
    nc = nats.aio.client.Client()
    await nc.connect(nats_server.url, allow_reconnect=False)
    try:
        with nats_server.paused(), pytest.raises(nats.errors.FlushTimeoutError):
            await nc.flush(timeout=WAIT_S)
        # Resumed, the server answers the PING; its PONG meets the future the flush cancelled.
        reading = nc._reading_task
        assert reading is not None
        await asyncio.wait_for(asyncio.shield(reading), timeout=10)
        assert nc.is_connected  # the client still says so …
        with pytest.raises(nats.errors.TimeoutError):  # … but hears nothing, not even a PONG
            await nc.rtt(timeout=1)
    finally:
        await asyncio.wait_for(nc.close(), timeout=10)


async def test_our_client_reads_on_after_a_late_pong(nats_server: NatsServer) -> None:
    nc, publisher = Client(), Client()
    await nc.connect(nats_server.url, allow_reconnect=False)
    await publisher.connect(nats_server.url, allow_reconnect=False)
    received = asyncio.Event()

    async def on_message(_msg: object) -> None:
        received.set()

    await nc.subscribe("stall.test", cb=on_message)
    await nc.flush()
    try:
        with nats_server.paused(), pytest.raises(nats.errors.FlushTimeoutError):
            await nc.flush(timeout=WAIT_S)
        await nc.flush(timeout=10)  # the late PONG was dropped, this one answered
        await publisher.publish("stall.test", b"after the stall")
        await publisher.flush()
        await asyncio.wait_for(received.wait(), timeout=10)
    finally:
        await nc.close()
        await publisher.close()


async def test_a_stalled_server_is_a_lost_connection_and_the_bus_reconnects_when_it_answers(
    nats_server: NatsServer,
) -> None:
    settings = NatsSettings(
        url=nats_server.url, ping_interval_s=0.5, max_outstanding_pings=2, connect_timeout_s=1
    )
    async with connect(settings, name="stall test") as bus, behind_the_bus(settings, "echo") as echoing:

        async def echo(msg: Any) -> None:
            await msg.respond(msg.data)

        await echoing.subscribe("stall.echo", cb=echo)
        with nats_server.paused():
            await until(lambda: bus.link.down_for_s() is not None, within_s=10)
            assert not bus.connected
            await until(lambda: bus.link.problem != "", within_s=10)  # a reconnect failed, and says why
        await until(lambda: bus.connected and echoing.is_connected, within_s=15)
        await echoing.flush()  # its subscription is back on the server
        assert bus.link.down_for_s() is None
        assert await bus.request("stall.echo", b"again", wait_s=5) == b"again"


def _generations(events: EventLog) -> int:
    return len(events.of(ProducerGeneration))


async def _health(url: str) -> tuple[int, dict[str, Any]]:
    async with httpx.AsyncClient() as http:
        reply = await http.get(f"{url}/healthz", timeout=5)
    body: dict[str, Any] = reply.json()
    return reply.status_code, body


async def _health_until(url: str, condition: Callable[[int, dict[str, Any]], bool], within_s: float) -> None:
    async with asyncio.timeout(within_s):
        while not condition(*await _health(url)):  # noqa: ASYNC110 - /healthz is asked, not waited on
            await asyncio.sleep(0.2)


def _codes(body: dict[str, Any]) -> set[str]:
    return {reason["code"] for reason in body["reasons"]}


@pytest.mark.timeout(150)
async def test_services_turn_again_within_seconds_of_a_30_s_stall_and_health_says_it_meanwhile(
    tmp_path: Path, nats_server: NatsServer, record_property: Callable[[str, object], None]
) -> None:
    port = free_port()
    idle = {"enabled": False}
    settings = load_settings(
        [DEFAULT_CONFIG],
        data_dir=tmp_path / "data",
        nats={"url": nats_server.url},  # the shipped client pings and reconnect timings
        monitor={"host": "127.0.0.1", "port": port},
        schedules={
            "producer": {"cron": "@every 1s"},
            "monitor": idle,
            "cleanup": idle,
            "consumer.sigma": idle,
            "consumer.syntex_system": idle,
        },
    )
    services: dict[str, ServiceRun] = {
        "scheduler": run_scheduler,
        "producer": run_producer,
        "monitor": run_monitor,
    }
    url = f"http://127.0.0.1:{port}"
    async with (
        observer(nats_server.url, HEARTBEATS, subjects.PRODUCER_GENERATION) as (_nc, events),
        running(settings, services, events),
    ):
        await events.wait_for(lambda _seen: _generations(events) >= 1)  # ticks reach the producer
        with nats_server.paused():
            stopped = time.monotonic()
            await _health_until(url, lambda code, body: code == 503, NOTICED_WITHIN_S)
            noticed = time.monotonic() - stopped
            code, body = await _health(url)
            assert (code, body["nats"]) == (503, "down")
            assert "nats_down" in _codes(body)
            await asyncio.sleep(max(0.0, stopped + PAUSE_S - time.monotonic()))  # the fault lasts 30 s
        resumed, before = time.monotonic(), _generations(events)
        await events.wait_for(lambda _seen: _generations(events) > before, within_s=RESUMED_WITHIN_S)
        turned = time.monotonic() - resumed
        await _health_until(url, lambda code, body: code == 200 and "nats_down" not in _codes(body), 10)
    figures = f"noticed after {noticed:.1f} s; a tick taken up {turned:.1f} s after SIGCONT"
    record_property(FIGURES, f"nats-server stopped for {PAUSE_S:.0f} s: {figures}")


def test_syntx_status_says_nats_does_not_answer_while_it_is_stopped(
    with_nats: Settings,
    nats_server: NatsServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("SYNTX_NATS__CONNECT_TIMEOUT_S", "1")
    with nats_server.paused():
        assert syntx("status") == exits.NOT_REACHABLE
    line = capsys.readouterr().err.strip()
    assert line == (
        f"syntx status: NATS at {nats_server.url} accepts connections but does not answer (a stopped or "
        "overloaded nats-server?); the services reconnect by themselves once it answers"
    )

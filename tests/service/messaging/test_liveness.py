"""A monitor that starts after the other services still lists them as live (it pings; they answer); a
burst of pings gets one heartbeat per service, not one each."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from services.monitor.app import run as run_monitor
from services.producer.app import run as run_producer
from shared.config import DEFAULT_CONFIG, Settings, load_settings
from shared.messaging import Event, ServiceHeartbeat, subjects
from shared.service.runner import PING_ANSWER_GAP_S
from tests.support.harness import HEARTBEATS, free_port, observer, running
from tests.support.natsserver import NatsServer


def _beats(service: str, events: list[Event]) -> int:
    return sum(isinstance(e, ServiceHeartbeat) and e.service == service and not e.stopping for e in events)


def _unscheduled(tmp_path: Path, nats_server: NatsServer, **more: Any) -> Settings:
    """The shipped configuration on ``nats_server`` with no producer or monitor ticks."""
    return load_settings(
        [DEFAULT_CONFIG],
        data_dir=tmp_path / "data",
        nats={"url": nats_server.url},
        schedules={name: {"enabled": False} for name in ("producer", "monitor")},
        **more,
    )


async def test_a_late_monitor_lists_services_that_started_before_it(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    settings = _unscheduled(tmp_path, nats_server, monitor={"host": "127.0.0.1", "port": free_port()})
    async with (
        observer(nats_server.url, HEARTBEATS) as (nc, events),
        running(settings, {"producer": run_producer}, events),  # entered (and ready) first
        running(settings, {"monitor": run_monitor}, events),
    ):
        # The answer to the ping, well before the next periodic heartbeat (heartbeat_s).
        await events.wait_for(lambda seen: _beats("producer", seen) >= 2, within_s=5)
        reply = json.loads((await nc.request(subjects.STATUS, b"", timeout=5)).data)
    assert reply["services"] == {"producer": 1, "monitor": 1}


async def test_a_burst_of_pings_is_answered_with_one_heartbeat_not_one_each(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    settings = _unscheduled(tmp_path, nats_server, heartbeat_s=30)  # no periodic heartbeat meanwhile
    async with (
        observer(nats_server.url, HEARTBEATS) as (nc, events),
        running(settings, {"producer": run_producer}, events),
    ):
        before = _beats("producer", events.events)
        for _ in range(100):
            await nc.publish(subjects.SERVICE_PING, b"")
        await nc.flush()
        await events.wait_for(lambda seen: _beats("producer", seen) > before, within_s=5)  # answered at once
        with pytest.raises(TimeoutError):  # and not again and again: at most one more, after the gap
            await events.wait_for(
                lambda seen: _beats("producer", seen) > before + 2, within_s=3 * PING_ANSWER_GAP_S
            )

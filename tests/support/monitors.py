"""The monitor in tests: its settings, and the monitor serving over a real nats-server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from nats.aio.client import Client
from prometheus_client import CollectorRegistry

from services.monitor.app import Monitor
from shared.config import DEFAULT_CONFIG, Settings, load_settings
from shared.messaging import connect
from tests.support.harness import HEARTBEATS, observer
from tests.support.natsserver import NatsServer


def monitor_settings(tmp_path: Path, nats_server: NatsServer, port: int) -> Settings:
    """The shipped config on ``nats_server``, the monitor on loopback ``port``, no reconcile during a test."""
    return load_settings(
        [DEFAULT_CONFIG],
        data_dir=tmp_path / "data",
        nats={"url": nats_server.url},
        monitor={"host": "127.0.0.1", "port": port, "reconcile_s": 3600},
    )


@asynccontextmanager
async def monitor_serving(settings: Settings) -> AsyncIterator[tuple[Monitor, Client]]:
    """A monitor with its own registry, serving once its first heartbeat is seen; stopped on the way out."""
    assert settings.nats.url
    monitor = Monitor(settings, CollectorRegistry())
    stop = asyncio.Event()
    async with (
        observer(settings.nats.url, HEARTBEATS) as (nc, events),
        connect(settings.nats, name="monitor") as bus,
    ):
        task = asyncio.create_task(monitor.serve(bus, stop))
        await events.wait_for(lambda seen: any(getattr(e, "service", "") == "monitor" for e in seen))
        try:
            yield monitor, nc
        finally:
            stop.set()
            await asyncio.wait_for(task, timeout=30)

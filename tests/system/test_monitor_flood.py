"""100,000 files dropped into ``incoming/``: the monitor's memory stays where it was, and its count is
exact within seconds of the last one (the monitor as its own process, against a real nats-server)."""

from __future__ import annotations

import asyncio
import re
import signal
import sys
import time
from pathlib import Path

import httpx
import pytest

from benchmarks.procs import peak_rss_mb
from shared.config import CONFIG_ENV, DEFAULT_CONFIG
from shared.queue import INCOMING
from tests.support.harness import flood
from tests.support.natsserver import NatsServer
from tests.support.up import ended, line_with, process_environment, started

FILES = 100_000
GROWTH_MAX_MB = 30.0  # it grew by ~150 MB: every waiting name kept, and notifications piled up
EXACT_WITHIN_S = 15.0  # it was up to 55 % high, exact only after 12-30 s
INCOMING_SERIES = re.compile(r'^syntx_queue_jobs\{folder="incoming"\} (\S+)$', re.M)


async def _incoming(http: httpx.AsyncClient, url: str) -> int:
    match = INCOMING_SERIES.search((await http.get(url, timeout=5)).text)
    assert match is not None
    return int(float(match.group(1)))


@pytest.mark.timeout(600)
async def test_a_flood_into_incoming_costs_the_monitor_no_memory_and_is_counted_exactly(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    env = process_environment(tmp_path, SYNTX_NATS__URL=nats_server.url, SYNTX_MONITOR__HOST="127.0.0.1")
    env[CONFIG_ENV] = str(DEFAULT_CONFIG)
    metrics = f"http://127.0.0.1:{env['SYNTX_MONITOR__PORT']}/metrics"
    async with (
        started(sys.executable, "-m", "services.monitor", env=env) as monitor,
        httpx.AsyncClient() as http,
    ):
        seen: list[bytes] = []
        await line_with(monitor, b"connected and ready", seen, line_s=30)
        at_rest = peak_rss_mb(monitor.pid) or 0.0
        await asyncio.to_thread(flood, tmp_path / "data" / "queue" / INCOMING, FILES)
        flooded = time.monotonic()
        async with asyncio.timeout(EXACT_WITHIN_S):
            while await _incoming(http, metrics) != FILES:  # noqa: ASYNC110 - the count is asked for
                await asyncio.sleep(0.2)
        exact_after = time.monotonic() - flooded
        peak = peak_rss_mb(monitor.pid) or 0.0
        monitor.send_signal(signal.SIGTERM)
        code, output = await ended(monitor, seen, seconds=30)
    assert code == 0, output
    assert peak - at_rest < GROWTH_MAX_MB, f"{at_rest:.0f} MB at rest, {peak:.0f} MB at the peak"
    assert exact_after < EXACT_WITHIN_S

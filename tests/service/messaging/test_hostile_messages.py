"""Hostile messages on the bus: garbage on every subject, huge bodies, made-up names.

Each is counted under a bounded label, logged without flooding, and the monitor keeps serving with a
``/metrics`` page whose size does not grow with the number of names somebody made up.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest
from nats.aio.client import Client

from services.monitor.app import Monitor
from services.monitor.labels import LOGGED_NAMES_MAX, OTHER
from shared.messaging import encode, subjects
from tests.support.harness import free_port, scored
from tests.support.monitors import monitor_serving, monitor_settings
from tests.support.natsserver import NatsServer

ONE_MIB = b"x" * (1024 * 1024 - 1024)  # below nats-server's default max_payload of 1 MiB
MADE_UP_TICKS = 5000
Running = tuple[Monitor, Client, str]


async def until(condition: Callable[[], bool], within_s: float = 30.0) -> None:
    """Wait for a condition on the monitor's counters, at most ``within_s``."""
    async with asyncio.timeout(within_s):
        while not condition():  # noqa: ASYNC110 - the registry offers no event to wait on
            await asyncio.sleep(0.02)


@pytest.fixture
async def monitor_running(tmp_path: Path, nats_server: NatsServer) -> AsyncIterator[Running]:
    port = free_port()
    async with monitor_serving(monitor_settings(tmp_path, nats_server, port)) as (monitor, nc):
        yield monitor, nc, f"http://127.0.0.1:{port}"


def value(monitor: Monitor, name: str, **labels: str) -> float:
    return monitor.metrics.registry.get_sample_value(name, labels) or 0.0


async def test_garbage_on_every_subject_is_counted_by_subject_and_the_monitor_keeps_serving(
    monitor_running: Running, caplog: pytest.LogCaptureFixture
) -> None:
    monitor, nc, url = monitor_running
    caplog.set_level(logging.WARNING)
    garbage = {
        subjects.JOB_CREATED: b"\xff\xfe not utf-8",
        subjects.JOB_SCORED: b"{this is not json",
        subjects.JOB_FAILED: b"[]",
        subjects.CONSUMER_BACKEND: ONE_MIB,
        subjects.PRODUCER_GENERATION: json.dumps({"kind": "producer.generation", "generation": -5}).encode(),
        subjects.CLEANUP_REPORT: encode(scored("j", "sigma")),  # a valid event on the wrong subject
        subjects.SERVICE_HEARTBEAT: b"null",
        subjects.STATUS: b"\x00\x01binary",
        subjects.SCHEDULES: b"[1, 2, 3]",
        subjects.PRODUCER_STATS: ONE_MIB,
        subjects.tick("producer"): b'{"batch": -1}',
        "syntx.no.such.subject": b"anything",
    }
    for subject, body in garbage.items():
        await nc.publish(subject, body)
    await nc.flush()

    def counted(subject: str) -> float:
        return value(monitor, "syntx_malformed_messages_total", subject=subject)

    expected = {subject: 1.0 for subject in garbage if subject != "syntx.no.such.subject"}
    expected[OTHER] = 1.0
    await until(lambda: all(counted(subject) == count for subject, count in expected.items()))
    async with httpx.AsyncClient(base_url=url) as client:
        assert (await client.get("/healthz")).status_code == 200
    reply = json.loads((await nc.request(subjects.STATUS, b"", timeout=5)).data)
    assert reply["queue_state"] == "STARVING"
    lines = [m for m in caplog.messages if m.startswith("dropping malformed message")]
    assert "'syntx.cleanup.report': kind: 'job.scored' does not belong on this subject" in "\n".join(lines)
    assert all(len(line) < 600 for line in lines)  # a 1 MiB body is never echoed into the log


async def test_made_up_names_do_not_grow_metrics(
    monitor_running: Running, caplog: pytest.LogCaptureFixture
) -> None:
    monitor, nc, url = monitor_running
    caplog.set_level(logging.WARNING, logger="services.monitor.labels")
    async with httpx.AsyncClient(base_url=url) as client:

        async def made_up(first: int, count: int) -> int:
            """Publish ``count`` made-up tick and wrapper names; the size of /metrics afterwards."""
            for index in range(first, first + count):
                await nc.publish(subjects.tick(f"madeup{index}"), b"")
                await nc.publish(subjects.JOB_SCORED, encode(scored(f"j{index}", f"wrapper{index}")))
            await nc.flush()
            await until(lambda: value(monitor, "syntx_ticks_total", schedule=OTHER) == first + count)
            await until(
                lambda: (
                    value(monitor, "syntx_jobs_scored_total", wrapper=OTHER, status="passed") == first + count
                )
            )
            return len((await client.get("/metrics")).content)

        few = await made_up(0, 10)
        many = await made_up(10, MADE_UP_TICKS)
    assert many - few < 200, (few, many)  # counts changed; not one series was added
    unknown = [m for m in caplog.messages if m.startswith("unknown ")]
    assert len(unknown) == LOGGED_NAMES_MAX
    assert any("more unknown label values" in m for m in caplog.messages)

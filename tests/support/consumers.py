"""The consumer in-process for tests: its settings, a scripted backend's settings, running it, its results."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nats.aio.client import Client

import services.consumer.service as consumer_service
from services.consumer.app import Consumer
from shared.config import DEFAULT_CONFIG, Settings, load_settings
from shared.llm.offline import offline_answer
from shared.messaging import Event, ServiceHeartbeat, subjects
from shared.queue import INCOMING, FileQueue, JobMeta, new_job_id
from shared.scoring import load_catalog
from tests.support.harness import HEARTBEATS, EventLog, observer
from tests.support.natsserver import NatsServer

WRAPPER = "syntex_system"
SERVICE = f"consumer.{WRAPPER}"
TICK = subjects.tick(SERVICE)


def make_settings(
    tmp_path: Path, nats_server: NatsServer, max_attempts: int = 3, **consumer: Any
) -> Settings:
    """Tiny pauses so every case runs in about a second."""
    return load_settings(
        [DEFAULT_CONFIG],
        data_dir=tmp_path / "data",
        nats={"url": nats_server.url, "tick_fetch_wait_s": 0.1},
        queue={"max_attempts": max_attempts},
        consumers={WRAPPER: {"backend_pause": {"base_s": 0.01, "max_s": 60.0}, **consumer}},
    )


def http_backend(url: str, read_s: float = 10.0) -> dict[str, Any]:
    """The original wrapper service's API; one HTTP attempt per job attempt, no backoff."""
    return {
        "kind": "syntx",
        "url": url,
        "timeouts": {"connect_s": 2.0, "read_s": read_s, "total_s": read_s + 5},
        "retries": {"max_attempts": 1, "backoff_base_s": 0.0, "backoff_max_s": 0.0},
    }


@asynccontextmanager
async def consumer_running(settings: Settings, events: EventLog) -> AsyncIterator[tuple[asyncio.Event, Any]]:
    """The consumer as a task, ready once its heartbeat arrived; stopped (and awaited) on exit."""
    async with _consumer_task(settings, events) as running:
        yield running.stop, running.task


@dataclass
class Running:
    """A consumer running in this process: the object itself (its gate, its slots) and its task."""

    consumer: Consumer
    task: asyncio.Task[None]
    stop: asyncio.Event


@asynccontextmanager
async def consumer_in_process(settings: Settings) -> AsyncIterator[Running]:
    """The consumer as a task, with the consumer object itself to look at; stopped on exit."""
    url = settings.nats.url
    assert url is not None
    async with observer(url, HEARTBEATS) as (_nc, events), _consumer_task(settings, events) as running:
        yield running


@asynccontextmanager
async def _consumer_task(settings: Settings, events: EventLog) -> AsyncIterator[Running]:
    held: list[Consumer] = []
    stop = asyncio.Event()
    task = asyncio.create_task(
        consumer_service.run(settings, stop, WRAPPER, started=held.append), name=SERVICE
    )

    def ready(seen: list[Event]) -> bool:
        if task.done():
            task.result()
        return any(isinstance(e, ServiceHeartbeat) and e.service == SERVICE for e in seen)

    await events.wait_for(ready, within_s=15)
    try:
        yield Running(held[0], task, stop)
    finally:
        stop.set()
        async with asyncio.timeout(15):
            await task


def watching_settings(data_dir: Path, nats_server: NatsServer, url: str, **queue: Any) -> Settings:
    """A watching consumer (concurrency 4 unless ``consumer`` says) on the loopback LLM at ``url``, its
    queue probed every few hundredths of a second while it cannot be written."""
    consumer = queue.pop("consumer", {})
    return load_settings(
        [DEFAULT_CONFIG],
        data_dir=data_dir,
        nats={"url": nats_server.url, "tick_fetch_wait_s": 0.1},
        queue={"fault_probe": {"base_s": 0.02, "max_s": 0.2}, **queue},
        consumers={
            WRAPPER: {
                "watch": True,
                "rescan_s": 0.3,
                "concurrency": 4,
                "backend": http_backend(url),
                "backend_pause": {"base_s": 0.01, "max_s": 0.05},
                **consumer,
            }
        },
    )


async def until(condition: Callable[[], bool], what: str, within_s: float = 20.0) -> None:
    """Wait for ``condition`` on files and in-process services, looking again each time the loop turns
    (what is waited on has no event of its own: a folder's content, a consumer's gate)."""
    try:
        async with asyncio.timeout(within_s):
            while not condition():  # noqa: ASYNC110 - the files and the consumer are what is waited on
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"not within {within_s}s: {what}") from None


@asynccontextmanager
async def consumer_with_events(settings: Settings) -> AsyncIterator[tuple[Client, EventLog, asyncio.Event]]:
    url = settings.nats.url
    assert url is not None
    async with (
        observer(url, HEARTBEATS, subjects.JOB_ALL) as (nc, events),
        consumer_running(settings, events) as (stop, _task),
    ):
        yield nc, events, stop


def result(queue: FileQueue, job_id: str) -> dict[str, Any]:
    path = queue.result_path(job_id)
    assert path is not None, f"{job_id} has no result"
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    data["folder"] = path.parent.name
    return data


def good_answer() -> str:
    headers = load_catalog([DEFAULT_CONFIG.parent.parent / "wrappers"]).formats[WRAPPER].header_lines()
    return offline_answer("Erkläre, wie Katzen ihre Umgebung wahrnehmen und darauf reagieren.", headers)


def add_raw_job(queue: FileQueue, data: bytes, job_id: str | None = None) -> str:
    job_id = job_id or new_job_id()
    queue.write_atomic(queue.job_path(INCOMING, job_id), data)
    return job_id


def job_ids(queue: FileQueue, folder: str) -> set[str]:
    return set(queue.job_ids(folder))


def add_jobs(queue: FileQueue, count: int, topic: str) -> set[str]:
    """``count`` jobs in ``queue`` (its folders made), their topics ``topic`` and a number; their ids."""
    queue.ensure()
    return {
        queue.add_job(f"Erkläre Thema {n}: Katzen, Kochen und Klima.", JobMeta(topic=f"{topic}{n}"))
        for n in range(count)
    }

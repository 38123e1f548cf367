"""Helpers for tests that run services in-process against a real nats-server."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg
from pydantic import BaseModel

from shared.config import NatsSettings, Settings
from shared.messaging import Event, JobScored, connect_options, decode_event, subjects
from shared.messaging.connection import Client as MendedClient

ServiceRun = Callable[[Settings, asyncio.Event], Coroutine[Any, Any, None]]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class EventLog:
    """Collects decoded events from a subject and lets a test wait for a condition on them."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._changed = asyncio.Condition()

    async def on_msg(self, msg: Msg) -> None:
        event = decode_event(msg.data)
        async with self._changed:
            self.events.append(event)
            self._changed.notify_all()

    async def wait_for(self, predicate: Callable[[list[Event]], bool], within_s: float = 20.0) -> list[Event]:
        async with asyncio.timeout(within_s), self._changed:
            await self._changed.wait_for(lambda: predicate(self.events))
        return list(self.events)

    def of(self, kind: type[BaseModel]) -> list[Any]:
        return [event for event in self.events if isinstance(event, kind)]


def count(kind: type[Any], n: int) -> Callable[[list[Event]], bool]:
    return lambda events: sum(isinstance(event, kind) for event in events) >= n


@asynccontextmanager
async def behind_the_bus(settings: NatsSettings, name: str = "test") -> AsyncIterator[Client]:
    """A nats-py client that connects and reconnects as a service's bus does (the same options, the same
    mended client), for what a test does to NATS behind the bus's back (a raw body published, a stream
    looked at or deleted)."""
    nc = MendedClient()
    await nc.connect(**connect_options(settings, name))
    try:
        yield nc
    finally:
        await nc.drain()


@asynccontextmanager
async def observer(url: str, *subject_list: str) -> AsyncIterator[tuple[Client, EventLog]]:
    nc = await nats.connect(url)
    log = EventLog()
    for subject in subject_list:
        await nc.subscribe(subject, cb=log.on_msg)
    await nc.flush()
    try:
        yield nc, log
    finally:
        await nc.drain()


@asynccontextmanager
async def running(
    settings: Settings, services: dict[str, ServiceRun], heartbeats: EventLog
) -> AsyncIterator[asyncio.Event]:
    """Start services as tasks, wait until each announced itself, stop them on exit."""
    stop = asyncio.Event()
    tasks = [asyncio.create_task(run(settings, stop), name=name) for name, run in services.items()]

    def all_ready(events: list[Event]) -> bool:
        failed = [task for task in tasks if task.done()]
        if failed:
            failed[0].result()  # surfaces the exception of a service that died at start
        seen = {getattr(event, "service", None) for event in events}
        return set(services) <= seen

    await heartbeats.wait_for(all_ready, within_s=30)
    try:
        yield stop
    finally:
        stop.set()
        async with asyncio.timeout(45):
            await asyncio.gather(*tasks)


HEARTBEATS = subjects.SERVICE_HEARTBEAT
FLOOD_PROMPT = b"Erklaere, wie Katzen schnurren.\n"


def flood(folder: Path, files: int) -> None:
    """``files`` job files created straight in ``folder``, named in the order they are made — what a
    script dropping jobs into ``incoming/`` does (no staging: one notification each)."""
    for index in range(files):
        (folder / f"flood-{index:07d}.txt").write_bytes(FLOOD_PROMPT)


def scored(
    job_id: str,
    wrapper: str = "sigma",
    *,
    score: int = 95,
    threshold: int = 90,
    arm: tuple[str, str] | None = None,
    language: str | None = None,
) -> JobScored:
    """A scored job's event, as a consumer of ``wrapper`` sends it: passed at or above ``threshold``,
    rejected below; ``arm`` (category, style) and ``language`` as the producer wrote them in the job."""
    return JobScored(
        job_id=job_id,
        wrapper=wrapper,
        backend="offline",
        model="offline-responder",
        score=score,
        threshold=threshold,
        status="passed" if score >= threshold else "rejected",
        format="sigma",
        category=arm[0] if arm else None,
        style=arm[1] if arm else None,
        language=language,
        llm_seconds=0.1,
        total_seconds=0.2,
        attempt=1,
        scorer="syntx-2",
    )

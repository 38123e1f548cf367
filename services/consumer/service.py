"""Wiring of one consumer process: settings -> wrapper, format, backend, claims, bus."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from contextlib import AsyncExitStack

from services.consumer.app import Consumer, run_consumer
from services.consumer.failpoints import Failpoints
from services.consumer.processing import ConsumerContext
from shared.config import ConfigError, Settings
from shared.llm import make_backend
from shared.messaging import connect, subjects
from shared.queue import Claims, FileQueue, QueueGate, new_token
from shared.scoring import Catalog, Wrapper, configured_catalog
from shared.service import instance_name, presence, queue_state_sender

log = logging.getLogger(__name__)


def service_name(name: str) -> str:
    return subjects.consumer_schedule(name)


def _wrapper(settings: Settings, name: str) -> tuple[Catalog, Wrapper]:
    if name not in settings.consumers:
        known = ", ".join(sorted(settings.consumers)) or "none"
        raise ConfigError(f"config: consumers.{name} is not configured (configured: {known})")
    wanted = settings.consumers[name].wrapper
    catalog = configured_catalog(settings.catalog_dirs)
    if wanted not in catalog.wrappers:
        known = ", ".join(sorted(catalog.wrappers))
        raise ConfigError(f"config: consumers.{name}.wrapper = {wanted!r}: no such wrapper ({known})")
    return catalog, catalog.wrappers[wanted]


async def run(
    settings: Settings,
    stop: asyncio.Event,
    name: str,
    failpoints: Failpoints | None = None,
    started: Callable[[Consumer], None] | None = None,
) -> None:
    """Run the consumer ``name`` until ``stop``; ``started`` is handed the consumer once it is made (a
    test looks at its gate and its slots)."""
    catalog, wrapper = _wrapper(settings, name)
    config = settings.consumers[name]
    queue = FileQueue(settings.queue_dir)
    unwritable = queue.probe()  # makes the folders; a queue that cannot be written waits behind the gate
    claims = Claims(queue, new_token())
    owner = instance_name(service_name(name))
    async with AsyncExitStack() as stack:
        backend = make_backend(config.backend, concurrency=config.concurrency)
        stack.push_async_callback(backend.aclose)
        bus = await stack.enter_async_context(connect(settings.nats, name=service_name(name), stop=stop))
        gate = QueueGate(
            queue, settings.queue.fault_probe, queue_state_sender(bus, service_name(name), owner)
        )
        context = ConsumerContext(
            name=name,
            owner=owner,
            settings=config,
            queue_settings=settings.queue,
            wrapper=wrapper,
            format=catalog.formats[wrapper.format],
            formats=dict(catalog.formats),
            backend=backend,
            claims=claims,
            bus=bus,
            failpoints=failpoints or Failpoints(),
            gate=gate,
            stop=stop,
        )
        if unwritable is not None:
            gate.close(unwritable)
        consumer = Consumer(context, stop)
        if started is not None:
            started(consumer)
        if config.watch:
            await bus.subscribe_events(subjects.JOB_CREATED, consumer.on_event)
        log.info(
            "consumer %s (%s, claims as %s): wrapper %s, backend %s/%s, concurrency %d, watch %s",
            name,
            owner,
            claims.token,
            wrapper.name,
            backend.name,
            backend.model,
            config.concurrency,
            config.watch,
        )
        schedule = subjects.consumer_schedule(name)
        ticks = await bus.subscribe_ticks(schedule, settings.overlap(schedule))
        async with presence(bus, service_name(name), settings.heartbeat_s):
            await run_consumer(
                consumer,
                ticks.run(consumer.on_tick, stop),
                service=service_name(name),
                stop=stop,
                watch=config.watch,
                polling=config.watch_polling,
            )

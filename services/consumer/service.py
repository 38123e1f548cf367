"""Wiring of one consumer process: settings -> wrapper, format, backend, queue, bus."""

from __future__ import annotations

import asyncio
import logging
from contextlib import AsyncExitStack

from services.consumer.app import Consumer, run_consumer
from services.consumer.processing import ConsumerContext
from shared import bus as bus_module
from shared import subjects
from shared.formats import load_catalog
from shared.llm import make_backend
from shared.queue import FileQueue
from shared.runner import instance_name, presence
from shared.settings import ConfigError, Settings

log = logging.getLogger(__name__)

SHUTDOWN_GRACE_S = 30.0


def service_name(wrapper: str) -> str:
    return f"consumer.{wrapper}"


async def run(settings: Settings, stop: asyncio.Event, name: str) -> None:
    if name not in settings.consumers:
        known = ", ".join(sorted(settings.consumers)) or "none"
        raise ConfigError(f"config: consumers.{name} is not configured (configured: {known})")
    config = settings.consumers[name]
    catalog = load_catalog(settings.wrapper_dirs)
    if config.wrapper not in catalog.wrappers:
        known = ", ".join(sorted(catalog.wrappers))
        raise ConfigError(f"config: consumers.{name}.wrapper = {config.wrapper!r}: no such wrapper ({known})")
    wrapper = catalog.wrappers[config.wrapper]
    queue = FileQueue(settings.queue_dir)
    queue.ensure()
    async with AsyncExitStack() as stack:
        backend = make_backend(config.backend, concurrency=config.concurrency)
        stack.push_async_callback(backend.aclose)
        bus = await stack.enter_async_context(bus_module.connect(settings.nats, name=service_name(name)))
        context = ConsumerContext(
            name=name,
            owner=instance_name(service_name(name)),
            settings=config,
            wrapper=wrapper,
            format=catalog.formats[wrapper.format],
            formats=dict(catalog.formats),
            backend=backend,
            queue=queue,
            bus=bus,
        )
        consumer = Consumer(context, stop, SHUTDOWN_GRACE_S)
        if config.watch:
            await bus.subscribe_events(subjects.JOB_CREATED, consumer.on_event)
        log.info(
            "consumer %s: wrapper %s, backend %s/%s, concurrency %d, watch %s",
            name,
            wrapper.name,
            backend.name,
            backend.model,
            config.concurrency,
            config.watch,
        )
        ticks = await bus.subscribe_ticks(subjects.consumer_schedule(name))
        async with presence(bus, service_name(name)):
            await run_consumer(
                consumer,
                ticks.run(consumer.on_tick, stop),
                stop=stop,
                watch=config.watch,
                polling=config.watch_polling,
            )

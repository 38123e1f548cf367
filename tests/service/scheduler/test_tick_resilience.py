"""A service's tick loop outlives JetStream trouble: its tick consumer deleted, it subscribes again; no
consumer to be had at its start, it subscribes as soon as there is; the pause bucket's watch likewise; and
every other start-up step that needs JetStream (streams, key-value buckets, watches) waits for it too."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest
from nats.js.kv import KeyValue

from services.monitor.app import run as run_monitor
from services.producer.app import run as run_producer
from services.scheduler.app import run as run_scheduler
from shared.backoff import Backoff
from shared.config import DEFAULT_CONFIG, load_settings
from shared.messaging import (
    Event,
    PausedSchedules,
    ProducerGeneration,
    ServiceHeartbeat,
    Tick,
    connect,
    subjects,
)
from tests.support.harness import HEARTBEATS, behind_the_bus, observer, running
from tests.support.natsserver import NatsServer, start_cluster


@pytest.mark.timeout(60)
async def test_a_deleted_tick_consumer_is_created_again_and_ticks_flow(
    tmp_path: Path, nats_server: NatsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = load_settings(
        [DEFAULT_CONFIG],
        data_dir=tmp_path / "data",
        nats={
            "url": nats_server.url,
            "resubscribe": {"base_s": 0.1, "max_s": 0.1},
            "tick_fetch_wait_s": 0.2,
        },
        schedules={"producer": {"enabled": False}},
    )
    durable = subjects.durable_name("producer")
    watched = (HEARTBEATS, subjects.PRODUCER_GENERATION)
    async with (
        observer(nats_server.url, *watched) as (nc, events),
        running(settings, {"producer": run_producer}, events),
    ):
        created = asyncio.Event()

        async def on_api(msg: object) -> None:
            created.set()

        # JetStream's API is request/reply on plain subjects: the producer creating its consumer again shows.
        stream = subjects.TICK_STREAM
        for subject in (
            f"$JS.API.CONSUMER.CREATE.{stream}.{durable}",
            f"$JS.API.CONSUMER.CREATE.{stream}.{durable}.>",
            f"$JS.API.CONSUMER.DURABLE.CREATE.{stream}.{durable}",
        ):
            await nc.subscribe(subject, cb=on_api)
        await nc.flush()
        js = nc.jetstream()
        await js.delete_consumer(subjects.TICK_STREAM, durable)
        await asyncio.wait_for(created.wait(), timeout=20)
        await js.consumer_info(subjects.TICK_STREAM, durable)  # answered once the creation went through
        await nc.publish(subjects.tick("producer"), b"")
        await events.wait_for(lambda seen: any(isinstance(event, ProducerGeneration) for event in seen))


@pytest.mark.timeout(60)
async def test_a_service_that_cannot_subscribe_at_start_subscribes_once_jetstream_answers(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    """A cluster still electing leaders when a service starts: the service starts all the same (its other
    work goes on) and its tick subscription is made as soon as JetStream can answer."""
    settings = load_settings(
        [DEFAULT_CONFIG],
        data_dir=tmp_path / "data",
        nats={"url": nats_server.url, "resubscribe": {"base_s": 0.1, "max_s": 0.1}, "tick_fetch_wait_s": 0.2},
    )
    received: list[Tick] = []
    arrived = asyncio.Event()

    async def on_tick(tick: Tick) -> None:
        received.append(tick)
        arrived.set()

    stop = asyncio.Event()
    async with connect(settings.nats, name="service") as bus, behind_the_bus(settings.nats) as nc:
        js = nc.jetstream()
        await js.delete_stream(subjects.TICK_STREAM)  # JetStream cannot give this service its consumer now
        subscription = await bus.subscribe_ticks("producer")
        reading = asyncio.create_task(subscription.run(on_tick, stop))
        async with connect(settings.nats, name="another"):
            pass  # a service connecting sets the streams up again
        tick = Tick(schedule="producer", slot=None, source="test")
        async with asyncio.timeout(20):
            while not received:  # published again until the subscription is there to take it
                await bus.publish(subjects.tick("producer"), tick)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(arrived.wait(), timeout=0.5)
        stop.set()
        await reading
    assert received[0].schedule == "producer"


@pytest.mark.timeout(60)
async def test_the_watch_of_paused_schedules_is_set_up_again_until_jetstream_answers(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    """NATS restarting just as a service starts: the watch of the pause bucket is tried again (it failed
    the whole service before) and then follows pauses as they happen."""
    settings = load_settings([DEFAULT_CONFIG], data_dir=tmp_path / "data", nats={"url": nats_server.url})
    bucket_name = settings.scheduler.state_bucket
    retry = Backoff(base_s=0.05, max_s=0.05)
    stop = asyncio.Event()
    async with connect(settings.nats, name="service") as bus, behind_the_bus(settings.nats) as nc:
        pauses = PausedSchedules(await bus.key_value(bucket_name))
        applied = asyncio.Event()
        apply = pauses._apply

        def applying(entry: KeyValue.Entry | None) -> None:
            apply(entry)
            applied.set()

        pauses._apply = applying  # type: ignore[method-assign]
        await nc.jetstream().delete_key_value(bucket_name)  # the watch cannot be set up now
        watching = asyncio.create_task(pauses.watch(stop, retry))
        with pytest.raises(TimeoutError):  # not failing, not watching: trying again
            await asyncio.wait_for(asyncio.shield(pauses.watching.wait()), timeout=0.5)
        assert not watching.done()
        again = PausedSchedules(await bus.key_value(bucket_name))  # the bucket is back
        await asyncio.wait_for(pauses.watching.wait(), timeout=20)
        await again.pause("producer", datetime.now(UTC))
        async with asyncio.timeout(10):
            while not pauses.is_paused("producer"):
                applied.clear()
                await applied.wait()
        stop.set()
        await watching


class _Said(logging.Handler):
    """Sets ``event`` when a log line holds ``text``."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text
        self.event = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if self.text in record.getMessage():
            self.event.set()


@pytest.mark.timeout(180)
async def test_services_that_start_while_jetstream_has_no_quorum_wait_for_it_and_then_run(
    tmp_path: Path,
) -> None:
    """Two of three nodes down: every JetStream request times out. A scheduler (streams, two key-value
    buckets, the pause watch) and a monitor (streams, the tick stream's watch, the pause bucket) started
    now keep trying with the resubscribe backoff instead of exiting, and run once the nodes are back."""
    cluster = start_cluster(tmp_path / "cluster")
    said = _Said("JetStream does not answer yet")
    logging.getLogger("shared.messaging.bus").addHandler(said)
    stop = asyncio.Event()
    try:
        for node in cluster.nodes[1:]:
            node.kill()
        settings = load_settings(
            [DEFAULT_CONFIG],
            data_dir=tmp_path / "data",
            nats={
                "url": cluster.nodes[0].url,
                "stream_replicas": 3,
                "resubscribe": {"base_s": 0.2, "max_s": 0.2},
            },
            monitor={"port": 0},
        )
        async with observer(cluster.nodes[0].url, HEARTBEATS) as (_nc, beats):
            services = {"scheduler": run_scheduler, "monitor": run_monitor}
            tasks = [asyncio.create_task(run(settings, stop), name=name) for name, run in services.items()]
            await asyncio.wait_for(said.event.wait(), timeout=60)
            assert not any(task.done() for task in tasks)  # waiting, not failed
            for node in cluster.nodes[1:]:
                node.start()
            for node in cluster.nodes[1:]:
                await asyncio.to_thread(node.wait_ready, 30)

            def all_up(events: list[Event]) -> bool:
                for task in tasks:
                    if task.done():
                        task.result()  # a service that gave up: its exception fails the test
                up = {event.service for event in events if isinstance(event, ServiceHeartbeat)}
                return set(services) <= up

            await beats.wait_for(all_up, within_s=90)
            stop.set()
            await asyncio.gather(*tasks)
    finally:
        stop.set()
        logging.getLogger("shared.messaging.bus").removeHandler(said)
        cluster.stop()

"""A service's tick loop outlives JetStream trouble: its tick consumer deleted, it subscribes again."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from services.producer.app import run as run_producer
from shared.config import DEFAULT_CONFIG, load_settings
from shared.messaging import ProducerGeneration, subjects
from tests.harness import HEARTBEATS, observer, running
from tests.natsserver import NatsServer


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

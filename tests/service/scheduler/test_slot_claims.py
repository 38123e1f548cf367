"""Slot claims between scheduler replicas over a real nats-server: a claim whose answer was lost is still
known as ours, an unfired claim is taken over by exactly one other replica, and a replica SIGKILLed
between claiming a slot and firing it loses no slot.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from nats.aio.msg import Msg
from nats.js.kv import KeyValue

from services.scheduler.claims import Look, SlotClaim, SlotClaims, slot_key
from shared.config import DEFAULT_CONFIG, load_settings
from shared.messaging import Tick, connect, subjects
from tests.support.harness import behind_the_bus
from tests.support.natsserver import NatsServer
from tests.support.up import process_environment, started

BUCKET = "test_slots"
SLOT = datetime(2026, 11, 30, 4, 0, tzinfo=UTC)
SCHEDULE = "producer"
NEVER = 3600.0  # a takeover delay no test waits for
AT_ONCE = 0.0


@pytest.fixture
async def bucket(nats_server: NatsServer) -> AsyncIterator[KeyValue]:
    settings = load_settings([DEFAULT_CONFIG], nats={"url": nats_server.url})
    async with connect(settings.nats, name="test") as bus:
        yield await bus.key_value(BUCKET, ttl_s=600)


async def test_a_claim_stored_before_its_answer_was_lost_is_still_ours(bucket: KeyValue) -> None:
    # What the bucket holds after a create whose answer timed out: the key, with this replica's name.
    await bucket.create(slot_key(SCHEDULE, SLOT), SlotClaim(replica="a").model_dump_json().encode())
    assert await SlotClaims(bucket, "a").claim(SCHEDULE, SLOT) is True
    assert await SlotClaims(bucket, "b").claim(SCHEDULE, SLOT) is False


async def _stored(bucket: KeyValue) -> SlotClaim:
    return SlotClaim.model_validate_json((await bucket.get(slot_key(SCHEDULE, SLOT))).value or b"")


async def test_a_fired_claim_is_left_alone(bucket: KeyValue) -> None:
    winner, other = SlotClaims(bucket, "a"), SlotClaims(bucket, "b")
    assert await winner.claim(SCHEDULE, SLOT) is True
    assert await other.claim(SCHEDULE, SLOT) is False
    await winner.fired(SCHEDULE, SLOT)
    assert await other.look(SCHEDULE, SLOT, AT_ONCE) is Look.FIRED
    assert await _stored(bucket) == SlotClaim(replica="a", fired=True)


async def test_an_unfired_claim_is_taken_over_by_exactly_one_replica(bucket: KeyValue) -> None:
    dead, two, three = SlotClaims(bucket, "dead"), SlotClaims(bucket, "b"), SlotClaims(bucket, "c")
    assert await dead.claim(SCHEDULE, SLOT) is True  # ... and then it dies without firing
    assert await two.claim(SCHEDULE, SLOT) is False
    assert await three.claim(SCHEDULE, SLOT) is False
    assert await two.look(SCHEDULE, SLOT, NEVER) is Look.WAITING  # not overdue yet
    looks = await asyncio.gather(two.look(SCHEDULE, SLOT, AT_ONCE), three.look(SCHEDULE, SLOT, AT_ONCE))
    assert sorted(str(look) for look in looks) == sorted(map(str, (Look.TAKEN_OVER, Look.WAITING)))
    taker = two if looks[0] is Look.TAKEN_OVER else three
    assert await taker.claim(SCHEDULE, SLOT) is True  # the taker now fires it
    claim = await _stored(bucket)
    assert claim.taken_over_from == "dead" and not claim.fired
    await dead.fired(SCHEDULE, SLOT)  # a replica that was only slow cannot mark over the taker
    await taker.fired(SCHEDULE, SLOT)
    stored = await _stored(bucket)
    assert stored.fired and stored.replica == taker.replica


def _config(tmp_path: Path, name: str) -> Path:
    schedules: dict[str, object] = {
        other: {"cron": "0 0 1 1 *", "enabled": False}
        for other in ("consumer.syntex_system", "consumer.sigma", "monitor", "cleanup")
    }
    schedules[SCHEDULE] = {"cron": "@every 1s"}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"schedules": schedules}), encoding="utf-8")
    return path


async def _claim_for_a_coming_slot(bucket: KeyValue, pid: int, within_s: float) -> datetime:
    """The slot that the replica with ``pid`` has just claimed ahead of its time."""
    owner = f"{socket.gethostname()}:{pid}:"
    async with asyncio.timeout(within_s):
        watcher = await bucket.watchall()
        async for entry in watcher:
            if entry is None or entry.value is None:
                continue
            claim = SlotClaim.model_validate_json(entry.value)
            slot = datetime.fromtimestamp(int(entry.key.rsplit(".", 1)[1]), UTC)
            if claim.replica.startswith(owner) and not claim.fired and slot > datetime.now(UTC):
                await watcher.stop()  # type: ignore[no-untyped-call]
                return slot
    raise AssertionError("no claim ahead of a slot")


@pytest.mark.timeout(60)
async def test_a_replica_killed_between_claiming_and_firing_loses_no_slot(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    """Replica A is SIGKILLed right after it claimed the coming slot; replica B fires that slot (late,
    by ``takeover_after_s``), and every slot from the first to the last is stored once."""
    settings = load_settings([DEFAULT_CONFIG], nats={"url": nats_server.url})
    command = [sys.executable, "-m", "services.scheduler"]
    ticks: list[Tick] = []
    arrived = asyncio.Event()
    async with connect(settings.nats, name="test") as bus, behind_the_bus(settings.nats) as nc:
        bucket = await bus.key_value(settings.scheduler.claims_bucket, settings.scheduler.claim_ttl_s)
        js = nc.jetstream()

        async def on_tick(msg: Msg) -> None:
            ticks.append(Tick.model_validate_json(msg.data))
            arrived.set()

        await js.subscribe(
            subjects.tick(SCHEDULE), cb=on_tick, ordered_consumer=True, stream=subjects.TICK_STREAM
        )
        replicas = [
            process_environment(
                tmp_path / name, SYNTX_NATS__URL=nats_server.url, SYNTX_CONFIG=str(_config(tmp_path, name))
            )
            for name in ("a", "b")
        ]
        async with started(*command, env=replicas[0]) as one, started(*command, env=replicas[1]) as two:
            victim = await _claim_for_a_coming_slot(bucket, one.pid, within_s=30)
            os.kill(one.pid, signal.SIGKILL)
            await one.wait()
            async with asyncio.timeout(15 + settings.scheduler.takeover_after_s):
                while not any(tick.slot and tick.slot > victim + timedelta(seconds=2) for tick in ticks):
                    arrived.clear()
                    await arrived.wait()
            two.terminate()
            assert await asyncio.wait_for(two.wait(), 15) == 0
        stored = (await js.stream_info(subjects.TICK_STREAM)).state
    slots = sorted(tick.slot for tick in ticks if tick.slot)
    assert victim in slots  # fired by the survivor although the dead replica held its claim
    per_slot = Counter(slots)
    assert max(per_slot.values()) == 1 and stored.messages == len(slots)
    gaps = [(b - a).total_seconds() for a, b in zip(slots, slots[1:], strict=False)]
    assert gaps == [1.0] * (len(slots) - 1)

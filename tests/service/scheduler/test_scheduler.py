"""The scheduler: missed-slot policy, persisted last slots, and ticks through a real nats-server.

Ticks are read back the way services read them: from the JetStream stream ``SYNTX_TICKS`` with a pull
consumer. The replica that claims a slot fires it, so core subscribers see each slot once too; the stream
stores one message per slot. Claims and their takeover: tests/service/scheduler/test_slot_claims.py.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg

from services.scheduler.app import run as run_scheduler
from services.scheduler.timetable import (
    Entry,
    SlotLog,
    build_entries,
    count_missed,
    last_slot_before,
    missed_slot,
)
from shared.config import DEFAULT_CONFIG, ScheduleSettings, Settings, load_settings
from shared.cron import parse_schedule
from shared.messaging import ServiceHeartbeat, Tick, connect, subjects
from syntx.cli import schedules
from tests.support.diskfaults import fill, tmpfs
from tests.support.harness import HEARTBEATS, EventLog, observer
from tests.support.natsserver import NatsServer

BERLIN = ZoneInfo("Europe/Berlin")
OTHERS_OFF = {
    name: {"enabled": False} for name in ("consumer.syntex_system", "consumer.sigma", "monitor", "cleanup")
}
MSG_ID = "Nats-Msg-Id"


def entry(cron: str = "0 * * * *", **spec: Any) -> Entry:
    return build_entries({"test": ScheduleSettings(cron=cron, **spec)})[0]


# -- missed slots ---------------------------------------------------------------------------------------


def test_count_missed_counts_the_slots_that_never_fired() -> None:
    hourly = entry()
    now = datetime(2025, 6, 1, 12, 30, tzinfo=BERLIN)
    assert count_missed(hourly, None, now) == 0  # never ran: nothing to call missed
    assert count_missed(hourly, datetime(2025, 6, 1, 12, 0, tzinfo=BERLIN), now) == 0
    assert count_missed(hourly, datetime(2025, 6, 1, 9, 0, tzinfo=BERLIN), now) == 3  # 10, 11 and 12 o'clock


def test_run_once_runs_the_latest_missed_slot_inside_the_window() -> None:
    now = datetime(2025, 6, 1, 12, 30, tzinfo=BERLIN)
    last = datetime(2025, 6, 1, 9, 0, tzinfo=BERLIN)  # 10:00, 11:00 and 12:00 were missed: run 12:00 once
    assert missed_slot(entry(), last, now) == datetime(2025, 6, 1, 12, 0, tzinfo=BERLIN)


def test_a_slot_at_the_very_moment_counts_as_missed() -> None:
    now = datetime(2025, 6, 1, 12, 0, tzinfo=BERLIN)
    assert missed_slot(entry(), now - timedelta(hours=1), now) == now


@pytest.mark.parametrize(
    ("spec", "last_hour"),
    [
        ({"missed": "skip"}, 9),  # skip never catches up
        ({}, 12),  # the latest slot was fired already
        ({"catchup_window_s": 600}, 9),  # 12:00 is older than 10 minutes
        ({"catchup_window_s": 0}, 9),
    ],
)
def test_nothing_to_catch_up(spec: dict[str, Any], last_hour: int) -> None:
    now = datetime(2025, 6, 1, 12, 30, tzinfo=BERLIN)
    assert missed_slot(entry(**spec), datetime(2025, 6, 1, last_hour, tzinfo=BERLIN), now) is None


def test_a_first_start_does_not_catch_up() -> None:
    assert missed_slot(entry(), None, datetime(2025, 6, 1, 12, 30, tzinfo=BERLIN)) is None


def test_the_window_is_real_time() -> None:
    daily = entry("0 3 * * *", catchup_window_s=6 * 3600)
    last = datetime(2025, 5, 30, 3, tzinfo=BERLIN)
    assert missed_slot(daily, last, datetime(2025, 5, 31, 8, 59, tzinfo=BERLIN)) == datetime(
        2025, 5, 31, 3, tzinfo=BERLIN
    )
    assert missed_slot(daily, last, datetime(2025, 5, 31, 9, 1, tzinfo=BERLIN)) is None


def test_a_missed_slot_in_the_repeated_hour_is_seen() -> None:
    """At fall back 02:00 happens twice; having fired the first does not mean the second ran."""
    first = datetime(2025, 10, 26, 2, 0, fold=0, tzinfo=BERLIN)
    second = datetime(2025, 10, 26, 2, 0, fold=1, tzinfo=BERLIN)
    now = datetime(2025, 10, 26, 2, 30, fold=1, tzinfo=BERLIN)
    missed = missed_slot(entry(), first, now)
    assert missed is not None
    assert missed.astimezone(UTC) == second.astimezone(UTC) == datetime(2025, 10, 26, 1, 0, tzinfo=UTC)
    assert missed_slot(entry(), second, now) is None


def test_last_slot_before_counts_the_window_in_real_time_at_fall_back() -> None:
    now = datetime(2025, 10, 26, 3, 10, tzinfo=BERLIN)  # 02:10 UTC; an hour back is 01:10 UTC = 02:10 CET
    latest = last_slot_before(entry("*/20 * * * *"), now, 3600)
    assert latest == datetime(2025, 10, 26, 3, 0, tzinfo=BERLIN)
    only_repeated = last_slot_before(entry("30 2 * * *"), now, 3600)  # 02:30 CEST was 01:40 ago
    assert only_repeated is None


# -- the slot log ---------------------------------------------------------------------------------------


def test_slot_log_persists_and_reloads(tmp_path: Path) -> None:
    path = tmp_path / "scheduler" / "last_slots.json"
    log = SlotLog(path, BERLIN)
    assert log.get("producer") is None
    repeated = datetime(2025, 10, 26, 2, 0, fold=1, tzinfo=BERLIN)
    log.record("producer", repeated)
    log.record("monitor", datetime(2025, 6, 1, 12, tzinfo=BERLIN))
    reloaded = SlotLog(path, BERLIN)
    producer = reloaded.get("producer")
    assert producer is not None and producer.astimezone(UTC) == repeated.astimezone(UTC)
    assert producer.tzinfo is BERLIN and producer.utcoffset() == timedelta(hours=1)
    assert reloaded.get("monitor") == datetime(2025, 6, 1, 12, tzinfo=BERLIN)
    assert sorted(json.loads(path.read_text(encoding="utf-8"))) == ["monitor", "producer"]
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no staging file left behind


@pytest.mark.parametrize("content", ["{not json", '["a list"]', '{"producer": "yesterday"}'])
def test_slot_log_ignores_an_unreadable_file(tmp_path: Path, content: str) -> None:
    path = tmp_path / "last_slots.json"
    path.write_text(content, encoding="utf-8")
    log = SlotLog(path, BERLIN)
    assert log.get("producer") is None
    log.record("producer", datetime(2025, 6, 1, 12, tzinfo=BERLIN))  # and heals it
    assert SlotLog(path, BERLIN).get("producer") == datetime(2025, 6, 1, 12, tzinfo=BERLIN)


# -- against a real nats-server -------------------------------------------------------------------------


def _settings(tmp_path: Path, nats_server: NatsServer, **overrides: Any) -> Settings:
    return load_settings(
        [DEFAULT_CONFIG], data_dir=tmp_path / "data", nats={"url": nats_server.url}, **overrides
    )


class TickLog:
    """Core subscriber: every tick publish as (message id, tick)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, Tick]] = []
        self._changed = asyncio.Condition()

    async def on_msg(self, msg: Msg) -> None:
        async with self._changed:
            self.seen.append(((msg.headers or {}).get(MSG_ID, ""), Tick.model_validate_json(msg.data)))
            self._changed.notify_all()

    async def wait_for(
        self, predicate: Callable[[list[tuple[str, Tick]]], bool], within_s: float = 10
    ) -> None:
        async with asyncio.timeout(within_s), self._changed:
            await self._changed.wait_for(lambda: predicate(self.seen))


@asynccontextmanager
async def schedulers(replicas: list[Settings], heartbeats: EventLog) -> AsyncIterator[None]:
    """Run scheduler replicas as tasks; ready when each has announced itself."""
    stop = asyncio.Event()
    tasks = [asyncio.create_task(run_scheduler(settings, stop)) for settings in replicas]

    def ready(events: list[Any]) -> bool:
        for task in tasks:
            if task.done():
                task.result()
        beats = [e for e in events if isinstance(e, ServiceHeartbeat) and e.service == "scheduler"]
        return len([beat for beat in beats if not beat.stopping]) >= len(replicas)

    await heartbeats.wait_for(ready, within_s=15)
    try:
        yield
    finally:
        stop.set()
        async with asyncio.timeout(15):
            await asyncio.gather(*tasks)


async def _tick_reader(nc: Client, schedule: str) -> Any:
    """A JetStream pull consumer on the tick stream (created by the services' own stream setup)."""
    return await nc.jetstream().pull_subscribe(
        subjects.tick(schedule), durable="test-reader", stream=subjects.TICK_STREAM
    )


async def _ensure_streams(settings: Settings) -> None:
    async with connect(settings.nats, name="test"):
        pass


async def _fetch(reader: Any, count: int, within_s: float = 10) -> list[Msg]:
    got: list[Msg] = []
    async with asyncio.timeout(within_s):
        while len(got) < count:
            got.extend(await reader.fetch(count - len(got), timeout=within_s))
    for msg in got:
        await msg.ack()
    return got


def _check_tick(msg: Msg, zone: ZoneInfo) -> Tick:
    tick = Tick.model_validate_json(msg.data)
    assert tick.slot is not None
    assert tick.schedule == "producer" and tick.source == "scheduler"
    assert msg.headers is not None and msg.headers[MSG_ID] == f"producer@{tick.slot.isoformat()}"
    assert tick.slot.utcoffset() == tick.slot.astimezone(zone).utcoffset()
    assert tick.slot.timestamp() == int(tick.slot.timestamp())  # @every 1s: aligned to whole seconds
    return tick


@pytest.mark.timeout(30)
async def test_ticks_land_in_the_stream_with_slot_and_message_id(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    settings = _settings(tmp_path, nats_server, schedules={"producer": {"cron": "@every 1s"}, **OTHERS_OFF})
    await _ensure_streams(settings)
    async with observer(nats_server.url, HEARTBEATS) as (nc, heartbeats):
        reader = await _tick_reader(nc, "producer")
        async with schedulers([settings], heartbeats):
            messages = await _fetch(reader, 3)
    ticks = [_check_tick(msg, settings.zone) for msg in messages]
    slots = [tick.slot for tick in ticks if tick.slot is not None]
    assert [b - a for a, b in zip(slots, slots[1:], strict=False)] == [timedelta(seconds=1)] * 2
    fired = SlotLog(settings.data_dir / "scheduler" / "last_slots.json", settings.zone).get("producer")
    assert fired is not None and fired >= slots[-1]


@pytest.mark.timeout(30)
async def test_the_scheduler_keeps_firing_on_a_full_data_disk(
    tmp_path: Path, nats_server: NatsServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Before: the slot log's write failed (no space), the tick task and so the scheduler ended, and
    every restart fired the missed slot and failed again — a crash loop. Now the slot stays in memory,
    the failure is said once, and the file is written again once there is space."""
    caplog.set_level(logging.INFO)
    with tmpfs(tmp_path / "data", 64 * 1024) as data_dir:
        settings = _settings(
            tmp_path, nats_server, schedules={"producer": {"cron": "@every 1s"}, **OTHERS_OFF}
        )
        settings = settings.model_copy(update={"data_dir": data_dir})
        await _ensure_streams(settings)
        filler = fill(data_dir)
        async with observer(nats_server.url, HEARTBEATS) as (nc, heartbeats):
            reader = await _tick_reader(nc, "producer")
            async with schedulers([settings], heartbeats):
                await _fetch(reader, 3)
                filler.unlink()
                before = len(caplog.records)
                await _fetch(reader, 2)
                wrote_again = [
                    r.getMessage() for r in caplog.records[before:] if "works again" in r.getMessage()
                ]
        fired = SlotLog(data_dir / "scheduler" / "last_slots.json", settings.zone).get("producer")
    failed = [
        r.getMessage() for r in caplog.records if r.getMessage().startswith("cannot write the last fired")
    ]
    assert len(failed) == 1 and "No space left on device" in failed[0]
    assert len(wrote_again) == 1 and fired is not None
    assert not [r for r in caplog.records if r.exc_info], "no tracebacks"


@pytest.mark.timeout(40)
async def test_a_scheduler_that_stalls_fires_the_slots_it_woke_late_for(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    """The process does not run for 2.5 s (a loaded machine): the slots due meanwhile are fired late, each
    once, not stepped over (they were, and the 3-node cluster test lost 6 slots under load)."""
    settings = _settings(tmp_path, nats_server, schedules={"producer": {"cron": "@every 1s"}, **OTHERS_OFF})
    await _ensure_streams(settings)
    async with observer(nats_server.url, HEARTBEATS) as (nc, heartbeats):
        reader = await _tick_reader(nc, "producer")
        async with schedulers([settings], heartbeats):
            await _fetch(reader, 1)
            time.sleep(2.5)  # noqa: ASYNC251 - the fault itself: the event loop does not run
            messages = await _fetch(reader, 5)
    slots = [slot for msg in messages if (slot := _check_tick(msg, settings.zone).slot) is not None]
    assert [b - a for a, b in zip(slots, slots[1:], strict=False)] == [timedelta(seconds=1)] * 4


@pytest.mark.timeout(30)
async def test_two_replicas_fire_each_slot_once(tmp_path: Path, nats_server: NatsServer) -> None:
    """Both replicas reach every slot; the one that claims it fires, so a plain subscriber sees it once."""
    one = _settings(tmp_path, nats_server, schedules={"producer": {"cron": "@every 1s"}, **OTHERS_OFF})
    other = one.model_copy(update={"data_dir": tmp_path / "other-host"})
    await _ensure_streams(one)
    published = TickLog()
    async with observer(nats_server.url, HEARTBEATS) as (nc, heartbeats):
        await nc.subscribe(subjects.tick("producer"), cb=published.on_msg)
        reader = await _tick_reader(nc, "producer")
        async with schedulers([one, other], heartbeats):
            await published.wait_for(lambda seen: len(seen) >= 4)
        await nc.flush()
        per_id = Counter(msg_id for msg_id, _ in published.seen)
        assert max(per_id.values()) == 1  # core subscribers see each slot once
        stored = (await nc.jetstream().stream_info(subjects.TICK_STREAM)).state
        messages = await _fetch(reader, stored.messages)
        claims = await nc.jetstream().key_value(one.scheduler.claims_bucket)
        claimed = await claims.keys()
    ids = [msg.headers[MSG_ID] for msg in messages if msg.headers]
    assert len(ids) == len(set(ids)) == stored.messages == stored.last_seq  # one stored message per slot
    assert set(ids) == set(per_id)
    slots = [_check_tick(msg, one.zone).slot for msg in messages]
    assert {f"producer.{int(slot.timestamp())}" for slot in slots if slot} <= set(claimed)


@pytest.mark.timeout(40)
async def test_a_replica_that_dies_leaves_no_gap(tmp_path: Path, nats_server: NatsServer) -> None:
    """One replica stops mid-run; the other fires every slot from then on, without a hand-over."""
    one = _settings(tmp_path, nats_server, schedules={"producer": {"cron": "@every 1s"}, **OTHERS_OFF})
    other = one.model_copy(update={"data_dir": tmp_path / "other-host"})
    await _ensure_streams(one)
    published = TickLog()
    async with observer(nats_server.url, HEARTBEATS) as (nc, heartbeats):
        await nc.subscribe(subjects.tick("producer"), cb=published.on_msg)
        async with schedulers([one], heartbeats):
            leaving = asyncio.Event()
            dying = asyncio.create_task(run_scheduler(other, leaving))
            await published.wait_for(lambda seen: len(seen) >= 3)
            leaving.set()
            async with asyncio.timeout(15):
                await dying
            died_at = len(published.seen)
            await published.wait_for(lambda seen: len(seen) >= died_at + 3)
        await nc.flush()
    slots = sorted(tick.slot for _, tick in published.seen if tick.slot)
    assert len(slots) == len(set(slots))
    assert [(b - a).total_seconds() for a, b in zip(slots, slots[1:], strict=False)] == [1.0] * (
        len(slots) - 1
    )


class SchedulerLines(logging.Handler):
    """The scheduler's log lines, as they are written (the replicas run in this process)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []
        self._changed = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())
        self._changed.set()

    async def wait_for(self, predicate: Callable[[list[str]], bool], within_s: float = 10) -> None:
        async with asyncio.timeout(within_s):
            while not predicate(self.lines):
                self._changed.clear()
                await self._changed.wait()


@pytest.mark.timeout(40)
async def test_pause_and_resume_reach_every_replica(
    tmp_path: Path, nats_server: NatsServer, capsys: pytest.CaptureFixture[str]
) -> None:
    one = _settings(tmp_path, nats_server, schedules={"producer": {"cron": "@every 1s"}, **OTHERS_OFF})
    other = one.model_copy(update={"data_dir": tmp_path / "other-host"})
    await _ensure_streams(one)
    published = TickLog()
    lines = SchedulerLines()
    logger = logging.getLogger("services.scheduler")
    logger.addHandler(lines)
    logger.setLevel(logging.INFO)
    try:
        async with observer(nats_server.url, HEARTBEATS) as (nc, heartbeats):
            await nc.subscribe(subjects.tick("producer"), cb=published.on_msg)
            async with schedulers([one, other], heartbeats):
                await published.wait_for(lambda seen: len(seen) >= 1)
                assert await schedules.pause_schedule(one, "producer", pause=True) == 0
                paused_at = datetime.now(UTC)

                def skipped_by_both(seen: list[str]) -> bool:
                    return sum("is paused: slot" in line for line in seen) >= 4  # two slots, two replicas

                await lines.wait_for(skipped_by_both)
                late = [t for _, t in published.seen if t.slot and t.slot > paused_at + timedelta(seconds=1)]
                assert late == []  # honoured within a second
                capsys.readouterr()
                assert await schedules.schedules(one, as_json=True) == 0
                views = {v["name"]: v for v in json.loads(capsys.readouterr().out)["schedules"]}
                assert views["producer"]["paused"] is True and views["producer"]["last_fired"] is not None
                assert views["producer"]["next"] == [] and views["producer"]["paused_since"] is not None
                assert await schedules.pause_schedule(one, "producer", pause=True) == 0  # already: said so
                assert "was already paused" in capsys.readouterr().out
                assert await schedules.pause_schedule(one, "producer", pause=False) == 0
                resumed_at = datetime.now(UTC)
                await published.wait_for(lambda seen: any(t.slot and t.slot > resumed_at for _, t in seen))
                assert await schedules.pause_schedule(one, "producer", pause=False) == 0  # was not paused
                assert "was not paused" in capsys.readouterr().out
                assert await schedules.pause_schedule(one, "nosuch", pause=True) == 2
                assert await schedules.pause_schedule(one, "prodcer", pause=True) == 2
                assert "unknown schedule 'prodcer' (did you mean 'producer'?)" in capsys.readouterr().err
    finally:
        logger.removeHandler(lines)
    assert max(Counter(msg_id for msg_id, _ in published.seen).values()) == 1


@pytest.mark.timeout(30)
async def test_a_restart_runs_the_missed_slot_once(tmp_path: Path, nats_server: NatsServer) -> None:
    settings = _settings(
        tmp_path,
        nats_server,
        schedules={"producer": {"cron": "0 * * * *", "missed": "run_once"}, **OTHERS_OFF},
    )
    now = datetime.now(settings.zone)
    latest = last_slot_before(entry(), now, 3600)
    assert latest is not None
    SlotLog(settings.data_dir / "scheduler" / "last_slots.json", settings.zone).record(
        "producer", latest - timedelta(hours=3)
    )
    await _ensure_streams(settings)
    async with observer(nats_server.url, HEARTBEATS) as (nc, heartbeats):
        reader = await _tick_reader(nc, "producer")
        async with schedulers([settings], heartbeats):
            (msg,) = await _fetch(reader, 1)
    tick = Tick.model_validate_json(msg.data)
    assert tick.slot == latest
    assert tick.missed == 2  # three hourly slots never fired; the latest runs now, two are reported
    assert msg.headers is not None and msg.headers[MSG_ID] == f"producer@{latest.isoformat()}"


@pytest.mark.timeout(30)
async def test_schedules_request_lists_next_fire_times_in_the_zone(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    settings = _settings(
        tmp_path, nats_server, timezone="Asia/Tokyo", schedules={"cleanup": {"enabled": False}}
    )
    async with observer(nats_server.url, HEARTBEATS) as (nc, heartbeats), schedulers([settings], heartbeats):
        before = datetime.now(settings.zone)
        reply = json.loads((await nc.request(subjects.SCHEDULES, b"", timeout=5)).data)
        after = datetime.now(settings.zone)
    assert reply["timezone"] == "Asia/Tokyo"
    views = {view["name"]: view for view in reply["schedules"]}
    assert set(views) == set(settings.schedules)
    for name, view in views.items():
        spec = settings.schedules[name]
        assert view["cron"] == spec.cron and view["missed"] == spec.missed
        assert view["enabled"] is (name != "cleanup")
        assert view["last_fired"] is None
        upcoming = [datetime.fromisoformat(text) for text in view["next"]]
        assert len(upcoming) == 3
        assert all(text.endswith("+09:00") for text in view["next"])
        schedule = parse_schedule(spec.cron)
        assert upcoming[0] in {schedule.next_after(before), schedule.next_after(after)}
        assert upcoming[1:] == [schedule.next_after(upcoming[0]), schedule.next_after(upcoming[1])]
    sigma = [datetime.fromisoformat(text) for text in views["consumer.sigma"]["next"]]
    assert {(slot.hour, slot.minute) for slot in sigma} < {(4, 0), (10, 0), (16, 0), (22, 0)}

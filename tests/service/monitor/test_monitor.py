"""The monitor: counts kept by file notifications and reconciliation, the status line, HTTP, bad events."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from services.monitor.app import Monitor
from services.monitor.app import run as run_monitor
from services.monitor.counter import QueueCounter
from services.monitor.labels import Labels
from services.monitor.metrics import MonitorMetrics
from services.monitor.status import Tracker
from shared.config import DEFAULT_CONFIG, PROJECT_ROOT, Settings, load_settings
from shared.messaging import (
    BackendState,
    Event,
    GeneratorBudgetExhausted,
    GeneratorCall,
    GeneratorOutcome,
    JobScored,
    ServiceHeartbeat,
    StatusRequest,
    connect,
    encode,
    subjects,
)
from shared.queue import (
    ARCHIVE,
    ERROR,
    INCOMING,
    PROCESSED,
    PROCESSING,
    QUARANTINE,
    RESULT_PROBLEMS,
    TMP,
    Claims,
    FileQueue,
    JobMeta,
    new_token,
)
from shared.watch import Change, watching
from tests.support.cli import syntx
from tests.support.harness import HEARTBEATS, free_port, observer, running, scored
from tests.support.monitors import monitor_serving, monitor_settings
from tests.support.natsserver import NatsServer

WATCHED = (INCOMING, PROCESSING, PROCESSED, ERROR, ARCHIVE, QUARANTINE, TMP)


class CountWaiter:
    """A change sink that feeds the counter and wakes the test once the kept counts equal ``expected``.

    A rename between two watched folders reaches the counter as an addition at once and as a removal
    only after watchdog gave up pairing it (about half a second), so only the complete set of counts
    of every folder is a safe condition to wait for.
    """

    def __init__(self, counter: QueueCounter) -> None:
        self.counter = counter
        self.expected: dict[str, int] = {}
        self.reached = asyncio.Event()

    def expect(self, counts: dict[str, int]) -> asyncio.Event:
        self.expected = counts
        self.reached = asyncio.Event()
        self._check()
        return self.reached

    def on_change(self, change: Change) -> None:
        self.counter.on_change(change)
        self._check()

    def _check(self) -> None:
        if self.counter.counts() == self.expected:
            self.reached.set()


def counts(**values: int) -> dict[str, int]:
    every = dict.fromkeys(WATCHED, 0)
    every.update({folder if folder != "tmp" else TMP: count for folder, count in values.items()})
    return every


async def test_counts_follow_file_notifications(queue: FileQueue) -> None:
    counter = QueueCounter(queue)
    counter.reconcile()
    waiter = CountWaiter(counter)
    async with watching([queue.root], waiter.on_change, recursive=True):
        reached = waiter.expect(counts(incoming=5))
        ids = [queue.add_job(f"prompt {index}", JobMeta()) for index in range(5)]
        (queue.folder(INCOMING) / "x_response.txt").write_text("ignored", encoding="utf-8")
        (queue.folder(INCOMING) / ".hidden.txt").write_text("ignored", encoding="utf-8")
        await asyncio.wait_for(reached.wait(), timeout=10)

        reached = waiter.expect(counts(incoming=1, processing=2, processed=1, error=1))
        claims = Claims(queue, new_token())
        taken = [claims.take(job_id) for job_id in ids[:4]]
        queue.write_result(PROCESSED, ids[0], {"status": "passed"})
        queue.write_result(ERROR, ids[1], {"status": "rejected"})
        for claim in taken[:2]:
            assert claim is not None
            claims.forget(claim)
        assert queue.counts() == waiter.expected
        await asyncio.wait_for(reached.wait(), timeout=10)

        reached = waiter.expect(counts(incoming=1, processing=2, error=1, archive=1, quarantine=1))
        (queue.folder(PROCESSED) / f"{ids[0]}.json").rename(queue.folder(ARCHIVE) / f"{ids[0]}.json")
        (queue.folder(QUARANTINE) / "bad.md").write_text("?", encoding="utf-8")
        (queue.folder(QUARANTINE) / "bad.md.why.txt").write_text("note", encoding="utf-8")
        assert queue.counts() == waiter.expected
        await asyncio.wait_for(reached.wait(), timeout=10)

    assert counter.reconcile() == 0


async def test_reconcile_corrects_drift_after_changes_while_not_watching(queue: FileQueue) -> None:
    kept = [queue.add_job("kept", JobMeta()) for _ in range(2)]
    counter = QueueCounter(queue)
    assert counter.reconcile() == 2
    assert counter.count(INCOMING) == 2

    queue.add_job("new 1", JobMeta())
    queue.add_job("new 2", JobMeta())
    queue.job_path(INCOMING, kept[0]).unlink()
    queue.write_result(ERROR, "e1", {"status": "failed"})
    assert counter.count(INCOMING) == 2  # nobody told the counter

    assert counter.reconcile() == 2  # numbers only: incoming 2 -> 3, error 0 -> 1
    assert counter.counts() == queue.counts()
    assert (counter.count(INCOMING), counter.count(ERROR)) == (3, 1)
    assert counter.drift_corrections == 4
    assert counter.reconcile() == 0


def test_oldest_incoming_age(queue: FileQueue) -> None:
    counter = QueueCounter(queue)
    assert counter.oldest_incoming_age_s() == 0.0
    job_id = queue.add_job("old", JobMeta())
    path = queue.job_path(INCOMING, job_id)
    stat = path.stat()
    os.utime(path, (stat.st_atime, stat.st_mtime - 600))
    counter.reconcile()
    assert 600 <= counter.oldest_incoming_age_s() < 700


def local_settings(tmp_path: Path, timezone: str) -> Settings:
    return load_settings([DEFAULT_CONFIG], data_dir=tmp_path / "data", timezone=timezone)


@pytest.mark.parametrize(
    ("timezone", "moment", "stamp"),
    [
        ("Europe/Berlin", datetime(2025, 12, 6, 13, 0, tzinfo=UTC), "2025-12-06 14:00"),
        ("Europe/Berlin", datetime(2025, 7, 1, 12, 0, 59, tzinfo=UTC), "2025-07-01 14:00"),
        ("Asia/Kolkata", datetime(2025, 12, 31, 20, 0, tzinfo=UTC), "2026-01-01 01:30"),
        ("UTC", datetime(2025, 12, 6, 13, 5, tzinfo=UTC), "2025-12-06 13:05"),
    ],
)
def test_status_line_format_in_the_configured_zone(
    tmp_path: Path, timezone: str, moment: datetime, stamp: str
) -> None:
    monitor = Monitor(local_settings(tmp_path, timezone))
    queue = monitor.queue
    queue.ensure()
    for index in range(12):
        queue.add_job(f"p{index}", JobMeta())
    for name, folder, count in (("p", PROCESSED, 85), ("e", ERROR, 5), ("a", ARCHIVE, 45)):
        for index in range(count):
            (queue.folder(folder) / f"{name}{index}.json").write_text("{}", encoding="utf-8")
    (queue.folder(PROCESSED) / "p0_response.txt").write_text("not counted", encoding="utf-8")
    monitor.counter.reconcile()
    assert monitor.status_line(moment) == (f"{stamp} | Incoming: 12 | Processed: 85 | Error: 5 | Archive: 45")


# -- the service over NATS -------------------------------------------------------------------------


def metric(text: str, name: str, labels: str = "") -> float:
    series = f"{name}{{{labels}}}" if labels else name
    match = re.search(rf"^{re.escape(series)} (\S+)$", text, re.MULTILINE)
    assert match, f"{series} not in /metrics"
    return float(match.group(1))


async def test_metrics_and_healthz_over_http(tmp_path: Path, nats_server: NatsServer) -> None:
    port = free_port()
    settings = monitor_settings(tmp_path, nats_server, port)
    queue = FileQueue(settings.queue_dir)
    queue.ensure()
    for index in range(3):
        queue.add_job(f"p{index}", JobMeta())
    queue.write_result(ERROR, "e1", {"status": "failed"})
    async with (
        observer(nats_server.url, HEARTBEATS) as (_nc, events),
        running(settings, {"monitor": run_monitor}, events),
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as client,
    ):
        metrics = await client.get("/metrics")
        health = await client.get("/healthz")
        missing = await client.get("/nothing")
        posted = await client.post("/metrics")

    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    text = metrics.text
    assert metric(text, "syntx_queue_jobs", 'folder="incoming"') == 3
    assert metric(text, "syntx_queue_jobs", 'folder="error"') == 1
    assert metric(text, "syntx_queue_jobs", 'folder="processed"') == 0
    assert metric(text, "syntx_queue_state", 'state="LOW"') == 1
    assert metric(text, "syntx_queue_state", 'state="STARVING"') == 0
    assert metric(text, "syntx_health_ok") == 1
    assert metric(text, "syntx_jobs_scored_total", 'status="passed",wrapper="sigma"') == 0

    assert health.status_code == 200
    assert health.json() == {"status": "ok", "nats": "connected", "health": "OK", "reasons": []}
    assert (missing.status_code, posted.status_code) == (404, 405)


async def test_malformed_events_are_dropped_and_the_monitor_keeps_serving(
    tmp_path: Path, nats_server: NatsServer, caplog: pytest.LogCaptureFixture
) -> None:
    settings = monitor_settings(tmp_path, nats_server, 0)
    monitor = Monitor(settings)
    handled: list[Event] = []
    valid_seen = asyncio.Event()
    original = monitor.tracker.on_event

    async def on_event(event: Event) -> None:
        await original(event)
        handled.append(event)
        if isinstance(event, JobScored):
            valid_seen.set()

    monitor.tracker.on_event = on_event  # type: ignore[method-assign]
    caplog.set_level(logging.WARNING, logger="shared.messaging.bus")
    stop = asyncio.Event()
    async with (
        observer(nats_server.url, HEARTBEATS) as (nc, events),
        connect(settings.nats, name="monitor") as bus,
    ):
        task = asyncio.create_task(monitor.serve(bus, stop))
        await events.wait_for(ready(task))

        await nc.publish(subjects.JOB_SCORED, b"{this is not json")
        wrong = json.loads(encode(scored("j1")))
        wrong["score"] = "very good"
        await nc.publish(subjects.JOB_SCORED, json.dumps(wrong).encode())
        await nc.publish(subjects.JOB_SCORED, encode(scored("j2")))
        await asyncio.wait_for(valid_seen.wait(), timeout=10)

        reply = json.loads((await nc.request(subjects.STATUS, b"", timeout=5)).data)
        stop.set()
        await asyncio.wait_for(task, timeout=30)

    assert bus.malformed[subjects.JOB_SCORED] == 2
    registry = monitor.metrics.registry
    assert registry.get_sample_value("syntx_malformed_messages_total", {"subject": subjects.JOB_SCORED}) == 2
    assert [event.job_id for event in handled if isinstance(event, JobScored)] == ["j2"]
    dropped = [message for message in caplog.messages if message.startswith("dropping malformed message")]
    assert len(dropped) == 1  # one line per subject per nats.malformed_log_interval_s, however many
    assert "body: not JSON" in dropped[0]
    assert reply["scored"] == {"sigma": {"passed": 1, "rejected": 0}}
    assert reply["queue_state"] == "STARVING"


def ready(task: asyncio.Task[None]) -> Callable[[list[Event]], bool]:
    def check(events: list[Event]) -> bool:
        if task.done():
            task.result()
        return any(isinstance(event, ServiceHeartbeat) and event.service == "monitor" for event in events)

    return check


async def test_status_request_with_reconcile_recounts(tmp_path: Path) -> None:
    monitor = Monitor(local_settings(tmp_path, "UTC"))
    monitor.queue.ensure()
    monitor.counter.reconcile()
    monitor.queue.add_job("p", JobMeta())  # no watcher: the kept counts do not know yet
    stale = await monitor.status(StatusRequest())
    fresh = await monitor.status(StatusRequest(reconcile=True))
    assert (stale.counts[INCOMING], fresh.counts[INCOMING]) == (0, 1)
    assert fresh.queue_state == "LOW"


async def test_archive_counts_follow_notifications_across_day_folders(queue: FileQueue) -> None:
    """Results archived into new day folders are counted as they arrive; a removed day folder is
    uncounted; the flat archive of earlier versions counts too."""
    (queue.folder(ARCHIVE) / "flat.json").write_text("{}", encoding="utf-8")
    ids = [f"job-{index}" for index in range(4)]
    for job_id in ids:
        queue.write_result(PROCESSED, job_id, {"status": "passed"})
    counter = QueueCounter(queue)
    counter.reconcile()
    assert counter.counts() == counts(processed=4, archive=1)
    waiter = CountWaiter(counter)
    async with watching([queue.root], waiter.on_change, recursive=True):
        reached = waiter.expect(counts(archive=5))
        for index, job_id in enumerate(ids):
            day = datetime(2026, 11, 28 + index % 2, tzinfo=UTC)
            queue.archive(queue.folder(PROCESSED) / f"{job_id}.json", day)
        await asyncio.wait_for(reached.wait(), timeout=10)

        reached = waiter.expect(counts(archive=3))
        assert queue.remove_archive_day("2026-11-28") == 2
        await asyncio.wait_for(reached.wait(), timeout=10)

    assert counter.reconcile() == 0
    assert counter.counts() == queue.counts()


def generator_call(
    outcome: GeneratorOutcome, tokens: tuple[int, int], cost: float, spent: float
) -> GeneratorCall:
    return GeneratorCall(
        model="m",
        outcome=outcome,
        category="harmlos",
        style="casual",
        input_tokens=tokens[0],
        output_tokens=tokens[1],
        cost=cost,
        spent_today=spent,
        daily_budget=0.015,
    )


async def test_generator_events_become_cost_token_and_budget_metrics() -> None:
    settings = load_settings([DEFAULT_CONFIG])
    metrics = MonitorMetrics(CollectorRegistry())
    tracker = Tracker(metrics, Labels(settings), settings.monitor)
    await tracker.on_event(generator_call("used", (1000, 500), 0.006, 0.006))
    await tracker.on_event(generator_call("refused", (900, 20), 0.002, 0.008))
    text = generate_latest(metrics.registry).decode()
    assert metric(text, "syntx_producer_generator_calls_total", 'outcome="used"') == 1
    assert metric(text, "syntx_producer_generator_calls_total", 'outcome="refused"') == 1
    assert metric(text, "syntx_producer_generator_calls_total", 'outcome="over_budget"') == 0
    assert metric(text, "syntx_producer_generator_tokens_total", 'direction="input"') == 1900
    assert metric(text, "syntx_producer_generator_cost_total") == pytest.approx(0.008)
    assert metric(text, "syntx_producer_generator_budget_exhausted") == 0

    exhausted = GeneratorBudgetExhausted(
        model="m", day="2026-11-30", spent=0.012, daily_budget=0.015, calls=2, input_tokens=1, output_tokens=1
    )
    await tracker.on_event(exhausted)
    await tracker.on_event(generator_call("over_budget", (0, 0), 0.0, 0.012))
    text = generate_latest(metrics.registry).decode()
    assert metric(text, "syntx_producer_generator_budget_exhausted") == 1
    assert metric(text, "syntx_producer_generator_spent_today") == pytest.approx(0.012)
    assert "generator" in tracker.last_runs


def test_the_readme_lists_every_metric_and_every_untrusted_reason() -> None:
    readme = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    paragraph = readme[readme.index("**Metrics** (all prefixed `syntx_`)") :].split("\n\n")[0]
    listed = set(re.findall(r"`([a-z_]+)(?:\{[a-z_,]+\})?`", paragraph))
    families = MonitorMetrics(CollectorRegistry()).registry.collect()
    exported = {
        family.name.removeprefix("syntx_") + ("_total" if family.type == "counter" else "")
        for family in families
    }
    assert exported <= listed, f"not in the README: {sorted(exported - listed)}"
    assert set(RESULT_PROBLEMS) <= listed, (
        f"reasons not in the README: {sorted(set(RESULT_PROBLEMS) - listed)}"
    )


def test_counts_are_numbers_per_folder_and_day_not_names(queue: FileQueue) -> None:
    """Renames reach the counter as a removal and an addition; the archive is the sum of its days."""
    counter = QueueCounter(queue)
    counter.reconcile()
    for name in ("a.json", "b.json"):
        counter.on_change(("added", PROCESSED, name))
    counter.on_change(("removed", PROCESSED, "a.json"))
    counter.on_change(("added", "2026-11-30", "a.json"))  # processed/ -> archive/2026-11-30/
    counter.on_change(("added", "2026-11-29", "c.json"))
    counter.on_change(("added", "elsewhere", "d.json"))  # not a queue folder: not counted
    assert (counter.count(PROCESSED), counter.count(ARCHIVE)) == (1, 2)
    kept_names = [value for value in vars(counter).values() if isinstance(value, set | dict)]
    assert all(len(kept) <= len(WATCHED) + 2 for kept in kept_names)  # a number per place, no name per result


def test_a_recount_that_raced_with_a_change_is_not_taken(queue: FileQueue) -> None:
    """A notification for a folder while it was counted: the recount cannot tell whether it saw that file."""
    counter = QueueCounter(queue)
    counter.reconcile()
    queue.write_result("error", "e1", {"status": "failed"})  # on disk, not yet notified
    marks = dict(counter._changes)  # when a recount in a thread starts
    found = counter.recount()
    counter.on_change(("added", ERROR, "e1.json"))  # the notification arrives while it counts
    assert counter.settle(found, marks) == 0
    assert counter.count(ERROR) == 1 and ERROR in counter.unsettled  # not 2
    assert counter.reconcile() == 0 and not counter.unsettled


def test_a_raced_recount_is_taken_when_the_kept_number_is_known_wrong(queue: FileQueue) -> None:
    """Never counted yet (a monitor starting beside a busy queue): the recount is the better number."""
    for job_id in ("p1", "p2", "p3"):
        queue.write_result("processed", job_id, {"status": "passed"})
    counter = QueueCounter(queue)
    marks = dict(counter._changes)
    found = counter.recount()
    queue.write_result("processed", "p4", {"status": "passed"})
    counter.on_change(("added", PROCESSED, "p4.json"))
    counter.settle(found, marks)
    assert counter.count(PROCESSED) == 3 and PROCESSED in counter.unsettled  # not 1: confirmed later
    counter.reconcile()
    assert counter.count(PROCESSED) == 4 and not counter.unsettled


def test_lost_notifications_make_every_folder_unsure_until_recounted(queue: FileQueue) -> None:
    counter = QueueCounter(queue)
    counter.reconcile()
    queue.add_job("unannounced", JobMeta())
    counter.on_change(("overflow", "", ""))
    assert counter.recount_wanted.is_set() and INCOMING in counter.unsettled
    assert counter.reconcile() == 1
    assert counter.count(INCOMING) == 1 and not counter.unsettled


async def test_a_recount_in_a_thread_counts_archive_days_and_forgets_removed_ones(queue: FileQueue) -> None:
    counter = QueueCounter(queue)
    for job_id in ("j1", "j2", "j3"):
        queue.write_result("processed", job_id, {"status": "passed"})
    old_day = datetime(2026, 11, 1, tzinfo=UTC)
    queue.archive(queue.folder(PROCESSED) / "j1.json", old_day)
    queue.archive(queue.folder(PROCESSED) / "j2.json")
    assert await counter.reconcile_in_thread() == 3
    assert counter.counts() == queue.counts()
    queue.remove_archive_day("2026-11-01")
    assert await counter.reconcile_in_thread() == 1
    assert counter.count(ARCHIVE) == 1 and counter.counts() == queue.counts()


async def test_unpaired_moves_keep_counts_exact_through_a_burst_of_renames(queue: FileQueue) -> None:
    """The monitor's watch (moves unpaired): each rename arrives as a removal and an addition."""
    for index in range(300):
        queue.write_result(PROCESSED, f"job-{index}", {"status": "passed"})
    counter = QueueCounter(queue)
    counter.reconcile()
    waiter = CountWaiter(counter)
    async with watching([queue.root], waiter.on_change, recursive=True, pair_moves=False):
        reached = waiter.expect(counts(processed=100, error=200))
        for index in range(200):
            name = f"job-{index}.json"
            os.rename(queue.folder(PROCESSED) / name, queue.folder(ERROR) / name)
        await asyncio.wait_for(reached.wait(), timeout=10)
    assert counter.reconcile() == 0


def test_every_series_with_a_known_label_value_starts_at_zero() -> None:
    """``increase()`` sees the first event, and no dashboard panel is empty for want of one."""
    settings = load_settings([DEFAULT_CONFIG])
    monitor = Monitor(settings, CollectorRegistry())
    value = monitor.metrics.registry.get_sample_value
    for wrapper, consumer in settings.consumers.items():
        assert value("syntx_jobs_scored_total", {"wrapper": wrapper, "status": "passed"}) == 0
        assert value("syntx_job_score_count", {"wrapper": wrapper}) == 0
        labels = {"wrapper": wrapper, "backend": consumer.backend.kind}
        assert value("syntx_llm_request_seconds_count", labels) == 0
    for source in ("producer", "watcher", "retry"):
        assert value("syntx_jobs_created_total", {"source": source}) == 0
    for schedule in settings.schedules:
        assert value("syntx_ticks_total", {"schedule": schedule}) == 0
    assert value("syntx_malformed_messages_total", {"subject": "syntx.job.scored"}) == 0
    assert value("syntx_health_state", {"state": "OK"}) == 1


def _waiting_jobs(queue: FileQueue, count: int) -> list[Path]:
    """``count`` jobs in incoming/, named and dated oldest first (a minute apart)."""
    now = datetime.now(UTC).timestamp()
    paths = []
    for index in range(count):
        path = queue.job_path(INCOMING, queue.add_job(f"job {index}", JobMeta(), job_id=f"job-{index:03d}"))
        os.utime(path, (now, now - 60 * (count - index)))
        paths.append(path)
    return paths


def test_only_the_oldest_waiting_names_are_kept_and_found_again_when_they_run_out(
    queue: FileQueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("services.monitor.counter.OLDEST_KEPT", 5)
    paths = _waiting_jobs(queue, 20)
    counter = QueueCounter(queue)
    counter.reconcile()
    assert counter._oldest.in_order() == [path.name for path in paths[:5]]  # 5 names, not 20
    assert 20 * 60 <= counter.oldest_incoming_age_s() < 21 * 60
    for path in paths[:5]:  # consumers claim the oldest first
        path.unlink()
        counter.on_change(("removed", INCOMING, path.name))
    assert counter.recount_wanted.is_set()  # the kept names ran out while 15 jobs wait
    assert 20 * 60 <= counter.oldest_incoming_age_s() < 21 * 60  # the last age found, until recounted
    counter.reconcile()
    assert 15 * 60 <= counter.oldest_incoming_age_s() < 16 * 60  # job-005, found by the recount
    assert counter._oldest.in_order() == [path.name for path in paths[5:10]]


def test_a_newer_job_is_not_kept_once_the_oldest_are(
    queue: FileQueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("services.monitor.counter.OLDEST_KEPT", 3)
    counter = QueueCounter(queue)
    counter.reconcile()
    for name in ("b.txt", "d.txt", "c.txt", "e.txt", "a.txt"):
        counter.on_change(("added", INCOMING, name))
    assert counter._oldest.in_order() == ["a.txt", "b.txt", "c.txt"]
    assert counter.count(INCOMING) == 5


def test_a_known_wrong_count_takes_every_recount_until_a_quiet_one(queue: FileQueue) -> None:
    """After lost notifications, the kept number is unsure, and late notifications of files a recount
    already saw count them twice: every recount replaces it, until a quiet one confirms it."""
    counter = QueueCounter(queue)
    counter.reconcile()
    for job_id in ("a", "b", "c"):
        queue.add_job("p", JobMeta(), job_id=job_id)
    counter.on_change(("overflow", "", ""))

    def recount_racing_with(name: str) -> None:
        marks = dict(counter._changes)
        found = counter.recount()
        counter.on_change(("added", INCOMING, name))  # notified while it counted
        counter.settle(found, marks)

    recount_racing_with("c.txt")
    assert counter.count(INCOMING) == 3 and INCOMING in counter.unsettled
    counter.on_change(("added", INCOMING, "a.txt"))  # notifications from before the overflow, late
    counter.on_change(("added", INCOMING, "b.txt"))
    queue.add_job("p", JobMeta(), job_id="d")
    recount_racing_with("d.txt")
    assert counter.count(INCOMING) == 4 and INCOMING in counter.unsettled  # not 6
    counter.reconcile()
    assert counter.count(INCOMING) == 4 and not counter.unsettled


async def _healthz_until(url: str, state: str) -> tuple[int, dict[str, Any]]:
    """/healthz, asked again until its body says ``state`` (the count follows file notifications)."""
    async with httpx.AsyncClient(timeout=5) as client, asyncio.timeout(20):
        while True:
            reply = await client.get(url)
            if reply.json()["health"] == state:
                return reply.status_code, reply.json()
            await asyncio.sleep(0.1)


async def test_healthz_and_status_check_answer_by_health(
    tmp_path: Path,
    nats_server: NatsServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """200 for OK and WARNING, 503 for CRITICAL, the body saying the same state; `syntx status --check`
    exits 0, 1, 2 by the Nagios plugin convention (3 with no monitor to ask)."""
    port = free_port()
    settings = monitor_settings(tmp_path, nats_server, port)
    monkeypatch.setenv("SYNTX_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("SYNTX_NATS__URL", nats_server.url)
    queue = FileQueue(settings.queue_dir)
    queue.ensure()
    url = f"http://127.0.0.1:{port}/healthz"
    seen = {}
    async with monitor_serving(settings):
        for jobs, state in ((0, "OK"), (30, "WARNING"), (60, "CRITICAL")):  # STARVING, HIGH, OVERFLOW
            for index in range(jobs - len(sorted(queue.job_ids(INCOMING)))):
                queue.add_job(f"p{jobs}-{index}", JobMeta())
            code, body = await _healthz_until(url, state)
            checked = await asyncio.to_thread(syntx, "status", "--check")
            seen[state] = (code, body["status"], checked, capsys.readouterr().out)
    assert {state: found[:3] for state, found in seen.items()} == {
        "OK": (200, "ok", 0),
        "WARNING": (200, "warning", 1),
        "CRITICAL": (503, "critical", 2),
    }
    assert seen["OK"][3].startswith("syntx OK - queue STARVING, oldest waiting job 0s | incoming=0 ")
    assert seen["CRITICAL"][3].startswith("syntx CRITICAL - overflow: queue OVERFLOW: 60 jobs waiting")
    monkeypatch.setenv("SYNTX_NATS__URL", f"nats://127.0.0.1:{free_port()}")
    assert await asyncio.to_thread(syntx, "status", "--check") == 3


async def test_instances_of_one_service_count_once_each_and_one_started_again_takes_its_place() -> None:
    """Two processes of one consumer are two live instances; under `syntx up` a process started again in
    a killed one's place (same supervised name and host, a new pid) replaces it at once, and the goodbye
    of the one it replaced does not remove it."""
    settings = load_settings([DEFAULT_CONFIG])
    tracker = Tracker(MonitorMetrics(CollectorRegistry()), Labels(settings), settings.monitor)
    since = datetime.now(UTC)

    def beat(supervised_as: str | None, pid: int, stopping: bool = False) -> ServiceHeartbeat:
        instance = f"consumer.sigma@host:{pid}"
        return ServiceHeartbeat(
            service="consumer.sigma",
            instance=instance,
            started_at=since,
            stopping=stopping,
            supervised_as=supervised_as,
        )

    async def live_after(*beats: ServiceHeartbeat) -> int:
        for each in beats:
            await tracker.on_event(each)
        return tracker.refresh_services().get("consumer.sigma", 0)

    assert await live_after(beat("consumer.sigma", 10), beat("consumer.sigma-2", 11)) == 2
    assert await live_after(beat("consumer.sigma-2", 12)) == 2  # 11 was killed; 12 took its place
    assert await live_after(beat("consumer.sigma-2", 11, stopping=True)) == 2  # a late goodbye of 11
    assert await live_after(beat("consumer.sigma-2", 12, stopping=True)) == 1
    assert await live_after(beat(None, 20), beat(None, 21)) == 3  # not under `syntx up`: by instance


async def test_a_backend_is_down_while_a_live_instance_says_so_not_once_that_instance_is_gone() -> None:
    """Each of a consumer's processes says for itself whether its backend answers: one that answers again
    does not clear what another still failing said, and a process that stops takes its word with it."""
    settings = load_settings([DEFAULT_CONFIG])
    metrics = MonitorMetrics(CollectorRegistry())
    tracker = Tracker(metrics, Labels(settings), settings.monitor)
    since = datetime.now(UTC)
    first, second = "consumer.sigma@host:10", "consumer.sigma@host:11"

    def said(instance: str, available: bool) -> BackendState:
        failures = 0 if available else 2
        return BackendState(
            wrapper="sigma",
            backend="openai",
            available=available,
            consecutive_failures=failures,
            pause_s=1.0,
            instance=instance,
        )

    async def down_after(*events: Event) -> list[str]:
        for event in events:
            await tracker.on_event(event)
        return tracker.backends_down()

    beats = [
        ServiceHeartbeat(service="consumer.sigma", instance=x, started_at=since) for x in (first, second)
    ]
    assert await down_after(*beats, said(first, False), said(second, False)) == ["sigma"]
    assert await down_after(said(second, True)) == ["sigma"]  # the first still fails
    assert metrics.registry.get_sample_value("syntx_backend_available", {"wrapper": "sigma"}) == 0
    assert await down_after(beats[0].model_copy(update={"stopping": True})) == []
    assert metrics.registry.get_sample_value("syntx_backend_available", {"wrapper": "sigma"}) == 1

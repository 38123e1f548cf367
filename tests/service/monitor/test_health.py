"""Health with reasons: each cause a sentence, each state clearing when its cause does."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from prometheus_client import CollectorRegistry

from services.monitor.app import Monitor
from services.monitor.counter import QueueCounter
from services.monitor.health import Observations, OutcomeWindow, judge, missed_schedules
from services.monitor.progress import Progress
from shared.config import DEFAULT_CONFIG, HealthSettings, ScheduleSettings, load_settings
from shared.cron import parse_schedule
from shared.messaging import (
    BackendState,
    Delivery,
    JobFailed,
    PausedSchedules,
    QueueState,
    ServiceHeartbeat,
    connect,
    encode,
    subjects,
)
from shared.queue import JobMeta
from tests.support.harness import scored
from tests.support.monitors import monitor_serving, monitor_settings
from tests.support.natsserver import NatsServer

LIMITS = HealthSettings()


def quiet(**changes: object) -> Observations:
    values: dict[str, object] = {
        "queue_state": "BALANCED",
        "incoming": 10,
        "outcomes": (0, 0, 0),
        "oldest_claim_age_s": None,
        "backends_down": [],
        "wrappers": 2,
        "silent_services": [],
        "expected_services": 5,
        "missed_schedules": [],
    }
    values.update(changes)
    return Observations(**values)  # type: ignore[arg-type]


def test_nothing_wrong_is_ok_with_no_reasons() -> None:
    report = judge(quiet(), LIMITS, lease_s=120)
    assert (report.state, report.reasons) == ("OK", [])


def test_error_share_of_the_window_not_a_file_count() -> None:
    assert judge(quiet(outcomes=(90, 9, 1)), LIMITS, 120).state == "OK"  # rejections are the learning signal
    warning = judge(quiet(outcomes=(7, 0, 3)), LIMITS, 120)
    assert warning.state == "WARNING"
    assert [r.text for r in warning.reasons] == [
        "30% of the last hour's 10 jobs failed (no answer or malformed)"
    ]
    assert judge(quiet(outcomes=(1, 0, 3)), LIMITS, 120).state == "OK"  # too few jobs to judge
    assert judge(quiet(outcomes=(4, 0, 6)), LIMITS, 120).state == "CRITICAL"


def test_almost_everything_rejected_is_a_warning() -> None:
    report = judge(quiet(outcomes=(0, 10, 0)), LIMITS, 120)
    assert [(r.code, r.severity) for r in report.reasons] == [("rejected_share", "WARNING")]


def test_queue_claims_backends_services_and_schedules_each_give_a_reason() -> None:
    report = judge(
        quiet(
            queue_state="HIGH",
            incoming=30,
            oldest_claim_age_s=300.0,
            backends_down=["sigma"],
            silent_services=["cleanup"],
            missed_schedules=["schedule cleanup has not fired since … (two slots missed)"],
        ),
        LIMITS,
        lease_s=120,
    )
    assert report.state == "WARNING"
    assert [r.code for r in report.reasons] == [
        "backlog",
        "lease_overdue",
        "backend_down",
        "service_silent",
        "schedule_missed",
    ]
    assert report.reasons[1].text.startswith("a job has been claimed for 300s, past its 120s lease")


def test_critical_causes() -> None:
    assert judge(quiet(queue_state="OVERFLOW", incoming=60), LIMITS, 120).state == "CRITICAL"
    assert judge(quiet(backends_down=["sigma", "syntex_system"]), LIMITS, 120).state == "CRITICAL"
    assert judge(quiet(silent_services=["a", "b", "c"]), LIMITS, 120).state == "CRITICAL"


def test_a_queue_that_cannot_be_written_is_critical_with_where_and_why() -> None:
    fault = "consumer.sigma: file in processed/: No space left on device (ENOSPC), for 42s"
    report = judge(quiet(queue_faults=(fault,)), LIMITS, 120)
    assert report.state == "CRITICAL"
    [reason] = report.reasons
    assert reason.code == "queue_unwritable"
    assert reason.text == (
        f"the queue cannot be written ({fault}): claims paused, answers kept, probing until it can"
    )


def test_the_outcome_window_forgets_what_is_older_than_the_window() -> None:
    now = [0.0]
    window = OutcomeWindow(3600.0, clock=lambda: now[0])
    for _ in range(5):
        window.add("failed")
    assert window.totals() == (0, 0, 5)
    now[0] = 1800.0
    window.add("passed")
    assert window.totals() == (1, 0, 5)
    now[0] = 3700.0  # the failures' minute left the window, the pass did not
    assert window.totals() == (1, 0, 0)


def test_a_schedule_is_missed_after_two_slots_without_a_tick() -> None:
    schedules = {"producer": (parse_schedule("@every 10s"), 5.0)}
    start = datetime(2026, 11, 30, 12, 0, 0, tzinfo=UTC)
    assert missed_schedules(schedules, {}, start, start + timedelta(seconds=24)) == []
    missed = missed_schedules(schedules, {}, start, start + timedelta(seconds=26))
    assert missed == ["schedule producer has not fired since 2026-11-30 12:00:00 +0000 (two slots missed)"]
    fired = {"producer": start + timedelta(seconds=20)}
    assert missed_schedules(schedules, fired, start, start + timedelta(seconds=26)) == []


async def test_a_backend_going_down_and_up_shows_and_clears_over_the_bus(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    settings = monitor_settings(tmp_path, nats_server, 0)
    async with monitor_serving(settings) as (monitor, nc):

        async def status_after(*messages: tuple[str, bytes]) -> dict[str, object]:
            for subject, body in messages:
                await nc.publish(subject, body)
            await nc.flush()
            reply: dict[str, object] = json.loads((await nc.request(subjects.STATUS, b"", timeout=5)).data)
            return reply

        down = BackendState(
            wrapper="sigma", backend="openai", available=False, consecutive_failures=3, pause_s=4
        )
        failed = [
            JobFailed(
                job_id=f"f{i}",
                wrapper="sigma",
                backend="openai",
                reason="x",
                attempt=3,
                will_retry=False,
                final_status="failed",
            )
            for i in range(5)
        ]
        first = await status_after(
            (subjects.CONSUMER_BACKEND, down.model_dump_json().encode()),
            *((subjects.JOB_FAILED, event.model_dump_json().encode()) for event in failed),
        )
        up = down.model_copy(update={"available": True, "consecutive_failures": 0})
        passes = [(subjects.JOB_SCORED, scored(f"p{i}").model_dump_json().encode()) for i in range(30)]
        second = await status_after((subjects.CONSUMER_BACKEND, up.model_dump_json().encode()), *passes)

    assert first["health"] == "CRITICAL"
    codes = {reason["code"] for reason in first["health_reasons"]}  # type: ignore[attr-defined]
    assert codes == {"backend_down", "error_share"}
    assert second["health"] == "OK" and second["health_reasons"] == []
    registry = monitor.metrics.registry
    assert registry.get_sample_value("syntx_health_reason", {"reason": "backend_down"}) == 0
    assert registry.get_sample_value("syntx_health_state", {"state": "OK"}) == 1


async def test_a_paused_schedule_is_not_missed_and_a_resumed_one_counts_from_its_resume(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    settings = monitor_settings(tmp_path, nats_server, 0).model_copy(
        update={
            "schedules": {"producer": ScheduleSettings(cron="@every 1s", jitter_s=0)},
            "monitor": monitor_settings(tmp_path, nats_server, 0).monitor.model_copy(
                update={"health": HealthSettings(schedule_grace_s=0.5)}
            ),
        }
    )
    async with (
        monitor_serving(settings) as (_monitor, nc),
        connect(settings.nats, name="operator") as bus,
    ):
        pauses = PausedSchedules(await bus.key_value(settings.scheduler.state_bucket))

        async def reasons() -> set[str]:
            reply = json.loads((await nc.request(subjects.STATUS, b"", timeout=5)).data)
            return {reason["code"] for reason in reply["health_reasons"]}

        async def until(condition: Callable[[set[str]], bool]) -> None:
            async with asyncio.timeout(20):
                while not condition(await reasons()):  # noqa: ASYNC110 - asking the monitor is the event
                    await asyncio.sleep(0.2)

        await until(lambda codes: "schedule_missed" in codes)  # no scheduler runs: two slots pass
        await pauses.pause("producer", datetime.now(UTC))
        await until(lambda codes: "schedule_missed" not in codes)
        await pauses.resume("producer")
        assert "schedule_missed" not in await reasons()  # counted from the resume, not the last tick
        await until(lambda codes: "schedule_missed" in codes)  # and missed again two slots later


async def test_a_queue_fault_shows_while_its_service_lives_and_clears_when_it_can_write_again(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    """The consumer's QueueState events and its heartbeat feed the reason, as BackendState feeds
    backend_down; a service that stops (or goes silent) takes its fault with it."""
    settings = monitor_settings(tmp_path, nats_server, 0)
    instance = "consumer.sigma@host:1"
    since = datetime.now(UTC)
    down = QueueState(
        service="consumer.sigma",
        instance=instance,
        writable=False,
        folder="processed/",
        operation="file a result",
        error="No space left on device (ENOSPC)",
        since=since,
    )
    beat = ServiceHeartbeat(service="consumer.sigma", instance=instance, started_at=since)
    async with monitor_serving(settings) as (monitor, nc):

        async def reasons_after(*messages: tuple[str, bytes]) -> dict[str, str]:
            for subject, body in messages:
                await nc.publish(subject, body)
            await nc.flush()
            reply = json.loads((await nc.request(subjects.STATUS, b"", timeout=5)).data)
            return {reason["code"]: reason["text"] for reason in reply["health_reasons"]}

        alive = (subjects.SERVICE_HEARTBEAT, encode(beat))
        first = await reasons_after(alive, (subjects.QUEUE_STATE, encode(down)))
        exported = monitor.metrics.registry.get_sample_value(
            "syntx_health_reason", {"reason": "queue_unwritable"}
        )
        assert exported == 2  # CRITICAL: the series and value the alert SyntxQueueUnwritable watches
        up = down.model_copy(update={"writable": True, "folder": None, "operation": None, "error": None})
        second = await reasons_after((subjects.QUEUE_STATE, encode(up)))
        third = await reasons_after((subjects.QUEUE_STATE, encode(down)))
        gone = beat.model_copy(update={"stopping": True})
        fourth = await reasons_after((subjects.SERVICE_HEARTBEAT, encode(gone)))
    assert first["queue_unwritable"].startswith(
        "the queue cannot be written (consumer.sigma: file a result in processed/: "
        "No space left on device (ENOSPC), for "
    )
    assert "queue_unwritable" not in second
    assert "queue_unwritable" in third
    assert "queue_unwritable" not in fourth
    registry = monitor.metrics.registry
    assert registry.get_sample_value("syntx_health_reason", {"reason": "queue_unwritable"}) == 0


def test_a_lost_nats_connection_is_critical_and_says_for_how_long_and_why() -> None:
    report = judge(quiet(nats_down_s=14.6, nats_problem="timeout"), LIMITS, 120)
    assert report.state == "CRITICAL"
    assert [(r.code, r.text) for r in report.reasons] == [
        (
            "nats_down",
            "NATS has not answered for 15s (timeout): no tick or event is delivered; "
            "every service reconnects by itself",
        )
    ]


def test_stalled_is_critical_unless_a_backend_down_or_an_unwritable_queue_explains_it() -> None:
    stalled = judge(quiet(incoming=12, claimed=2, stalled_s=1830.0), LIMITS, 120)
    assert [(r.code, r.severity) for r in stalled.reasons] == [("stalled", "CRITICAL")]
    assert stalled.reasons[0].text.startswith(
        "nothing finished for 1830s though 12 jobs wait and 2 are claimed"
    )
    explained = judge(quiet(stalled_s=1830.0, backends_down=["sigma", "syntex_system"]), LIMITS, 120)
    assert [r.code for r in explained.reasons] == ["backend_down"]
    unwritable = judge(quiet(stalled_s=1830.0, queue_faults=("consumer.sigma: …",)), LIMITS, 120)
    assert [r.code for r in unwritable.reasons] == ["queue_unwritable"]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_an_ask_unanswered_for_stalled_after_s_is_a_stall_and_a_result_answers_it() -> None:
    clock, last_result = Clock(), [float("-inf")]
    progress = Progress(60.0, lambda: last_result[0], clock)
    assert progress.stalled_for_s(jobs=5) is None  # nobody asked the consumers yet
    progress.asked()
    clock.now += 59
    progress.asked()  # asked again: the clock runs from the first unanswered ask
    assert progress.stalled_for_s(jobs=5) is None
    clock.now += 2
    assert progress.stalled_for_s(jobs=5) == 61
    last_result[0] = clock.now  # a result landed: the ask is answered
    assert progress.stalled_for_s(jobs=5) is None
    clock.now += 10
    progress.asked()
    clock.now += 100
    assert progress.stalled_for_s(jobs=0) is None  # nothing waits: nothing can be stalled
    assert progress.stalled_for_s(jobs=5) is None  # … and the ask was forgotten with it


async def test_the_monitor_says_stalled_when_a_consumer_tick_found_jobs_and_nothing_finished(
    tmp_path: Path,
) -> None:
    settings = load_settings(
        [DEFAULT_CONFIG], data_dir=tmp_path / "data", monitor={"health": {"stalled_after_s": 600}}
    )
    clock = Clock()
    monitor = Monitor(settings, CollectorRegistry())
    monitor.counter = QueueCounter(monitor.queue, clock=clock)
    monitor.progress = Progress(600, lambda: monitor.counter.last_result_at, clock)
    monitor.queue.ensure()
    monitor.queue.add_job("p", JobMeta())
    monitor.counter.reconcile()
    tick = Delivery(subject=subjects.tick("consumer.sigma"), data=b"")
    await monitor.on_any_tick(tick)
    clock.now += 599
    assert "stalled" not in {reason.code for reason in monitor.refresh().health_reasons}
    clock.now += 2
    status = monitor.refresh()
    assert [reason.code for reason in status.health_reasons] == ["stalled"]
    assert (
        monitor.metrics.registry.get_sample_value("syntx_health_reason", {"reason": "stalled"}) == 2
    )  # CRITICAL
    monitor.counter.on_change(("added", "processed", "x.json"))  # a result lands
    assert monitor.refresh().health_reasons == []

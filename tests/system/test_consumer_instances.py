"""``instances: 2`` under ``syntx up``: two processes of one consumer share its queue — every job scored
once, none lost — both show as live instances, each writes its own log file, and one that is killed is
restarted while the other keeps going."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from shared.config import QueueSettings
from shared.messaging import JobScored, ServiceHeartbeat, subjects
from shared.queue import ERROR, PROCESSED, RESULT_SUFFIX, FileQueue, JobMeta, JobResult
from tests.support.chaos import BIN, Up, environment, syntx_up
from tests.support.consumers import until
from tests.support.harness import EventLog, observer

SERVICE = "consumer.sigma"
SECOND = "consumer.sigma-2"
READY = re.compile(rf"{re.escape(SERVICE)} connected and ready \({re.escape(SERVICE)}@\S+:(\d+)\)")
HOST = socket.gethostname()
MAX_RESULT_BYTES = QueueSettings().max_result_bytes
JOBS = 60  # per batch: a few seconds of work for two processes at concurrency 2
CONFIG = """
schedules:  # no ticks: the consumers take jobs as they land, the test writes them
  producer:               {cron: "@every 10s", enabled: false}
  consumer.syntex_system: {cron: "@every 10s", enabled: false}
  consumer.sigma:         {cron: "@every 10s", enabled: false}
consumers:
  sigma: {instances: 2, watch: true, concurrency: 2, rescan_s: 1, shutdown_grace_s: 2,
          backend: {kind: offline, offline_delay_s: 0.05}}
queue: {lease_s: 3}
up: {restart: {base_s: 0.25, max_s: 1}}
"""


@pytest.mark.timeout(240)
async def test_two_instances_share_the_queue_and_one_killed_is_restarted(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = environment(CONFIG, tmp_path / "instances.yaml", data)
    url = f"nats://127.0.0.1:{env['SYNTX_NATS__EMBEDDED_PORT']}"
    commands = {**env, "SYNTX_NATS__URL": url}  # `syntx status` and `syntx health` ask the embedded server
    queue = FileQueue(data / "queue")
    async with syntx_up(env) as up:
        await up.wait_for("embedded nats-server ready", 1, within_s=60)
        async with observer(url, subjects.JOB_SCORED, subjects.SERVICE_HEARTBEAT) as (_nc, events):
            first = await _two_live_instances(up, events, commands)
            jobs = _add_jobs(queue, JOBS, "a")
            await events.wait_for(lambda _: _scored(events) >= jobs, within_s=90)
            assert len(_answered_by(queue, jobs)) == 2  # both processes took jobs

            more = _add_jobs(queue, JOBS, "b")
            await events.wait_for(lambda _: len(_scored(events) & more) >= JOBS // 4, within_s=60)
            os.kill(first[SECOND], signal.SIGKILL)
            killed_at = datetime.now(UTC)
            await up.wait_for(f"{SECOND} exited with code -9; restarting", 1, within_s=30)
            # On disk, not by events: a process killed between filing a result and saying so is not
            # asked to say it again (its claim is dropped, the job is done).
            await until(lambda: set(_results(queue)) >= jobs | more, "every job filed", within_s=90)
            restarted = await _two_live_instances(up, events, commands)

        up.process.send_signal(signal.SIGINT)
        await asyncio.wait_for(up.process.wait(), timeout=60)

    assert restarted[SERVICE] == first[SERVICE]
    assert _answered_by(queue, more, after=killed_at) >= {f"{SERVICE}@{HOST}:{first[SERVICE]}"}  # kept going
    assert restarted[SECOND] != first[SECOND]
    scored = Counter(event.job_id for event in events.of(JobScored))
    assert {job for job, times in scored.items() if times > 1} == set()  # none processed twice
    assert _results(queue) == Counter(jobs | more)  # none lost, one result each
    ready = {name: _ready_pids(data / "logs" / f"{name}.log") for name in (SERVICE, SECOND)}
    assert ready == {SERVICE: {first[SERVICE]}, SECOND: {first[SECOND], restarted[SECOND]}}  # own log files


async def _two_live_instances(up: Up, events: EventLog, env: dict[str, str]) -> dict[str, int]:
    """Both processes running, announcing themselves, counted as two live instances by the monitor and
    healthy to `syntx health`; their pids by the name `syntx up` gives them."""

    def announced(_events: object) -> bool:
        children = up.instances(SERVICE)
        return len(children) == 2 and set(children.values()) <= _beating(events)

    await events.wait_for(announced, within_s=60)

    counted: list[int] = []  # what the monitor said each time it answered

    async def monitor_counts_two() -> bool:
        code, output = await _syntx(env, "status", "--json")
        if code == 0:
            counted.append(json.loads(output)["services"].get(SERVICE, 0))
        return counted[-1:] == [2]

    async with asyncio.timeout(60):
        while not await monitor_counts_two():  # noqa: ASYNC110 - the monitor's view is asked, not pushed
            await asyncio.sleep(0.5)
    assert max(counted) == 2, counted  # a killed process is not counted beside the one in its place
    code, output = await _syntx(env, "health", "--service", SERVICE)
    assert code == 0, output
    return up.instances(SERVICE)


def _beating(events: EventLog) -> set[int]:
    """The pids of the consumer's instances whose latest heartbeat says they are up."""
    latest: dict[str, ServiceHeartbeat] = {}
    for beat in events.of(ServiceHeartbeat):
        if beat.service == SERVICE:
            latest[beat.instance] = beat
    return {int(instance.rsplit(":", 1)[1]) for instance, beat in latest.items() if not beat.stopping}


async def _syntx(env: dict[str, str], *argv: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        str(BIN / "syntx"), *argv, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=60)
    return process.returncode or 0, output.decode(errors="replace")


def _add_jobs(queue: FileQueue, count: int, batch: str) -> set[str]:
    queue.ensure()
    return {
        queue.add_job(f"Erkläre Thema {batch}{n}: Katzen.", JobMeta(topic=f"{batch}{n}"))
        for n in range(count)
    }


def _scored(events: EventLog) -> set[str]:
    return {event.job_id for event in events.of(JobScored)}


def _answered_by(queue: FileQueue, jobs: set[str], after: datetime | None = None) -> set[str]:
    """The owners (``consumer.sigma@host:pid``) of the answered attempts of ``jobs`` (ended ``after``)."""
    owners = set()
    for job_id in jobs:
        path = queue.result_path(job_id)
        assert path is not None, job_id
        for attempt in JobResult.load(path, max_bytes=MAX_RESULT_BYTES).attempts:
            if attempt.outcome == "answered" and (after is None or attempt.finished_at > after):
                owners.add(attempt.owner)
    return owners


def _results(queue: FileQueue) -> Counter[str]:
    """Result files per job id over ``processed/`` and ``error/``."""
    return Counter(
        path.name.removesuffix(RESULT_SUFFIX)
        for folder in (PROCESSED, ERROR)
        for path in queue.folder(folder).glob(f"*{RESULT_SUFFIX}")
    )


def _ready_pids(log_file: Path) -> set[int]:
    """The pids of the processes that said in ``log_file`` they were ready."""
    return {int(pid) for pid in READY.findall(log_file.read_text(encoding="utf-8"))}

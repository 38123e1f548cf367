"""Real faults of the disk under a real consumer: result folders nobody may write, a full disk.

The result folders are made immutable (``chattr +i``: refused even to root, as a folder the service may
not write is to the service); the full disk is a small tmpfs the queue lives on, filled to its last byte.
Both are skipped with the reason where this machine may not mount or change attributes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from pathlib import Path

import pytest

from shared.config import Settings
from shared.messaging import QueueState, subjects
from shared.queue import (
    ERROR,
    INCOMING,
    PROCESSED,
    PROCESSING,
    TMP,
    Claims,
    FileQueue,
    JobMeta,
    new_token,
    recover_expired,
)
from tests.support.consumers import WRAPPER, consumer_in_process, until, watching_settings
from tests.support.diskfaults import fill, immutable, tmpfs
from tests.support.harness import count, observer
from tests.support.llm_server import HeldServer
from tests.support.natsserver import NatsServer

pytestmark = pytest.mark.timeout(120)

CONCURRENCY = 4
PROMPT = "Erkläre, wie Katzen ihre Umgebung wahrnehmen und darauf reagieren (Job {n})."
CLOSED = "the queue cannot be written"
OPENED = "the queue can be written again"


def settings_for(data_dir: Path, nats_server: NatsServer, url: str, lease_s: float) -> Settings:
    return watching_settings(
        data_dir, nats_server, url, lease_s=lease_s, consumer={"rescan_s": 0.5, "shutdown_grace_s": 30}
    )


def add_jobs(queue: FileQueue, count: int) -> dict[str, str]:
    """job id -> prompt, for ``count`` jobs waiting in incoming/."""
    prompts = [PROMPT.format(n=n) for n in range(count)]
    return {queue.add_job(prompt, JobMeta(topic="Katzen")): prompt for prompt in prompts}


def result_of(queue: FileQueue, job_id: str) -> dict[str, object] | None:
    path = queue.result_path(job_id)
    return None if path is None else dict(json.loads(path.read_text(encoding="utf-8")))


def part_files(queue: FileQueue) -> list[str]:
    return [name for name in os.listdir(queue.folder(TMP)) if name.endswith(".part")]


async def test_answers_wait_in_memory_while_the_result_folders_cannot_be_written(
    tmp_path: Path, nats_server: NatsServer, held_backend: HeldServer, caplog: pytest.LogCaptureFixture
) -> None:
    """The issue's row: processed/ and error/ unwritable for longer than three leases. Before: 142 of 150
    answered jobs filed as failed ("lease expired"), each retry paying for the LLM again. Now: every
    answer is kept, its lease renewed, and filed once the folders can be written — one call, one attempt."""
    caplog.set_level(logging.INFO)
    lease_s = 1.0
    settings = settings_for(tmp_path / "data", nats_server, held_backend.url, lease_s)
    queue = FileQueue(settings.queue_dir)
    queue.ensure()
    rival = Claims(queue, new_token())  # another consumer or cleanup, taking over expired claims
    taken_over = []
    async with (
        observer(nats_server.url, subjects.QUEUE_STATE) as (_nc, states),
        consumer_in_process(settings) as running,
    ):
        with immutable(queue.folder(PROCESSED), queue.folder(ERROR)):
            jobs = add_jobs(queue, 2 * CONCURRENCY)
            await until(lambda: not running.consumer.gate.is_open, "claims pause")
            await until(lambda: len(held_backend.requests) == CONCURRENCY, "the jobs in flight are answered")
            outage_began = time.monotonic()
            while time.monotonic() - outage_began < 3 * lease_s:  # the outage lasts three leases
                taken_over += await asyncio.to_thread(recover_expired, rival, lease_s, 3)
                await asyncio.sleep(lease_s / 4)  # a pace for the rival's passes, not a wait for a condition
            assert len(list(queue.job_ids(PROCESSING))) == CONCURRENCY, "answers wait, claimed"
            assert len(held_backend.requests) == CONCURRENCY, (
                "no claims while the result folders are unwritable"
            )
            await states.wait_for(count(QueueState, 1))
        await until(lambda: all(result_of(queue, job_id) for job_id in jobs), "every job filed")
        await until(lambda: running.consumer.gate.is_open, "claims resume")
        await states.wait_for(lambda seen: any(isinstance(e, QueueState) and e.writable for e in seen))
    assert taken_over == []
    for job_id, prompt in jobs.items():
        record = result_of(queue, job_id)
        assert record is not None and record["status"] in ("passed", "rejected"), record
        assert len(record["attempts"]) == 1, f"{job_id}: an attempt was counted"  # type: ignore[arg-type]
        assert held_backend.calls(prompt) == 1, f"{job_id}: asked {held_backend.calls(prompt)} times"
    down = next(e for e in states.of(QueueState) if not e.writable)
    assert (down.service, down.folder) == (f"consumer.{WRAPPER}", "processed/")
    assert "Operation not permitted (EPERM)" in (down.error or "")
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith((CLOSED, OPENED))]
    assert len(said) == 2 and said[0].startswith(CLOSED) and said[1].startswith(OPENED), said


async def test_a_full_disk_pauses_claims_keeps_the_answers_and_resumes_when_space_returns(
    tmp_path: Path, nats_server: NatsServer, held_backend: HeldServer, caplog: pytest.LogCaptureFixture
) -> None:
    """The issue's row: a full data disk while jobs flow. Before: 276 jobs sat in processing/ until their
    lease ended, 1,887 .part files stayed, thousands of tracebacks. Now: one line when it starts and one
    when it ends; only the answers in hand stay claimed (renewed); nothing is left in .tmp/; every job
    is filed once, each answer paid for once."""
    caplog.set_level(logging.INFO)
    with tmpfs(tmp_path / "data", 8 * 1024 * 1024) as data_dir:
        settings = settings_for(data_dir, nats_server, held_backend.url, lease_s=2.0)
        queue = FileQueue(settings.queue_dir)
        queue.ensure()
        jobs = add_jobs(queue, 10 * CONCURRENCY)
        async with consumer_in_process(settings) as running:
            await until(lambda: sum(1 for _ in queue.result_files(PROCESSED)) >= CONCURRENCY, "jobs flow")
            held_backend.open.clear()  # the next answers come when the disk is full
            filler = await asyncio.to_thread(fill, data_dir)
            await until(lambda: len(list(queue.job_ids(PROCESSING))) > 0, "jobs in flight")
            held_backend.open.set()
            await until(lambda: not running.consumer.gate.is_open, "claims pause")
            await until(lambda: asked_all(queue, held_backend), "every claimed job was answered")
            in_flight = len(list(queue.job_ids(PROCESSING)))
            assert 0 < in_flight <= CONCURRENCY, "only answers in hand stay claimed"
            assert part_files(queue) == [], "no staging file is left on a full disk"
            asked = len(held_backend.requests)
            filler.unlink()
            await until(lambda: all(queue.result_path(job_id) for job_id in jobs), "every job filed", 60)
            await until(lambda: running.consumer.gate.is_open, "claims resume")
        assert not os.listdir(queue.folder(INCOMING)) and not list(queue.job_ids(PROCESSING))
        assert part_files(queue) == []
        assert len(held_backend.requests) == len(jobs) >= asked
        for job_id, prompt in jobs.items():
            assert held_backend.calls(prompt) == 1, f"{job_id}: asked {held_backend.calls(prompt)} times"
            record = result_of(queue, job_id)
            assert record is not None and len(record["attempts"]) == 1  # type: ignore[arg-type]
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith((CLOSED, OPENED))]
    assert [line.startswith(CLOSED) for line in said] == [True, False], said
    assert "No space left on device (ENOSPC)" in said[0]
    assert not [r for r in caplog.records if r.exc_info], "no tracebacks"


def asked_all(queue: FileQueue, backend: HeldServer) -> bool:
    """Every job filed or claimed has been answered by the backend (claims hold answers, nothing else)."""
    filed = sum(1 for folder in (PROCESSED, ERROR) for _ in queue.result_files(folder))
    return filed + len(list(queue.job_ids(PROCESSING))) == len(backend.requests)


async def test_stop_on_a_full_disk_hands_the_jobs_back_without_waiting_its_grace(
    tmp_path: Path, nats_server: NatsServer, held_backend: HeldServer
) -> None:
    with tmpfs(tmp_path / "data", 4 * 1024 * 1024) as data_dir:
        settings = settings_for(data_dir, nats_server, held_backend.url, lease_s=2.0)
        grace = settings.consumers[WRAPPER].shutdown_grace_s
        queue = FileQueue(settings.queue_dir)
        queue.ensure()
        jobs = add_jobs(queue, CONCURRENCY)
        held_backend.open.clear()
        async with consumer_in_process(settings) as running:
            await until(lambda: len(list(queue.job_ids(PROCESSING))) == CONCURRENCY, "all claimed")
            await asyncio.to_thread(fill, data_dir)
            held_backend.open.set()
            await until(lambda: not running.consumer.gate.is_open, "claims pause")
            running.stop.set()
            async with asyncio.timeout(grace / 3):  # not the full grace: nothing can be filed anyway
                await running.task
        assert set(queue.job_ids(INCOMING)) == set(jobs), "handed back, no attempt counted"
        assert not list(queue.job_ids(PROCESSING)) and part_files(queue) == []

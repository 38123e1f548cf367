"""The errno matrix: each filesystem call the consumer makes into each folder of the queue fails with each
errno the queue sorts, in turn, against a real consumer (a real nats-server, a real loopback LLM, real
files; only the one failing call is planted, by tests/support/fsfaults.py).

For every call and errno: the fault is met, the consumer does not die, no concurrency slot leaks,
every job ends exactly once — a result in processed/ or error/, or in quarantine/ when the filesystem
refused its name — an answer is never paid for twice nor counted as a failed attempt, nothing is left
in .tmp/, and once the fault ends the loop turns again by itself. A queue fault is said in one line
when it starts and one when it ends.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import os
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from services.cleanup.tidy import Tidier
from services.consumer.app import Consumer
from services.producer.app import Producer
from services.producer.generator import make_generator
from shared.config import DEFAULT_CONFIG, load_settings
from shared.messaging import Tick, connect
from shared.queue import (
    ARCHIVE,
    ERROR,
    INCOMING,
    PROCESSED,
    PROCESSING,
    QUARANTINE,
    QUARANTINE_NOTE_SUFFIX,
    RESULT_SUFFIX,
    TMP,
    FileQueue,
    JobMeta,
    new_job_id,
    parse_job,
    render_job,
)
from tests.support.consumers import consumer_in_process, until, watching_settings
from tests.support.fsfaults import ERRNOS, QUEUE_ERRNOS, FaultLayer
from tests.support.harness import scored
from tests.support.llm_server import HeldServer
from tests.support.natsserver import NatsServer
from tests.support.producers import result_record

pytestmark = pytest.mark.timeout(180)

CONCURRENCY = 2
JOBS = 2  # dropped into incoming/ for each errno
LEASE_S = 0.6  # renewed every 0.2 s: a job held at the backend meets the renewal
CLOSED = "the queue cannot be written"
OPENED = "the queue can be written again"
RESULT_FOLDERS = (PROCESSED, ERROR)
OWN_FILES = ("create", "write", "link", "replace")  # calls that make a file of the queue's own


@dataclass(frozen=True)
class Call:
    """A filesystem call of the consumer: what, into which folder, and whether it comes before the
    backend's answer (then the backend holds its answers until the fault was met)."""

    call: str
    folder: str
    before_answer: bool

    def __str__(self) -> str:
        return f"{self.call}-{self.folder.strip('.')}"

    def pauses_on(self, number: int) -> bool:
        """Whether ``number`` here closes the queue gate: a queue errno anywhere but on removing a staging
        file (remembered and removed later instead), any errno on listing a folder but ENOENT (a missing
        folder holds nothing), and ENOENT where the queue makes a file of its own or renames one that is
        still there (the folder it goes to is missing)."""
        if number == errno.ENOENT:  # a file of its own, or a job file that is there all the same
            return self.call in OWN_FILES or self.call == "rename"
        if self.call == "list":
            return True  # a folder that cannot be listed is the queue's fault, whatever the errno
        return number in QUEUE_ERRNOS and (self.call, self.folder) != ("unlink", TMP)


CALLS = (
    Call("list", INCOMING, before_answer=True),  # scanning for waiting jobs
    Call("rename", PROCESSING, before_answer=True),  # the claim
    Call("read", PROCESSING, before_answer=True),  # reading the claimed job
    Call("utime", PROCESSING, before_answer=True),  # renewing the lease while the backend answers
    Call("read", "attempts", before_answer=False),  # its attempt history, read when filing
    Call("create", TMP, before_answer=False),  # the result's staging file
    Call("write", TMP, before_answer=False),
    Call("link", PROCESSED, before_answer=False),  # filing the result
    Call("unlink", TMP, before_answer=False),  # removing the staging file
    Call("unlink", PROCESSING, before_answer=False),  # removing the claim once filed
)


@dataclass
class Faulty:
    consumer: Consumer
    task: asyncio.Task[None]
    queue: FileQueue
    layer: FaultLayer


@pytest.fixture
async def running(
    tmp_path: Path, nats_server: NatsServer, held_backend: HeldServer, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Faulty]:
    """A consumer in this process, its queue, and the fault layer over its queue's calls."""
    consumer = {"concurrency": CONCURRENCY, "shutdown_grace_s": 5}
    settings = watching_settings(
        tmp_path / "data", nats_server, held_backend.url, lease_s=LEASE_S, consumer=consumer
    )
    queue = FileQueue(settings.queue_dir)
    queue.ensure()
    layer = FaultLayer(settings.queue_dir)
    layer.install(monkeypatch)
    async with consumer_in_process(settings) as running:
        yield Faulty(running.consumer, running.task, queue, layer)


def drop_jobs(running: Faulty, count: int, label: str) -> dict[str, str]:
    """``count`` jobs written outside the queue and renamed into incoming/ with the real ``os.rename``
    (the planted fault is the consumer's, not the writer's); job id -> prompt."""
    jobs = {}
    for number in range(count):
        job_id, prompt = (
            new_job_id(),
            f"Erkläre, wie Katzen ihre Umgebung wahrnehmen und darauf reagieren ({label} {number}).",
        )
        outside = running.queue.root.parent / f"{job_id}.txt"
        outside.write_text(render_job(prompt, JobMeta(topic=label)), encoding="utf-8")
        running.layer.real["rename"](outside, running.queue.job_path(INCOMING, job_id))
        jobs[job_id] = prompt
    return jobs


def places(queue: FileQueue, job_id: str) -> list[str]:
    """Every place the job is: folders holding its job file or claim, its result, or quarantine."""
    found = [folder for folder in (INCOMING, PROCESSING) if job_id in set(queue.job_ids(folder))]
    found += [folder for folder in RESULT_FOLDERS if queue.result_in(folder, job_id).exists()]
    quarantined = (
        name.startswith(job_id) and not name.endswith(QUARANTINE_NOTE_SUFFIX)
        for name in os.listdir(queue.folder(QUARANTINE))
    )
    return found + [QUARANTINE] * sum(quarantined)


def staging(queue: FileQueue) -> list[str]:
    return [name for name in os.listdir(queue.folder(TMP)) if name.endswith(".part")]


def settled(running: Faulty, jobs: dict[str, str], staging_left: int) -> bool:
    queue, consumer = running.queue, running.consumer
    done = all(places(queue, job_id) in ([PROCESSED], [ERROR], [QUARANTINE]) for job_id in jobs)
    idle = consumer.free_slots == CONCURRENCY and consumer.gate.is_open
    return done and idle and len(staging(queue)) == staging_left


def attempts(queue: FileQueue, job_id: str) -> int | None:
    """How many attempts the job's result holds (None: it has no result)."""
    for folder in RESULT_FOLDERS:
        path = queue.result_in(folder, job_id)
        if path.exists():
            return len(json.loads(path.read_text(encoding="utf-8"))["attempts"])
    return None


@pytest.mark.parametrize("call", CALLS, ids=str)
async def test_each_errno_on_a_call_of_the_consumer_in_turn(
    call: Call, running: Faulty, held_backend: HeldServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    for number in ERRNOS:
        caplog.clear()
        await one_fault(call, number, running, held_backend)
        closed = [r for r in caplog.records if r.getMessage().startswith(CLOSED)]
        opened = [r for r in caplog.records if r.getMessage().startswith(OPENED)]
        said = 1 if call.pauses_on(number) else 0
        assert (len(closed), len(opened)) == (said, said), f"{call} {errno.errorcode[number]}: lines"


async def one_fault(call: Call, number: int, running: Faulty, backend: HeldServer) -> None:
    """Jobs meet ``call`` failing with ``number`` until the consumer has reacted; then the fault ends
    and every job must settle, exactly once, paid for at most once."""
    label = f"{call} {errno.errorcode[number]}"
    backend.open.clear()
    with running.layer.failing(call.call, call.folder, number) as fault:
        jobs = drop_jobs(running, JOBS, label)
        if not call.before_answer:
            backend.open.set()
        await fault.wait_hit()
        if call.pauses_on(number):
            await until(lambda: not running.consumer.gate.is_open, f"{label}: claims pause")
            hits = fault.hits
            await until(lambda: fault.hits > hits, f"{label}: the queue is probed while it fails")
        backend.open.set()
    # a file the system said was gone (ENOENT on its removal) is not looked for again: cleanup's staging
    # age removes it, like the leftover of a killed process
    left = fault.hits if (call.call, call.folder, number) == ("unlink", TMP, errno.ENOENT) else 0
    await until(lambda: settled(running, jobs, left), f"{label}: every job settled")
    for name in staging(running.queue):
        (running.queue.folder(TMP) / name).unlink()
    assert not running.task.done(), f"{label}: the consumer ended"
    for job_id, prompt in jobs.items():
        assert backend.calls(prompt) <= 1, f"{label}: {job_id} was asked {backend.calls(prompt)} times"
        assert attempts(running.queue, job_id) in (None, 1), f"{label}: {job_id} counted a failed attempt"


# -- the producer's and cleanup's calls --------------------------------------------------------------------

PRODUCER_CALLS = (
    Call("create", TMP, before_answer=False),  # a new job's (and the checkpoint's) staging file
    Call("write", TMP, before_answer=False),
    Call("replace", INCOMING, before_answer=False),  # the new job into place
    Call("mkdir", ARCHIVE, before_answer=False),  # today's archive folder
    Call("rename", ARCHIVE, before_answer=False),  # a learned result into it
)


@pytest.mark.parametrize("call", PRODUCER_CALLS, ids=str)
async def test_each_errno_on_a_call_of_the_producer_in_turn(
    call: Call, tmp_path: Path, nats_server: NatsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A tick under the fault raises nothing and writes no half job; the next tick after it does what
    was left: every job complete, every learned result archived, nothing left in .tmp/."""
    settings = load_settings(
        [DEFAULT_CONFIG],
        data_dir=tmp_path / "data",
        nats={"url": nats_server.url},
        queue={"fault_probe": {"base_s": 0.02, "max_s": 0.1}},
    )
    queue = FileQueue(settings.queue_dir)
    queue.ensure()
    layer = FaultLayer(settings.queue_dir)
    stop = asyncio.Event()
    async with connect(settings.nats, name="producer") as bus:
        rng = random.Random(3)
        producer = Producer(
            settings, bus, make_generator(settings.producer.generator, settings.producer.templates, rng), rng
        )
        await producer.start()
        layer.install(monkeypatch)
        keeping = asyncio.create_task(producer.gate.keep(stop))
        try:
            for number in ERRNOS:
                await one_producer_fault(call, number, producer, queue, layer)
        finally:
            stop.set()
            await keeping


async def one_producer_fault(
    call: Call, number: int, producer: Producer, queue: FileQueue, layer: FaultLayer
) -> None:
    label = f"{call} {errno.errorcode[number]}"
    for name in os.listdir(queue.folder(INCOMING)):  # room for a full batch
        os.unlink(queue.folder(INCOMING) / name)
    learned = [f"{label.replace(' ', '-')}-{n}" for n in range(2)]
    for job_id in learned:
        queue.write_result(PROCESSED, job_id, result_record(job_id, "passed", 97, "harmlos", "casual"))
        await producer.on_scored(scored(job_id))
    with layer.failing(call.call, call.folder, number) as fault:
        await producer.on_tick(Tick(schedule="producer"))
        assert fault.hits >= 1, f"{label}: the tick never made this call"
        assert not staging(queue), f"{label}: a staging file stayed"
    await until(lambda: producer.gate.is_open, f"{label}: the producer's gate opens again")
    await producer.on_tick(Tick(schedule="producer"))
    await producer.on_tick(Tick(schedule="producer"))  # a result a fault kept back is archived now
    assert not staging(queue), f"{label}: a staging file stayed"
    for job_id in sorted(queue.job_ids(INCOMING)):
        parse_job(job_id, queue.job_path(INCOMING, job_id).read_bytes(), 1 << 20)  # whole, never half
    archived = {path.name for path in queue.result_files(ARCHIVE)}
    waiting = {path.name for path in queue.result_files(PROCESSED)}
    for name in (f"{job_id}{RESULT_SUFFIX}" for job_id in learned):
        assert (name in archived) != (name in waiting), f"{label}: {name} in one place"
        # a name refused by the filesystem stays in processed/ (read there); anything else is archived
        assert name in archived or number in (errno.ENAMETOOLONG, errno.EILSEQ), f"{label}: not archived"


CLEANUP_CALLS = (
    Call("rename", QUARANTINE, before_answer=False),  # a stray into quarantine
    Call("create", TMP, before_answer=False),  # its note's staging file
    Call("replace", QUARANTINE, before_answer=False),  # the note into place
    Call("unlink", TMP, before_answer=False),  # an old staging file removed
    Call("rename", ARCHIVE, before_answer=False),  # a flat archive result of earlier versions refiled
)


@pytest.mark.parametrize("call", CLEANUP_CALLS, ids=str)
def test_each_errno_on_a_call_of_cleanup_in_turn(
    call: Call, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pass under the fault raises nothing and loses nothing (what it could not do is an error of the
    pass); the next pass does it."""
    settings = load_settings([DEFAULT_CONFIG], data_dir=tmp_path / "data", cleanup={"tmp_max_age_s": 0})
    queue = FileQueue(settings.queue_dir)
    queue.ensure()
    tidier = Tidier(queue, settings.logs_dir, settings.cleanup, settings.queue.max_result_bytes)
    layer = FaultLayer(settings.queue_dir)
    layer.install(monkeypatch)
    for number in ERRNOS:
        label = f"{call} {errno.errorcode[number]}"
        stray = queue.folder(INCOMING) / f"stray-{errno.errorcode[number]}.dat"
        stray.write_text("no job", encoding="utf-8")
        leftover = queue.folder(TMP) / f"left-{errno.errorcode[number]}.part"
        leftover.write_text("half", encoding="utf-8")
        flat = queue.folder(ARCHIVE) / f"flat-{errno.errorcode[number]}{RESULT_SUFFIX}"
        flat.write_text(
            json.dumps(result_record(flat.stem, "passed", 95, "harmlos", "casual")), encoding="utf-8"
        )
        with layer.failing(call.call, call.folder, number) as fault:
            first = tidier.run()
        assert fault.hits >= 1, f"{label}: the pass never made this call"
        assert first.errors or first.fault or first.quarantined, f"{label}: the failure went unsaid"
        assert stray.exists() != any(n.startswith(stray.name) for n in os.listdir(queue.folder(QUARANTINE)))
        tidier.run()
        quarantined = [n for n in os.listdir(queue.folder(QUARANTINE)) if n.startswith(stray.name)]
        assert (
            not stray.exists()
            and len([n for n in quarantined if not n.endswith(QUARANTINE_NOTE_SUFFIX)]) == 1
        )
        assert not leftover.exists() and not flat.exists(), f"{label}: the next pass did not finish"
        assert flat.name in {path.name for path in queue.result_files(ARCHIVE)}

"""Leases, backend outages and lost notifications, with the consumer in-process against real parts."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

import services.consumer.app as consumer_app
from shared.config import Settings
from shared.messaging import BackendState, JobFailed, JobScored, subjects
from shared.queue import Claims, FileQueue, JobMeta, new_token, recover_expired
from shared.watch import Change, watching
from tests.support.consumers import consumer_running, good_answer, http_backend, make_settings, result
from tests.support.harness import HEARTBEATS, count, observer
from tests.support.llm_server import Reply, ScriptedServer
from tests.support.natsserver import NatsServer
from tests.support.stopped import paused

pytestmark = pytest.mark.timeout(60)
LEASE_S = 0.6  # short, so that a 2 s call outlasts two leases


def _short_leases(
    tmp_path: Path, nats_server: NatsServer, server: ScriptedServer, **consumer: Any
) -> tuple[Settings, FileQueue]:
    """A watching consumer on ``server`` whose claims' leases last :data:`LEASE_S`, and its queue."""
    settings = make_settings(tmp_path, nats_server, backend=http_backend(server.url), watch=True, **consumer)
    settings = settings.model_copy(update={"queue": settings.queue.model_copy(update={"lease_s": LEASE_S})})
    queue = FileQueue(settings.queue_dir)
    queue.ensure()
    return settings, queue


async def _calls_outlasting_two_leases(
    settings: Settings, queue: FileQueue, server: ScriptedServer, *, jobs: int
) -> None:
    """Run the consumer until its ``jobs``-th call is out, let more than two leases pass during that call
    — a rival's recovery, racing for expired claims, finds none and takes none — and until ``jobs`` are
    scored."""
    rival = Claims(queue, new_token())
    url = settings.nats.url
    assert url is not None
    async with (
        observer(url, HEARTBEATS, subjects.JOB_ALL) as (_nc, events),
        consumer_running(settings, events),
    ):
        await server.wait_for_requests(jobs)
        await asyncio.sleep(1.3)  # the scenario itself: more than two lease periods pass during the call
        assert rival.expired(LEASE_S) == []
        assert recover_expired(rival, LEASE_S, max_attempts=3) == []
        await events.wait_for(count(JobScored, jobs))


async def test_a_call_longer_than_the_lease_keeps_its_claim_by_renewal(
    tmp_path: Path, nats_server: NatsServer, server: ScriptedServer
) -> None:
    server.default = Reply(json={"response": good_answer()}, delay_s=2.0)
    settings, queue = _short_leases(tmp_path, nats_server, server)
    job_id = queue.add_job("Erkläre, wie Katzen ihre Umgebung wahrnehmen.", JobMeta(topic="Katzen"))
    await _calls_outlasting_two_leases(settings, queue, server, jobs=1)
    record = result(queue, job_id)
    assert record["status"] in ("passed", "rejected")
    assert [attempt["outcome"] for attempt in record["attempts"]] == ["answered"]
    assert len(server.requests) == 1


async def test_a_job_taken_by_a_finishing_slot_keeps_its_claim_by_renewal(
    tmp_path: Path, nats_server: NatsServer, server: ScriptedServer
) -> None:
    """With one slot the second job is claimed by the task that filed the first: its lease is renewed
    as the first one's was, through a call longer than two leases."""
    server.script(Reply(json={"response": good_answer()}))
    server.default = Reply(json={"response": good_answer()}, delay_s=2.0)
    settings, queue = _short_leases(tmp_path, nats_server, server, concurrency=1)
    first = queue.add_job("Erkläre, wie Katzen ihre Umgebung wahrnehmen.", JobMeta(topic="Katzen"))
    second = queue.add_job("Erkläre, wie Hunde ihre Umgebung wahrnehmen.", JobMeta(topic="Hunde"))
    await _calls_outlasting_two_leases(settings, queue, server, jobs=2)
    assert [[a["outcome"] for a in result(queue, job)["attempts"]] for job in (first, second)] == [
        ["answered"],
        ["answered"],
    ]
    assert len(server.requests) == 2


async def test_a_down_backend_pauses_claims_probes_one_job_at_a_time_and_resumes(
    tmp_path: Path, nats_server: NatsServer, server: ScriptedServer
) -> None:
    server.default = Reply(status=503, body=b"maintenance", content_type="text/plain", delay_s=0.1)
    settings = make_settings(
        tmp_path, nats_server, backend=http_backend(server.url), concurrency=4, watch=True
    )
    queue = FileQueue(settings.queue_dir)
    queue.ensure()
    ids = {queue.add_job(f"Erkläre Katzen, Teil {n}.", JobMeta(topic="Katzen")) for n in range(6)}
    url = settings.nats.url
    assert url is not None
    watched = (HEARTBEATS, subjects.JOB_ALL, subjects.CONSUMER_BACKEND)
    async with observer(url, *watched) as (_nc, events), consumer_running(settings, events):
        await events.wait_for(lambda seen: any(isinstance(e, BackendState) and not e.available for e in seen))
        await server.wait_for_requests(len(server.requests) + 1)
        server.max_in_flight = 0
        await server.wait_for_requests(len(server.requests) + 2)  # two more probes
        in_flight_while_down = server.max_in_flight
        assert all(queue.result_path(job_id) is None for job_id in ids)
        server.default = Reply(json={"response": good_answer()}, delay_s=0.2)
        server.max_in_flight = 0
        await events.wait_for(count(JobScored, len(ids)), within_s=30)
        await events.wait_for(lambda seen: any(isinstance(e, BackendState) and e.available for e in seen))
    assert in_flight_while_down == 1  # probes go out one at a time
    assert server.max_in_flight == 4  # once a probe is answered, every slot again (not the probe's alone)
    assert all(not failed.final_status and failed.will_retry for failed in events.of(JobFailed))
    assert all(queue.result_path(job_id) is not None for job_id in ids)


_WATCHER = """
import asyncio, sys
from pathlib import Path
from shared.watch import OVERFLOW, watching

async def main() -> None:
    overflowed = asyncio.Event()

    def sink(change):
        if change == OVERFLOW:
            overflowed.set()

    async with watching([Path(sys.argv[1])], sink, arrivals_only=True):
        print("watching", flush=True)
        await overflowed.wait()
        print("overflow", flush=True)

asyncio.run(main())
"""


def _flood_past_the_kernel_queue(folder: Path) -> None:
    limit = int(Path("/proc/sys/fs/inotify/max_queued_events").read_text())
    for n in range(limit + 100):
        (folder / f"{n}.job").touch()


async def _line(stream: asyncio.StreamReader) -> str:
    return (await asyncio.wait_for(stream.readline(), timeout=20)).decode().strip()


async def test_a_real_inotify_queue_overflow_becomes_an_overflow_change(tmp_path: Path) -> None:
    """The kernel queue fills while the watching process is stopped; watchdog's overflow hook reports it."""
    if sys.platform != "linux":
        pytest.skip("inotify is Linux only")
    watcher = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _WATCHER, str(tmp_path), stdout=asyncio.subprocess.PIPE
    )
    assert watcher.stdout is not None
    try:
        assert await _line(watcher.stdout) == "watching"
        with paused(watcher.pid):
            _flood_past_the_kernel_queue(tmp_path)
        assert await _line(watcher.stdout) == "overflow"
    finally:
        if watcher.returncode is None:
            watcher.kill()
        await watcher.wait()


async def test_arrivals_only_reports_files_created_or_moved_in_and_nothing_else(tmp_path: Path) -> None:
    watched, elsewhere = tmp_path / "incoming", tmp_path / "processing"
    watched.mkdir()
    elsewhere.mkdir()
    (elsewhere / "b.job").write_text("b")
    seen: list[Change] = []
    both = asyncio.Event()

    def sink(change: Change) -> None:
        seen.append(change)
        if len(seen) >= 2:
            both.set()

    async with watching([watched], sink, arrivals_only=True):
        (watched / "a.job").write_text("a")  # created (and written)
        (watched / "a.job").rename(elsewhere / "a.job")  # a claim: moved out
        (elsewhere / "b.job").rename(watched / "b.job")  # moved in
        (watched / "b.job").unlink()  # removed
        await asyncio.wait_for(both.wait(), timeout=5)
    assert seen == [("added", "incoming", "a.job"), ("added", "incoming", "b.job")]


async def test_a_ring_without_a_new_file_makes_the_consumer_rescan_and_find_unannounced_jobs(
    tmp_path: Path, nats_server: NatsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The kernel dropped the notifications of a new job: only the rescan the doorbell's ring after an
    overflow triggers finds it.

    (That the doorbell rings after a real overflow is tested in tests/unit/service/test_doorbell.py.
    Here the doorbell is replaced by one that rings only when the test rings it.)
    """
    rings: list[Callable[[], None]] = []
    drained = asyncio.Event()
    drain = consumer_app.Consumer.drain

    @asynccontextmanager
    async def silent_doorbell(_folder: object, ring: Callable[[], None], **_: object) -> AsyncIterator[None]:
        rings.append(ring)
        yield

    async def observed_drain(self: consumer_app.Consumer, limit: int | None) -> int:
        claimed = await drain(self, limit)
        drained.set()
        return claimed

    monkeypatch.setattr(consumer_app, "arrivals", silent_doorbell)
    monkeypatch.setattr(consumer_app.Consumer, "drain", observed_drain)
    settings = make_settings(tmp_path, nats_server, watch=True, rescan_s=300.0)
    queue = FileQueue(settings.queue_dir)
    queue.ensure()
    url = settings.nats.url
    assert url is not None
    async with (
        observer(url, HEARTBEATS, subjects.JOB_ALL) as (_nc, events),
        consumer_running(settings, events),
    ):
        await asyncio.wait_for(drained.wait(), timeout=10)  # the start-up pass found an empty queue
        job_id = queue.add_job("Erkläre, wie Katzen ihre Umgebung wahrnehmen.", JobMeta(topic="Katzen"))
        [ring] = rings
        ring()
        await events.wait_for(count(JobScored, 1))
    assert queue.result_path(job_id) is not None

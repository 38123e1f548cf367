"""The consumer service in-process against a real nats-server, real queue files and real HTTP backends.

Ticks are core publishes (what ``nats pub`` sends). Backends are the offline responder where the LLM does
not matter, else ``syntx`` pointing at a :class:`ScriptedServer` on loopback (or at a closed port).
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import services.consumer.app as consumer_app
from shared.messaging import JobFailed, JobScored, subjects
from shared.queue import (
    ATTEMPTS,
    ERROR,
    INCOMING,
    PROCESSED,
    PROCESSING,
    FileQueue,
    JobMeta,
    ResultFolder,
    new_job_id,
)
from shared.watch import Change, watching
from tests.support.consumers import (
    SERVICE,
    TICK,
    add_raw_job,
    consumer_running,
    consumer_with_events,
    good_answer,
    http_backend,
    job_ids,
    make_settings,
    result,
)
from tests.support.harness import HEARTBEATS, count, free_port, observer
from tests.support.llm_server import Reply, ScriptedServer
from tests.support.natsserver import NatsServer
from tests.support.records import attempts_written

pytestmark = pytest.mark.timeout(30)


# -- 1. malformed jobs ------------------------------------------------------------------------------------

LIMIT = 300
MALFORMED = {
    "nul": (b"Erkl\x00re Katzen.", "job file is binary (contains NUL bytes)"),
    "latin-1": ("Erkläre Katzen.".encode("latin-1"), "job file is not valid UTF-8 (byte 4)"),
    "empty": (b"", "job file holds no prompt text"),
    "header only": (b"---\ntopic: Katzen\n---\n\n", "job file holds no prompt text"),
    "too big": (b"x" * (LIMIT + 1), f"job file is {LIMIT + 1} bytes, over the limit of {LIMIT}"),
    "unclosed": (
        b"---\ntopic: Katzen\nErkl\xc3\xa4re Katzen.\n",
        "job header opened with '---' is never closed",
    ),
    "list header": (b"---\n- Katzen\n---\nErkl\xc3\xa4re Katzen.\n", "job header must be 'key: value' lines"),
    "bad field": (b"---\ngeneration: many\n---\nErkl\xc3\xa4re Katzen.\n", "job header field generation: "),
}


async def test_malformed_jobs_go_to_error_after_one_attempt_and_the_batch_goes_on(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    settings = make_settings(tmp_path, nats_server, max_job_bytes=LIMIT, max_attempts=3)
    queue = FileQueue(settings.queue_dir)
    queue.ensure()
    good_first = queue.add_job("Erkläre, wie Katzen jagen.", JobMeta(topic="Katzen"))
    bad = {name: add_raw_job(queue, data) for name, (data, _reason) in MALFORMED.items()}
    good_last = queue.add_job("Erkläre, wie Gärten wachsen.", JobMeta(topic="Gärtnern"))
    async with consumer_with_events(settings) as (nc, events, _stop):
        await nc.publish(TICK, b"")
        await events.wait_for(lambda seen: count(JobFailed, len(bad))(seen) and count(JobScored, 2)(seen))
    failures = {event.job_id: event for event in events.of(JobFailed)}
    for name, job_id in bad.items():
        record, reason = result(queue, job_id), MALFORMED[name][1]
        assert (record["folder"], record["status"]) == (ERROR, "malformed"), name
        assert record["reason"].startswith(reason), (name, record["reason"])
        assert [(a["number"], a["error"]) for a in record["attempts"]] == [(1, record["reason"])], name
        assert (failures[job_id].will_retry, failures[job_id].final_status) == (False, "malformed")
        assert failures[job_id].reason == record["reason"]
    assert "Input should be a valid integer" in result(queue, bad["bad field"])["reason"]
    for job_id in (good_first, good_last):
        assert result(queue, job_id)["status"] in ("passed", "rejected")
    assert {event.job_id for event in events.of(JobScored)} == {good_first, good_last}
    assert job_ids(queue, INCOMING) == job_ids(queue, PROCESSING) == set()
    assert not any(queue.folder(ATTEMPTS).iterdir())


# -- 2. backend down --------------------------------------------------------------------------------------


@pytest.mark.parametrize("down", ["refused", "503"])
async def test_backend_down_releases_the_job_and_keeps_its_attempts(
    tmp_path: Path, nats_server: NatsServer, server: ScriptedServer, down: str
) -> None:
    url = f"http://127.0.0.1:{free_port()}" if down == "refused" else server.url
    server.default = Reply(status=503, body=b"model is loading", content_type="text/plain")
    settings = make_settings(tmp_path, nats_server, backend=http_backend(url), max_attempts=2)
    queue = FileQueue(settings.queue_dir)
    queue.ensure()
    job_id = queue.add_job("Erkläre, wie Katzen ihre Umgebung wahrnehmen.", JobMeta(topic="Katzen"))
    async with consumer_with_events(settings) as (nc, events, _stop):
        for tick in (1, 2):  # more ticks than max_attempts: a down backend does not use attempts up
            await nc.publish(TICK, b"")
            await events.wait_for(count(JobFailed, tick))
            failure = events.of(JobFailed)[-1]
            assert (failure.job_id, failure.attempt, failure.will_retry) == (job_id, tick, True)
            assert failure.final_status is None
            assert job_ids(queue, INCOMING) == {job_id} and not job_ids(queue, PROCESSING)
            assert queue.result_path(job_id) is None
            history = attempts_written(queue, job_id)
            assert [(a["number"], a["outcome"]) for a in history] == [
                (n, "backend_error") for n in range(1, tick + 1)
            ]
        expected = "connection error" if down == "refused" else "HTTP 503"
        assert all(expected in entry["error"] for entry in history), history
        if down == "refused":
            return
        server.default = Reply(json={"response": good_answer()})  # the backend is back
        await nc.publish(TICK, b"")
        await events.wait_for(count(JobScored, 1))
    record = result(queue, job_id)
    assert record["status"] in ("passed", "rejected") and record["backend"] == "syntx"
    assert [(a["number"], a["outcome"]) for a in record["attempts"]] == [
        (1, "backend_error"),
        (2, "backend_error"),
        (3, "answered"),
    ]
    assert events.of(JobScored)[0].attempt == 3
    assert not queue.attempts_path(job_id).exists() and not job_ids(queue, INCOMING)
    assert len(server.requests) == 3


# -- 3. replies that asking again cannot fix --------------------------------------------------------------

NOT_RETRYABLE = {
    "400": (Reply(status=400, json={"error": "prompt too long"}), "HTTP 400 from "),
    "html": (
        Reply(body=b"<html><body>Login required</body></html>", content_type="text/html"),
        "invalid reply: body is not JSON (text/html)",
    ),
}


@pytest.mark.parametrize("kind", sorted(NOT_RETRYABLE))
async def test_a_non_retryable_reply_fails_the_job_after_max_attempts(
    tmp_path: Path, nats_server: NatsServer, server: ScriptedServer, kind: str
) -> None:
    server.default, last_error = NOT_RETRYABLE[kind]
    settings = make_settings(tmp_path, nats_server, backend=http_backend(server.url), max_attempts=3)
    queue = FileQueue(settings.queue_dir)
    queue.ensure()
    job_id = queue.add_job("Erkläre, wie Katzen ihre Umgebung wahrnehmen.", JobMeta(topic="Katzen"))
    async with consumer_with_events(settings) as (nc, events, _stop):
        for tick in (1, 2, 3):
            await nc.publish(TICK, b"")
            await events.wait_for(count(JobFailed, tick))
            if tick < 3:
                assert events.of(JobFailed)[-1].will_retry is True
                assert job_ids(queue, INCOMING) == {job_id} and queue.result_path(job_id) is None
    final = events.of(JobFailed)[-1]
    assert (final.will_retry, final.final_status, final.attempt) == (False, "failed", 3)
    record = result(queue, job_id)
    assert (record["folder"], record["status"]) == (ERROR, "failed")
    assert record["reason"].startswith(f"gave up after 3 failed attempts; last: {last_error}"), record[
        "reason"
    ]
    assert [(a["number"], a["outcome"]) for a in record["attempts"]] == [
        (n, "backend_error") for n in (1, 2, 3)
    ]
    assert all(last_error in a["error"] for a in record["attempts"])
    assert record["prompt"] and record["meta"] == {"topic": "Katzen"}
    assert len(server.requests) == 3
    assert not job_ids(queue, INCOMING) and not job_ids(queue, PROCESSING)
    assert not queue.attempts_path(job_id).exists()


class StopAtTick(logging.Handler):
    """Sets ``stop`` when the consumer logs the start of tick number ``at``: the ticks before have ended."""

    def __init__(self, stop: asyncio.Event, at: int) -> None:
        super().__init__(logging.INFO)
        self._stop, self._at, self._ticks = stop, at, 0

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith(f"tick {SERVICE}:"):
            self._ticks += 1
            if self._ticks == self._at:
                self._stop.set()


async def test_one_tick_gives_each_job_at_most_one_attempt(
    tmp_path: Path, nats_server: NatsServer, server: ScriptedServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A job released after a failed attempt waits for the next tick; the same batch does not retry it."""
    caplog.set_level(logging.INFO, logger=consumer_app.__name__)
    failing = NOT_RETRYABLE["400"][0]
    server.script(failing, failing, Reply(json={"response": good_answer()}))
    server.default = failing
    backend = http_backend(server.url)
    settings = make_settings(tmp_path, nats_server, backend=backend, concurrency=1, max_attempts=3)
    queue = FileQueue(settings.queue_dir)
    queue.ensure()
    start = datetime(2025, 12, 6, 14, 0, tzinfo=UTC)
    first, second, last = (new_job_id(start + timedelta(seconds=n)) for n in range(3))
    for job_id in (first, second, last):
        queue.add_job("Erkläre, wie Katzen ihre Umgebung wahrnehmen.", JobMeta(), job_id=job_id)
    async with consumer_with_events(settings) as (nc, events, stop):
        barrier = StopAtTick(stop, at=2)
        logging.getLogger(consumer_app.__name__).addHandler(barrier)
        try:
            await nc.publish(TICK, b"")
            await events.wait_for(count(JobScored, 1))  # the last job of the batch
            await nc.publish(TICK, b"")  # handled only once the first tick's batch has ended
            await asyncio.wait_for(stop.wait(), timeout=10)
        finally:
            logging.getLogger(consumer_app.__name__).removeHandler(barrier)
    assert len(server.requests) == 3
    assert [(e.job_id, e.attempt) for e in events.of(JobFailed)] == [(first, 1), (second, 1)]
    assert job_ids(queue, INCOMING) == {first, second}
    assert [len(attempts_written(queue, job_id)) for job_id in (first, second)] == [1, 1]
    assert result(queue, last)["attempts"][0]["outcome"] == "answered"


# -- 4. watch mode ----------------------------------------------------------------------------------------


async def test_watch_mode_claims_new_files_without_a_tick(
    tmp_path: Path, nats_server: NatsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # only a file notification can wake it in time
    settings = make_settings(tmp_path, nats_server, watch=True, rescan_s=300.0)
    queue = FileQueue(settings.queue_dir)
    async with consumer_with_events(settings) as (_nc, events, _stop):
        for n, topic in enumerate(("Katzen", "Raumfahrt"), start=1):
            job_id = queue.add_job(f"Erkläre {topic} in einfachen Worten.", JobMeta(topic=topic))
            await events.wait_for(count(JobScored, n), within_s=5)
            assert events.of(JobScored)[-1].job_id == job_id
            assert result(queue, job_id)["meta"]["topic"] == topic
    assert not job_ids(queue, INCOMING) and not job_ids(queue, PROCESSING)


# -- 5. graceful shutdown ---------------------------------------------------------------------------------


async def test_stop_releases_a_job_whose_call_does_not_finish_in_the_grace_period(
    tmp_path: Path, nats_server: NatsServer, server: ScriptedServer
) -> None:
    server.default = Reply(action="hang")
    settings = make_settings(
        tmp_path, nats_server, backend=http_backend(server.url, read_s=60.0), shutdown_grace_s=0.2
    )
    queue = FileQueue(settings.queue_dir)
    queue.ensure()
    job_id = queue.add_job("Erkläre, wie Katzen ihre Umgebung wahrnehmen.", JobMeta(topic="Katzen"))
    async with observer(nats_server.url, HEARTBEATS, subjects.JOB_ALL) as (nc, events):
        async with consumer_running(settings, events) as (stop, task):
            await nc.publish(TICK, b"")
            await server.wait_for_requests(1)
            assert job_ids(queue, PROCESSING) == {job_id} and not job_ids(queue, INCOMING)
            stop.set()
            async with asyncio.timeout(5):
                await asyncio.shield(task)
        assert task.done() and task.exception() is None
        assert job_ids(queue, INCOMING) == {job_id} and not job_ids(queue, PROCESSING)
        assert queue.result_path(job_id) is None
        assert not events.of(JobScored) and not events.of(JobFailed)
    assert len(server.requests) == 1


# -- 6. a result written just before a crash --------------------------------------------------------------


async def test_a_claim_whose_result_exists_is_removed_without_a_second_result(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    settings = make_settings(tmp_path, nats_server)
    queue = FileQueue(settings.queue_dir)
    queue.ensure()
    claimed, released = new_job_id(), new_job_id()
    prior: dict[str, ResultFolder] = {claimed: "processed", released: "error"}
    for job_id, folder in prior.items():
        queue.write_result(folder, job_id, {"job_id": job_id, "status": "before the crash"})
    queue.write_atomic(queue.job_path(PROCESSING, claimed), "Erkläre Katzen.".encode())
    queue.write_atomic(queue.job_path(INCOMING, released), "Erkläre Hunde.".encode())  # lease came back
    paths = {job_id: queue.folder(folder) / f"{job_id}.json" for job_id, folder in prior.items()}
    contents = {job_id: path.read_bytes() for job_id, path in paths.items()}
    removed: set[str] = set()
    gone = asyncio.Event()

    def on_change(change: Change) -> None:
        kind, folder, name = change
        if kind == "removed" and folder == PROCESSING:
            removed.add(name.split(".claim-")[0].removesuffix(".txt"))
            if removed >= set(prior):
                gone.set()

    async with (
        consumer_with_events(settings) as (nc, events, _stop),
        watching([queue.folder(PROCESSING)], on_change),
    ):
        await nc.publish(TICK, b"")
        await asyncio.wait_for(gone.wait(), timeout=10)
    for job_id, folder in prior.items():
        assert queue.result_path(job_id) == paths[job_id]
        assert paths[job_id].read_bytes() == contents[job_id]  # results are immutable
        other = PROCESSED if folder == ERROR else ERROR
        assert not (queue.folder(other) / f"{job_id}.json").exists()
    assert not job_ids(queue, INCOMING) and not job_ids(queue, PROCESSING)
    assert not events.of(JobScored) and not events.of(JobFailed)


# -- 7. batch size from the tick --------------------------------------------------------------------------


async def test_a_tick_batch_processes_exactly_that_many_oldest_first(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    settings = make_settings(tmp_path, nats_server, batch=20, concurrency=1)
    queue = FileQueue(settings.queue_dir)
    queue.ensure()
    start = datetime(2025, 12, 6, 14, 0, tzinfo=UTC)
    ids = [new_job_id(start + timedelta(seconds=n)) for n in range(5)]
    for n in (4, 2, 0, 3, 1):  # written newest-ish first: order comes from the ids, not the file times
        queue.add_job(f"Erkläre Thema Nummer {n} ausführlich.", JobMeta(topic=f"Thema {n}"), job_id=ids[n])
    async with consumer_with_events(settings) as (nc, events, _stop):
        await nc.publish(TICK, b'{"batch": 2}')
        await events.wait_for(count(JobScored, 2))
        assert [event.job_id for event in events.of(JobScored)] == ids[:2]
        assert job_ids(queue, INCOMING) == set(ids[2:]) and not job_ids(queue, PROCESSING)
    assert all(queue.result_path(job_id) is None for job_id in ids[2:])
    assert len(events.of(JobScored)) == 2


# -- 8. the original layout -------------------------------------------------------------------------------


async def test_a_job_in_the_original_layout_keeps_its_metadata(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    settings = make_settings(tmp_path, nats_server)
    queue = FileQueue(settings.queue_dir)
    queue.ensure()
    job_id = new_job_id()
    sidecar = {
        "topic": "Klimawandel",
        "category": "gesellschaft",
        "style": "kreativ",
        "language": "de",
        "generation": 4,
        "filename": f"{job_id}.txt",  # other keys of the original are not metadata
    }
    queue.write_atomic(queue.sidecar_path(INCOMING, job_id), json.dumps(sidecar).encode())
    queue.write_atomic(queue.job_path(INCOMING, job_id), "Erkläre kreativ: Klimawandel und Meere.\n".encode())
    async with consumer_with_events(settings) as (nc, events, _stop):
        await nc.publish(TICK, b"")
        await events.wait_for(count(JobScored, 1))
    record = result(queue, job_id)
    expected = {key: sidecar[key] for key in ("topic", "category", "style", "language", "generation")}
    assert record["meta"] == expected
    assert record["prompt"] == "Erkläre kreativ: Klimawandel und Meere."
    event = events.of(JobScored)[0]
    assert (event.topic, event.category, event.style, event.generation) == (
        "Klimawandel",
        "gesellschaft",
        "kreativ",
        4,
    )
    for folder in (INCOMING, PROCESSING):
        assert not queue.sidecar_path(folder, job_id).exists()
        assert not queue.job_path(folder, job_id).exists()

"""The bad-input suite: what an attacker or a careless operator puts into the queue or answers as a
backend, against a real consumer, a real nats-server, real files and real loopback HTTP servers.

Each case asserts the precise reason, the counter (the events the consumer published, fed through the
monitor's own :class:`Tracker` into a fresh registry), that nothing valid was lost, and that the
consumer kept running.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from benchmarks.hostile_backend import HostileBackend
from services.cleanup.app import run as run_cleanup
from services.monitor.labels import Labels
from services.monitor.metrics import MonitorMetrics
from services.monitor.status import Tracker
from shared.config import DEFAULT_CONFIG, Settings, load_settings
from shared.messaging import BackendState, CleanupReport, Event, FileRefused, JobFailed, JobScored, subjects
from shared.queue import (
    ATTEMPTS,
    ERROR,
    INCOMING,
    PROCESSING,
    QUARANTINE,
    FileQueue,
    JobFileError,
    JobMeta,
    UnreadableFile,
    load_history,
    parse_job,
    read_bounded,
    shown,
)
from tests.support.consumers import (
    TICK,
    WRAPPER,
    add_raw_job,
    consumer_with_events,
    http_backend,
    job_ids,
    result,
)
from tests.support.harness import HEARTBEATS, count, free_port, observer, running
from tests.support.llm_server import Reply, ScriptedServer
from tests.support.natsserver import NatsServer
from tests.support.records import attempts_written

pytestmark = pytest.mark.timeout(60)
MB = 1024 * 1024
GOOD_PROMPT = "Erkläre, wie Katzen ihre Umgebung wahrnehmen."


def hostile_settings(
    tmp_path: Path, nats_server: NatsServer, *, max_attempts: int = 3, lease_s: float = 120.0, **consumer: Any
) -> Settings:
    return load_settings(
        [DEFAULT_CONFIG],
        data_dir=tmp_path / "data",
        nats={"url": nats_server.url, "tick_fetch_wait_s": 0.1},
        queue={"max_attempts": max_attempts, "lease_s": lease_s},
        consumers={WRAPPER: {"backend_pause": {"base_s": 0.01, "max_s": 60.0}, **consumer}},
    )


async def counters(events: list[Event]) -> CollectorRegistry:
    """The monitor's metrics after seeing ``events`` (its own event handling, a fresh registry)."""
    settings = load_settings([DEFAULT_CONFIG])
    metrics = MonitorMetrics(CollectorRegistry())
    tracker = Tracker(metrics, Labels(settings), settings.monitor)
    for event in events:
        await tracker.on_event(event)
    return metrics.registry


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


def names(folder: Path) -> set[str]:
    return {entry.name for entry in os.scandir(folder)}


@pytest.fixture
async def hostile(request: pytest.FixtureRequest) -> AsyncIterator[HostileBackend]:
    mode, options = request.param
    backend = HostileBackend(mode, **options)
    await backend.start()
    yield backend
    await backend.close()


# -- files and names in incoming/ ------------------------------------------------------------------------


async def test_hostile_entries_in_incoming_are_quarantined_counted_and_logged_once(
    tmp_path: Path, nats_server: NatsServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    settings = hostile_settings(tmp_path, nats_server)
    queue = FileQueue(settings.queue_dir)
    queue.ensure()
    incoming = queue.folder(INCOMING)
    first = queue.add_job(GOOD_PROMPT, JobMeta(topic="Katzen"))
    fd = os.open(os.fsencode(incoming) + b"/poison-\xff.txt", os.O_WRONLY | os.O_CREAT, 0o644)
    os.write(fd, "Erkläre Katzen.".encode())
    os.close(fd)
    (incoming / "evil\nINFO forged line.txt").write_text("Erkläre Katzen.", encoding="utf-8")
    secret = tmp_path / "passwd"
    secret.write_text("root:x:0:0:root:/root:/bin/bash\n", encoding="utf-8")
    (incoming / "link.txt").symlink_to(secret)
    os.mkfifo(incoming / "pipe.txt")
    (incoming / "folder.txt").mkdir()
    (incoming / ".partial.txt").write_text("still being copied", encoding="utf-8")
    spaced = queue.add_job(GOOD_PROMPT, JobMeta(), job_id="a job with spaces and Umlaute äöü")
    async with consumer_with_events(settings) as (nc, events, _stop):
        await nc.publish(TICK, b"")
        await events.wait_for(lambda seen: count(JobScored, 2)(seen) and count(FileRefused, 6)(seen))
        later = queue.add_job(GOOD_PROMPT, JobMeta(topic="Katzen"))
        await nc.publish(TICK, b"")  # a second pass over the same dot-file reports nothing new
        await events.wait_for(count(JobScored, 3))
    refused = {(event.reason, event.name): event for event in events.of(FileRefused)}
    assert {key: event.detail for key, event in refused.items()} == {
        ("bad_name", "poison-\\xff.txt"): "file name is not valid UTF-8",
        ("bad_name", "evil\\nINFO forged line.txt"): "file name contains control or invisible characters",
        ("not_regular_file", "link.txt"): "not a regular file but a symbolic link",
        ("not_regular_file", "pipe.txt"): "not a regular file but a FIFO",
        ("not_regular_file", "folder.txt"): "not a regular file but a directory",
        ("hidden", ".partial.txt"): "a dot-file: never a job, left alone",
    }
    assert len(events.of(FileRefused)) == 6
    registry = await counters(events.events)
    assert value(registry, "syntx_files_refused_total", reason="bad_name") == 2
    assert value(registry, "syntx_files_refused_total", reason="not_regular_file") == 3
    assert value(registry, "syntx_files_refused_total", reason="hidden") == 1
    quarantined = {"poison-%FF.txt", "evil%0AINFO forged line.txt", "link.txt", "pipe.txt", "folder.txt"}
    assert names(queue.folder(QUARANTINE)) == quarantined | {f"{name}.why.txt" for name in quarantined}
    note = (queue.folder(QUARANTINE) / "poison-%FF.txt.why.txt").read_text(encoding="utf-8")
    assert note == "incoming/poison-\\xff.txt: file name is not valid UTF-8\n"
    assert (queue.folder(QUARANTINE) / "link.txt").is_symlink()  # moved as a link; its target untouched
    assert secret.read_text(encoding="utf-8").startswith("root:x:0:0")
    assert names(incoming) == {".partial.txt"} and not names(queue.folder(PROCESSING))
    assert {event.job_id for event in events.of(JobScored)} == {first, spaced, later}
    messages = [record.getMessage() for record in caplog.records]
    assert not [message for message in messages if "\n" in message or "\udcff" in message]
    assert any("evil\\nINFO forged line.txt" in message for message in messages)
    assert sum("incoming/.partial.txt: a dot-file" in message for message in messages) == 1


# -- job files ---------------------------------------------------------------------------------------------

ALIAS_BOMB = b"""---
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: [*e,*e,*e,*e,*e,*e,*e,*e,*e]
---
Erkl\xc3\xa4re Katzen.
"""
HOSTILE_JOBS = {
    "alias bomb": (ALIAS_BOMB, "job header uses YAML anchors or aliases, which are not allowed"),
    "anchor only": (b"---\ntopic: &t Katzen\n---\nPrompt\n", "job header uses YAML anchors or aliases"),
    "big header": (
        b"---\ntopic: " + b"x" * 9000 + b"\n---\nPrompt\n",
        "job header is 9007 bytes, over the limit of 8192",
    ),
    "deep header": (b"---\ntopic: " + b"[" * 2000 + b"]" * 2000 + b"\n---\nPrompt\n", "job header "),
    "binary": (bytes(range(256)) * 4, "job file is binary (contains NUL bytes)"),
    "huge integer": (
        b"---\ngeneration: 1" + b"0" * 4400 + b"\n---\nPrompt\n",
        "job header is not valid YAML: Exceeds the limit (4300 digits)",
    ),
    "bytes value": (
        b"---\nnote: !!binary /w==\n---\nPrompt\n",
        "job header field note: must be a plain value (text, number, date), not bytes",
    ),
    "nested value": (
        b"---\nnote: [1, [2, {a: 3}]]\n---\nPrompt\n",
        "job header field note: must be a plain value (text, number, date), not list",
    ),
}


async def test_hostile_job_files_are_filed_malformed_without_being_expanded_or_read_whole(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    settings = hostile_settings(tmp_path, nats_server, max_header_bytes=8192)  # room for a long number
    queue = FileQueue(settings.queue_dir)
    queue.ensure()
    bad = {name: add_raw_job(queue, data) for name, (data, _reason) in HOSTILE_JOBS.items()}
    huge = add_raw_job(queue, b"")
    with queue.job_path(INCOMING, huge).open("r+b") as handle:
        handle.truncate(50 * MB)  # sparse: 50 MB long, no disk used; reading it whole would take 50 MB
    good = queue.add_job(GOOD_PROMPT, JobMeta(topic="Katzen"))
    async with consumer_with_events(settings) as (nc, events, _stop):
        await nc.publish(TICK, b"")
        await events.wait_for(lambda seen: count(JobFailed, len(bad) + 1)(seen) and count(JobScored, 1)(seen))
    for name, job_id in bad.items():
        record = result(queue, job_id)
        assert (record["folder"], record["status"]) == (ERROR, "malformed"), name
        assert record["reason"].startswith(HOSTILE_JOBS[name][1]), (name, record["reason"])
        assert queue.result_path(job_id).stat().st_size < 4096, name  # type: ignore[union-attr]
    assert result(queue, huge)["reason"] == f"job file is {50 * MB} bytes, over the limit of {256 * 1024}"
    assert result(queue, good)["status"] in ("passed", "rejected")
    registry = await counters(events.events)
    assert value(registry, "syntx_jobs_failed_total", wrapper=WRAPPER, status="malformed") == len(bad) + 1
    assert not job_ids(queue, INCOMING) and not job_ids(queue, PROCESSING)


async def test_broken_attempt_histories_are_quarantined_and_lease_keeping_goes_on(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    """Wrong field types in attempts/<id>.json: the job goes on with an empty history, the file is
    quarantined with a note and counted — at start (recovery) and while processing."""
    settings = hostile_settings(tmp_path, nats_server, lease_s=0.6)
    queue = FileQueue(settings.queue_dir)
    queue.ensure()
    waiting = queue.add_job(GOOD_PROMPT, JobMeta(topic="Katzen"))
    queue.attempts_path(waiting).write_text('[{"number": "one", "owner": 5}]', encoding="utf-8")
    orphan = queue.add_job(GOOD_PROMPT, JobMeta(topic="Katzen"))
    os.rename(queue.job_path(INCOMING, orphan), queue.folder(PROCESSING) / f"{orphan}.claim-deadbeef.txt")
    queue.attempts_path(orphan).write_text('{"not": "a list"}', encoding="utf-8")
    old_claim = os.fsencode(queue.folder(PROCESSING)) + b"/poison-\xff.claim-deadbeef.txt"
    os.close(os.open(old_claim, os.O_WRONLY | os.O_CREAT, 0o644))  # claimed by a version without checks
    (queue.folder(PROCESSING) / "swapped.claim-cafebabe.txt").mkdir()  # a directory under a claim's name
    async with consumer_with_events(settings) as (nc, events, _stop):
        await events.wait_for(count(JobFailed, 1))  # the dead holder's claim, taken over by lease keeping
        await nc.publish(TICK, b"")
        await events.wait_for(count(JobScored, 2))
    taken_over = events.of(JobFailed)[0]
    assert (taken_over.job_id, taken_over.cause, taken_over.attempt) == (orphan, "lease_expired", 1)
    assert [a["outcome"] for a in result(queue, orphan)["attempts"]] == ["lease_expired", "answered"]
    assert [a["number"] for a in result(queue, waiting)["attempts"]] == [1]
    details = sorted(event.detail for event in events.of(FileRefused))
    assert details == [
        "attempt history unreadable (0.number: Input should be a valid integer, unable to parse string as"
        " an integer); counted as empty",
        "attempt history unreadable (top level: Input should be a valid array); counted as empty",
        "file name is not valid UTF-8",
        "not a regular file but a directory",
    ]
    registry = await counters(events.events)
    assert value(registry, "syntx_files_refused_total", reason="bad_attempts") == 2
    assert value(registry, "syntx_files_refused_total", reason="bad_name") == 1
    assert value(registry, "syntx_files_refused_total", reason="not_regular_file") == 1
    assert {f"{orphan}.json", f"{waiting}.json", "poison-%FF.claim-deadbeef.txt"} <= names(
        queue.folder(QUARANTINE)
    )
    assert not names(queue.folder(ATTEMPTS)) and not names(queue.folder(PROCESSING))


async def test_cleanup_reports_what_it_quarantines_by_reason(tmp_path: Path, nats_server: NatsServer) -> None:
    settings = hostile_settings(tmp_path, nats_server)
    queue = FileQueue(settings.queue_dir)
    queue.ensure()
    long_ago = time.time() - 10 * 86400
    stray = queue.folder(INCOMING) / "notes\x1b[2J.pdf"
    stray.write_text("x", encoding="utf-8")
    os.utime(stray, (long_ago, long_ago))
    (queue.folder(ERROR) / "cut.json").write_text('{"status": "fai', encoding="utf-8")
    waiting = queue.add_job(GOOD_PROMPT, JobMeta())
    async with (
        observer(nats_server.url, HEARTBEATS, subjects.JOB_ALL, subjects.CLEANUP_REPORT) as (nc, events),
        running(settings, {"cleanup": run_cleanup}, events),
    ):
        await nc.publish(subjects.tick("cleanup"), b"")
        await events.wait_for(count(CleanupReport, 1))
    refused = sorted((event.reason, event.name, event.quarantined_as) for event in events.of(FileRefused))
    assert refused == [
        ("bad_result", "cut.json", "cut.json"),
        ("stray", "notes\\x1b[2J.pdf", "notes%1B[2J.pdf"),
    ]
    registry = await counters(events.events)
    assert value(registry, "syntx_files_refused_total", reason="stray") == 1
    assert value(registry, "syntx_files_refused_total", reason="bad_result") == 1
    assert value(registry, "syntx_cleanup_quarantined_total") == 2
    assert job_ids(queue, INCOMING) == {waiting}


# -- backend replies ---------------------------------------------------------------------------------------

TOO_BIG = "invalid reply: body too large ({}; backend.max_response_bytes is 1048576)"


@pytest.mark.parametrize(
    ("hostile", "reason"),
    [
        (("huge", {"size_mb": 200}), TOO_BIG.format("more than 1048576 bytes arrived")),
        (("huge_declared", {"size_mb": 200}), TOO_BIG.format(f"announced {200 * MB + 16} bytes")),
    ],
    indirect=["hostile"],
    ids=["200 MB chunked", "200 MB announced"],
)
async def test_an_enormous_reply_is_cut_at_the_limit_and_fails_the_attempt(
    tmp_path: Path, nats_server: NatsServer, hostile: HostileBackend, reason: str
) -> None:
    settings = hostile_settings(tmp_path, nats_server, max_attempts=1, backend=http_backend(hostile.url))
    queue = FileQueue(settings.queue_dir)
    queue.ensure()
    first = queue.add_job(GOOD_PROMPT, JobMeta(topic="Katzen"))
    async with consumer_with_events(settings) as (nc, events, _stop):
        await nc.publish(TICK, b"")
        await events.wait_for(count(JobFailed, 1))
        second = queue.add_job(GOOD_PROMPT, JobMeta(topic="Katzen"))  # the consumer goes on
        await nc.publish(TICK, b"")
        await events.wait_for(count(JobFailed, 2))
    for job_id in (first, second):
        record = result(queue, job_id)
        assert (record["folder"], record["status"]) == (ERROR, "failed")
        assert record["reason"] == f"gave up after 1 failed attempts; last: {reason}"
        assert queue.result_path(job_id).stat().st_size < 8192  # type: ignore[union-attr]
    assert hostile.sent_bytes < 200 * MB / 4  # the consumer hung up early; socket buffers took the rest
    registry = await counters(events.events)
    assert value(registry, "syntx_jobs_failed_total", wrapper=WRAPPER, status="failed") == 2


INVALID_REPLIES = {
    "html": (
        Reply(body=b"<html><body>502 Bad Gateway</body></html>", content_type="text/html"),
        "invalid reply: body is not JSON (text/html); body starts with: '<html><body>502 Bad Gateway",
    ),
    "truncated json": (
        Reply(body=b'{"response": "### 1. Kern\\nEin Sa'),
        'invalid reply: body is not JSON (application/json); body starts with: \'{"response"',
    ),
    "nested json": (Reply(body=b"[" * 100_000 + b"]" * 100_000), "invalid reply: "),
    "wrong type": (Reply(json={"response": ["a", "list"]}), "invalid reply: 'response' is array"),
}


@pytest.mark.parametrize("kind", sorted(INVALID_REPLIES))
async def test_an_invalid_reply_fails_the_attempt_with_a_precise_reason(
    tmp_path: Path, nats_server: NatsServer, server: ScriptedServer, kind: str
) -> None:
    server.default, reason = INVALID_REPLIES[kind]
    settings = hostile_settings(tmp_path, nats_server, max_attempts=1, backend=http_backend(server.url))
    queue = FileQueue(settings.queue_dir)
    queue.ensure()
    job_id = queue.add_job(GOOD_PROMPT, JobMeta(topic="Katzen"))
    async with consumer_with_events(settings) as (nc, events, _stop):
        await nc.publish(TICK, b"")
        await events.wait_for(count(JobFailed, 1))
    record = result(queue, job_id)
    assert (record["folder"], record["status"]) == (ERROR, "failed")
    assert record["reason"].startswith(f"gave up after 1 failed attempts; last: {reason}"), record["reason"]
    registry = await counters(events.events)
    assert value(registry, "syntx_jobs_failed_total", wrapper=WRAPPER, status="failed") == 1


async def test_an_error_page_over_the_limit_still_means_the_backend_is_down(
    tmp_path: Path, nats_server: NatsServer, server: ScriptedServer
) -> None:
    server.default = Reply(status=503, body=b"overloaded " * 200_000, content_type="text/plain")
    settings = hostile_settings(tmp_path, nats_server, max_attempts=1, backend=http_backend(server.url))
    queue = FileQueue(settings.queue_dir)
    queue.ensure()
    job_id = queue.add_job(GOOD_PROMPT, JobMeta(topic="Katzen"))
    async with consumer_with_events(settings) as (nc, events, _stop):
        await nc.publish(TICK, b"")
        await events.wait_for(count(JobFailed, 1))
    failure = events.of(JobFailed)[0]
    assert failure.will_retry and failure.final_status is None  # not counted: the job waits
    assert failure.reason.startswith(
        f"HTTP 503 from {server.url}/api/chat after 1 attempt; server said: 'over"
    )
    assert len(failure.reason) < 400
    assert job_ids(queue, INCOMING) == {job_id} and queue.result_path(job_id) is None
    [attempt] = attempts_written(queue, job_id)
    assert attempt["retryable"] is True


async def test_a_reply_with_a_lone_surrogate_is_scored_with_it_replaced(
    tmp_path: Path, nats_server: NatsServer, server: ScriptedServer
) -> None:
    from tests.support.consumers import good_answer

    server.default = Reply(body=b'{"response": ' + json.dumps(good_answer()).encode()[:-1] + b'\\ud800"}')
    settings = hostile_settings(tmp_path, nats_server, backend=http_backend(server.url))
    queue = FileQueue(settings.queue_dir)
    queue.ensure()
    job_id = queue.add_job(GOOD_PROMPT, JobMeta(topic="Katzen"))
    async with consumer_with_events(settings) as (nc, events, _stop):
        await nc.publish(TICK, b"")
        await events.wait_for(count(JobScored, 1))
    record = result(queue, job_id)
    assert record["status"] in ("passed", "rejected") and record["response"].endswith("?")


async def test_a_backend_that_refuses_connections_pauses_claiming_and_counts_nothing(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    """The contrast to a stalled reply: the job waits for the backend, however many ticks pass."""
    url = f"http://127.0.0.1:{free_port()}"
    settings = hostile_settings(tmp_path, nats_server, max_attempts=1, backend=http_backend(url))
    queue = FileQueue(settings.queue_dir)
    queue.ensure()
    job_id = queue.add_job(GOOD_PROMPT, JobMeta(topic="Katzen"))
    async with (
        observer(nats_server.url, subjects.CONSUMER_BACKEND) as (_nc2, backend_states),
        consumer_with_events(settings) as (nc, events, _stop),
    ):
        for tick in (1, 2, 3):
            await nc.publish(TICK, b"")
            await events.wait_for(count(JobFailed, tick))
        await backend_states.wait_for(count(BackendState, 1))
    assert all(event.will_retry and event.final_status is None for event in events.of(JobFailed))
    assert not backend_states.of(BackendState)[0].available
    assert job_ids(queue, INCOMING) == {job_id} and queue.result_path(job_id) is None
    assert [a["retryable"] for a in attempts_written(queue, job_id)] == [True, True, True]


@pytest.mark.parametrize(
    ("hostile", "timeouts", "reason"),
    [
        (("drip", {"drip_s": 1.0}), {"read_s": 0.3, "total_s": 10.0}, "read timeout from "),
        (
            ("drip", {"drip_s": 0.05}),
            {"read_s": 5.0, "total_s": 0.6},
            "no reply from {url}/api/chat within the overall deadline of 0.6 s (1 attempt; last failure:"
            " none finished)",
        ),
    ],
    indirect=["hostile"],
    ids=["1 byte/s, read timeout", "drip within the read timeout, overall deadline"],
)
async def test_a_dripping_backend_fails_the_job_after_max_attempts(
    tmp_path: Path,
    nats_server: NatsServer,
    hostile: HostileBackend,
    timeouts: dict[str, float],
    reason: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """After giving up on the job the backend is still down: before, the consumer logged "backend
    answers again … resuming" and reported it available, though it still stalled."""
    caplog.set_level(logging.INFO)
    backend = http_backend(hostile.url)
    backend["timeouts"] = {"connect_s": 0.5, **timeouts}
    settings = hostile_settings(tmp_path, nats_server, max_attempts=2, backend=backend)
    queue = FileQueue(settings.queue_dir)
    queue.ensure()
    job_id = queue.add_job(GOOD_PROMPT, JobMeta(topic="Katzen"))
    async with (
        observer(nats_server.url, subjects.CONSUMER_BACKEND) as (_nc2, backend_states),
        consumer_with_events(settings) as (nc, events, _stop),
    ):
        await nc.publish(TICK, b"")
        await events.wait_for(count(JobFailed, 1))
        assert job_ids(queue, INCOMING) == {job_id}  # released, the attempt counted
        await nc.publish(TICK, b"")
        await events.wait_for(count(JobFailed, 2))
        await backend_states.wait_for(count(BackendState, 2))
    assert [state.available for state in backend_states.of(BackendState)] == [False, False]
    assert not [m for m in caplog.messages if m.startswith("backend answers again")]
    record = result(queue, job_id)
    assert (record["folder"], record["status"]) == (ERROR, "failed")
    last = reason.format(url=hostile.url)
    assert record["reason"].startswith(f"gave up after 2 failed attempts; last: {last}"), record["reason"]
    assert [(a["outcome"], a["retryable"]) for a in record["attempts"]] == [("backend_error", False)] * 2
    first, final = events.of(JobFailed)
    assert (first.will_retry, final.will_retry, final.final_status) == (True, False, "failed")
    registry = await counters(events.events)
    assert value(registry, "syntx_backend_failures_total", wrapper=WRAPPER, will_retry="true") == 1
    assert value(registry, "syntx_jobs_failed_total", wrapper=WRAPPER, status="failed") == 1


# -- the pieces, directly ----------------------------------------------------------------------------------


def test_read_bounded_checks_the_kind_and_size_before_reading(tmp_path: Path) -> None:
    sparse = tmp_path / "big.txt"
    with sparse.open("wb") as handle:
        handle.truncate(50 * MB)
    with pytest.raises(UnreadableFile, match=rf"^{50 * MB} bytes, over the limit of 1000$"):
        read_bounded(sparse, 1000)
    os.mkfifo(tmp_path / "fifo")  # opening a FIFO for reading would wait for a writer: it must not
    with pytest.raises(UnreadableFile, match="^not a regular file but a FIFO$"):
        read_bounded(tmp_path / "fifo", 1000)
    (tmp_path / "link").symlink_to(sparse)
    with pytest.raises(UnreadableFile, match="^not a regular file but a symbolic link$"):
        read_bounded(tmp_path / "link", 1000)
    with pytest.raises(UnreadableFile, match="^not a regular file but a directory$"):
        read_bounded(tmp_path, 1000)
    (tmp_path / "fits").write_bytes(b"x" * 1000)
    assert read_bounded(tmp_path / "fits", 1000) == b"x" * 1000
    os.link(tmp_path / "fits", tmp_path / "second name")
    with pytest.raises(UnreadableFile, match="^a hard link to a file with 2 names$"):
        read_bounded(tmp_path / "second name", 1000)


def test_a_sidecar_that_is_a_fifo_or_huge_is_ignored_not_waited_on(tmp_path: Path) -> None:
    from shared.queue import Claims

    queue = FileQueue(tmp_path / "queue")
    queue.ensure()
    claims = Claims(queue, "0badc0de")
    job_id = queue.add_job(GOOD_PROMPT, JobMeta(topic="Katzen"))
    os.mkfifo(queue.sidecar_path(INCOMING, job_id))
    claim = claims.take(job_id)
    assert claim is not None
    assert claims.read_job(claim, 4096).meta.topic == "Katzen"


def test_a_header_with_aliases_is_refused_before_anything_is_built() -> None:
    with pytest.raises(JobFileError, match="anchors or aliases"):
        parse_job("bomb", ALIAS_BOMB, 4096)
    plain = parse_job("ok", b'---\ntopic: "Sterne * Planeten & Monde"\n---\nPrompt\n', 4096)
    assert plain.meta.topic == "Sterne * Planeten & Monde"  # '*' and '&' inside a value are fine
    with pytest.raises(JobFileError, match="^job header is 5007 bytes, over the limit of 4096$"):
        parse_job("long", b"---\ntopic: " + b"x" * 5000 + b"\n---\nPrompt\n", 10_000)


def test_names_are_shown_escaped() -> None:
    assert shown("Katzen äöü.txt") == "Katzen äöü.txt"
    assert shown(os.fsdecode(b"poison-\xff.txt")) == "poison-\\xff.txt"
    assert shown("a\nb\x1b[31m.txt") == "a\\nb\\x1b[31m.txt"
    assert shown("lone \ud800") == "lone \\ud800"


def test_a_missing_attempt_history_is_empty(tmp_path: Path) -> None:
    queue = FileQueue(tmp_path / "queue")
    queue.ensure()
    assert load_history(queue, "nothing").attempts == []
    queue.attempts_path("broken").write_bytes(json.dumps([{"number": 1}]).encode())
    loaded = load_history(queue, "broken")
    assert loaded.attempts == [] and loaded.quarantined is not None
    assert loaded.quarantined.reason == "bad_attempts"

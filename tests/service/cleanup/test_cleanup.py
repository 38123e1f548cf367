"""Cleanup: staging leftovers, strays and broken results to quarantine, retention; the service over NATS."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from nats.aio.client import Client

from services.cleanup.app import run as run_cleanup
from services.cleanup.tidy import DAY_S, Tidier
from services.monitor.app import Monitor
from services.producer.app import run as run_producer
from shared.config import DEFAULT_CONFIG, CleanupSettings, load_settings
from shared.messaging import (
    CleanupReport,
    Event,
    ProducerGeneration,
    ProducerStatsReply,
    connect,
    subjects,
)
from shared.queue import (
    ARCHIVE,
    ATTEMPTS,
    ERROR,
    INCOMING,
    PROCESSED,
    PROCESSING,
    QUARANTINE,
    TMP,
    Claims,
    FileQueue,
    JobMeta,
    new_token,
)
from tests.support.harness import HEARTBEATS, EventLog, free_port, observer, running
from tests.support.monitors import monitor_settings
from tests.support.natsserver import NatsServer
from tests.support.producers import arm_figures, stats
from tests.support.records import result_record

NOW = 1_800_000_000.0  # a fixed "now"; file ages are set relative to it
HOUR = 3600.0
MAX_RESULT_BYTES = 64 * 1024


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    folder = tmp_path / "logs"
    folder.mkdir()
    return folder


def put(path: Path, age_s: float, content: str = "x") -> Path:
    path.write_text(content, encoding="utf-8")
    os.utime(path, (NOW - age_s, NOW - age_s))
    return path


def tidier(queue: FileQueue, logs: Path, **settings: float | None) -> Tidier:
    return Tidier(queue, logs, CleanupSettings(**settings), MAX_RESULT_BYTES)


def names(queue: FileQueue, folder: str) -> set[str]:
    return {path.name for path in queue.folder(folder).iterdir()}


def test_stale_staging_files_are_removed_fresh_ones_kept(queue: FileQueue, logs: Path) -> None:
    put(queue.folder(TMP) / "old.json.a1b2.part", 2 * HOUR)
    put(queue.folder(TMP) / "fresh.txt.c3d4.part", 10)
    report = tidier(queue, logs).run(now=NOW)
    assert names(queue, TMP) == {"fresh.txt.c3d4.part"}
    assert report.removed == {"tmp": 1}
    assert report.quarantined == 0 and report.errors == []


def test_orphan_metadata_is_quarantined_once_older_than_the_staging_age(queue: FileQueue, logs: Path) -> None:
    put(queue.folder(INCOMING) / "orphan.json", 2 * HOUR, '{"topic": "x"}')
    put(queue.folder(INCOMING) / "young.json", 60, '{"topic": "x"}')
    put(queue.folder(INCOMING) / "waiting.json", 2 * HOUR, '{"topic": "x"}')
    put(queue.folder(INCOMING) / "waiting.txt", 2 * HOUR)
    put(queue.folder(INCOMING) / "claimed.json", 2 * HOUR, '{"topic": "x"}')
    put(queue.folder(PROCESSING) / "claimed.txt", 2 * HOUR)

    report = tidier(queue, logs).run(now=NOW)

    assert report.quarantined == 1
    assert names(queue, INCOMING) == {"young.json", "waiting.json", "waiting.txt", "claimed.json"}
    assert names(queue, QUARANTINE) == {"orphan.json", "orphan.json.why.txt"}
    note = (queue.folder(QUARANTINE) / "orphan.json.why.txt").read_text(encoding="utf-8")
    assert note == "incoming/orphan.json: metadata without its job file\n"
    assert (queue.folder(QUARANTINE) / "orphan.json").read_text(encoding="utf-8") == '{"topic": "x"}'
    assert queue.count(QUARANTINE) == 1  # the note does not count

    later = tidier(queue, logs).run(now=NOW + 2 * HOUR)
    assert later.quarantined == 1
    assert "young.json" in names(queue, QUARANTINE)


def test_a_non_job_file_in_incoming_is_quarantined(queue: FileQueue, logs: Path) -> None:
    put(queue.folder(INCOMING) / "prompt.md", 2 * HOUR, "# a prompt in the wrong format")
    put(queue.folder(INCOMING) / "job.txt", 2 * HOUR)
    put(queue.folder(INCOMING) / "job_response.txt", 2 * HOUR)
    put(queue.folder(INCOMING) / ".partial", 2 * HOUR)
    report = tidier(queue, logs).run(now=NOW)
    assert report.quarantined == 2
    assert names(queue, INCOMING) == {"job.txt", ".partial"}
    assert (queue.folder(QUARANTINE) / "prompt.md.why.txt").read_text(encoding="utf-8") == (
        "incoming/prompt.md: not a job file (jobs are .txt)\n"
    )
    assert {"prompt.md", "job_response.txt"} <= names(queue, QUARANTINE)


def test_a_result_that_is_not_json_is_quarantined(queue: FileQueue, logs: Path) -> None:
    put(queue.folder(PROCESSED) / "good.json", 10, json.dumps(result_record("good", "passed")))
    put(queue.folder(PROCESSED) / "cut.json", 10, '{"status": "pas')
    (queue.folder(ERROR) / "binary.json").write_bytes(b"\xff\xfe\x00")  # not even UTF-8
    report = tidier(queue, logs).run(now=NOW)
    assert report.quarantined == 2
    assert names(queue, PROCESSED) == {"good.json"}
    assert names(queue, ERROR) == set()
    assert {"cut.json", "binary.json"} <= names(queue, QUARANTINE)
    note = (queue.folder(QUARANTINE) / "cut.json.why.txt").read_text(encoding="utf-8")
    assert note.startswith("processed/cut.json: result file is not valid JSON: ")


def test_quarantine_never_overwrites_an_earlier_file_of_the_same_name(queue: FileQueue, logs: Path) -> None:
    put(queue.folder(PROCESSED) / "same.json", 10, "first {")
    assert tidier(queue, logs).run(now=NOW).quarantined == 1
    put(queue.folder(ERROR) / "same.json", 10, "second {")
    assert tidier(queue, logs).run(now=NOW).quarantined == 1
    contents = {
        path.read_text(encoding="utf-8")
        for path in queue.folder(QUARANTINE).iterdir()
        if not path.name.endswith(".why.txt")
    }
    assert contents == {"first {", "second {"}
    notes = [path for path in queue.folder(QUARANTINE).iterdir() if path.name.endswith(".why.txt")]
    assert len(notes) == 2
    assert queue.count(QUARANTINE) == 2


def test_logs_older_than_the_retention_are_removed(queue: FileQueue, logs: Path) -> None:
    put(logs / "producer.log.3", 91 * DAY_S)
    put(logs / "producer.log", 1)
    put(logs / "evolution.jsonl", 89 * DAY_S)
    report = tidier(queue, logs).run(now=NOW)
    assert {path.name for path in logs.iterdir()} == {"producer.log", "evolution.jsonl"}
    assert report.removed == {"logs": 1}
    tidier(queue, logs, log_retention_days=30).run(now=NOW)
    assert {path.name for path in logs.iterdir()} == {"producer.log"}


def test_error_and_archive_retention_only_when_configured(queue: FileQueue, logs: Path) -> None:
    for folder, name, age_s in (
        (ERROR, "old-error", 400 * DAY_S),
        (ERROR, "new-error", DAY_S),
        (ARCHIVE, "old-archive", 400 * DAY_S),
        (ARCHIVE, "new-archive", DAY_S),
        (PROCESSED, "old-passed", 400 * DAY_S),
    ):
        record = result_record(name, "passed") if folder == PROCESSED else result_record(name, "failed")
        put(queue.folder(folder) / f"{name}.json", age_s, json.dumps(record))

    kept = tidier(queue, logs).run(now=NOW)
    assert kept.removed == {}
    assert names(queue, ERROR) == {"old-error.json", "new-error.json"}
    assert queue.names(ARCHIVE) == {"old-archive.json", "new-archive.json"}

    report = tidier(queue, logs, error_retention_days=30).run(now=NOW)
    assert report.removed == {ERROR: 1}
    assert names(queue, ERROR) == {"new-error.json"}
    assert queue.names(ARCHIVE) == {"old-archive.json", "new-archive.json"}

    report = tidier(queue, logs, archive_retention_days=365).run(now=NOW)
    assert report.removed == {ARCHIVE: 1}
    assert queue.names(ARCHIVE) == {"new-archive.json"}
    assert names(queue, PROCESSED) == {"old-passed.json"}  # passed results are never expired


def test_stale_attempt_files_are_removed(queue: FileQueue, logs: Path) -> None:
    finished = queue.add_job("finished", JobMeta())
    waiting = queue.add_job("waiting", JobMeta())
    claim = Claims(queue, new_token()).take(finished)
    assert claim is not None
    queue.write_result(PROCESSED, finished, result_record(finished, "passed"))
    claim.path.unlink()  # a crash before the claim's history was removed
    for job_id in (finished, waiting):
        queue.write_attempts(job_id, [{"number": 1, "outcome": "released"}])

    report = tidier(queue, logs).run(now=time.time())

    assert report.removed == {"attempts": 1}
    assert names(queue, ATTEMPTS) == {f"{waiting}.json"}


def test_an_empty_queue_is_left_alone(queue: FileQueue, logs: Path) -> None:
    report = tidier(queue, logs).run(now=NOW)
    assert (report.removed, report.quarantined, report.errors) == ({}, 0, [])
    assert all(count == 0 for count in queue.counts().values())


async def test_the_cleanup_service_reports_a_tick(tmp_path: Path, nats_server: NatsServer) -> None:
    settings = load_settings([DEFAULT_CONFIG], data_dir=tmp_path / "data", nats={"url": nats_server.url})
    queue = FileQueue(settings.queue_dir)
    queue.ensure()
    long_ago = time.time() - 10 * DAY_S
    for name in ("a.txt.1.part", "b.json.2.part"):
        path = queue.folder(TMP) / name
        path.write_text("x", encoding="utf-8")
        os.utime(path, (long_ago, long_ago))
    (queue.folder(TMP) / "now.part").write_text("x", encoding="utf-8")
    stray = queue.folder(INCOMING) / "notes.pdf"
    stray.write_text("x", encoding="utf-8")
    os.utime(stray, (long_ago, long_ago))
    queue.add_job("waits", JobMeta())

    async with (
        observer(nats_server.url, HEARTBEATS, subjects.CLEANUP_REPORT) as (nc, events),
        running(settings, {"cleanup": run_cleanup}, events),
    ):
        await nc.publish(subjects.tick("cleanup"), b"")
        await events.wait_for(lambda found: any(isinstance(event, CleanupReport) for event in found))

    [report] = events.of(CleanupReport)
    assert report.removed == {"tmp": 2}
    assert report.quarantined == 1
    assert report.errors == []
    assert report.kept[INCOMING] == 1
    assert report.kept[TMP] == 1
    assert report.kept[QUARANTINE] == 1
    assert names(queue, QUARANTINE) == {"notes.pdf", "notes.pdf.why.txt"}


def test_archive_retention_removes_whole_expired_day_folders(queue: FileQueue, logs: Path) -> None:
    assert datetime.fromtimestamp(NOW, UTC) == datetime(2027, 1, 15, 8, tzinfo=UTC)
    for day, job_ids in (("2026-12-14", ["a", "b"]), ("2026-12-15", ["c"]), ("2026-12-16", ["d"])):
        for job_id in job_ids:
            queue.write_result(PROCESSED, job_id, {"status": "passed"})
            archived_at = datetime.fromisoformat(day + "T23:59Z")
            path = queue.archive(queue.folder(PROCESSED) / f"{job_id}.json", archived_at)
            os.utime(path, (NOW, NOW))  # a file's own age does not matter, its day folder's does
    put(queue.folder(ARCHIVE) / "flat-old.json", 31 * DAY_S, "{}")  # earlier versions' flat archive:
    put(queue.folder(ARCHIVE) / "flat-new.json", 29 * DAY_S, "{}")  # filed by modification day

    report = tidier(queue, logs, archive_retention_days=30).run(now=NOW)

    # 2026-12-15 ended 2026-12-16 00:00, 30 days before 2027-01-15 00:00 < now: gone; 2026-12-16 stays
    assert report.removed == {ARCHIVE: 4}
    assert [name for _, name in queue.archive_days()] == ["2026-12-16", "2026-12-17"]  # flat-new filed
    assert queue.names(ARCHIVE) == {"flat-new.json", "d.json"}


def test_flat_archive_results_of_earlier_versions_move_into_their_day_folder(
    queue: FileQueue, logs: Path
) -> None:
    old = put(queue.folder(ARCHIVE) / "20261201T100000000000Z-aaaaaa.json", 45 * DAY_S, "{}")
    before = old.read_bytes()
    assert queue.result_path(old.stem) == old  # read in place until cleanup files it

    report = tidier(queue, logs).run(now=NOW)

    assert report.refiled == 1 and report.removed == {}
    filed = queue.folder(ARCHIVE) / "2026-12-01" / old.name  # the day of its modification time
    assert filed.read_bytes() == before
    assert queue.result_path(old.stem) == filed
    assert [path.name for path in queue.folder(ARCHIVE).iterdir()] == ["2026-12-01"]


# -- results that are not trusted ------------------------------------------------------------------


def untrusted_results(queue: FileQueue) -> dict[str, str]:
    """Plants one file per kind of untrusted result; returns quarantined name -> the note expected."""
    scored = result_record("huge", "passed", 96, meta={"category": "harmlos", "style": "casual"})
    files: dict[str, tuple[str, Any, str]] = {
        "huge.json": (
            PROCESSED,
            {**scored, "score": {**scored["score"], "total": 1_000_000_000}},
            "score outside 0..100: score.total = 1000000000 (reason: score_out_of_range)",
        ),
        "renamed.json": (
            PROCESSED,
            {**scored, "job_id": "someone-else"},
            "job id 'someone-else' does not match the file name (reason: job_id_mismatch)",
        ),
        "cut.json": (
            ERROR,
            '{"job_id": "cut", "status": "rej',
            "result file is not valid JSON: EOF while parsing a string at line 1 column 32"
            " (reason: not_json)",
        ),
        "typed.json": (
            ERROR,
            {**result_record("typed", "rejected", 40), "threshold": "ninety"},
            "invalid field: threshold = 'ninety': Input should be a valid integer (reason: invalid_field)",
        ),
        "graded.json": (
            ERROR,
            {**result_record("graded", "failed"), "status": "graded"},
            "unknown status: status = 'graded' (reason: unknown_status)",
        ),
        "unscored.json": (
            PROCESSED,
            {**result_record("unscored", "passed"), "score": None},
            "no known scorer: a passed result without a score (reason: unknown_scorer)",
        ),
    }
    notes = {}
    for name, (folder, content, why) in files.items():
        text = content if isinstance(content, str) else json.dumps(content)
        put(queue.folder(folder) / name, 10, text)
        notes[name] = f"{folder}/{name}: {why}\n"
    return notes


def test_untrusted_results_are_quarantined_with_their_reason(queue: FileQueue, logs: Path) -> None:
    notes = untrusted_results(queue)
    put(queue.folder(PROCESSED) / "good.json", 10, json.dumps(result_record("good", "passed")))
    put(queue.folder(ERROR) / "failed.json", 10, json.dumps(result_record("failed", "failed")))
    large = result_record("large", "failed", prompt="x" * 70_000)
    put(queue.folder(ERROR) / "large.json", 10, json.dumps(large))

    report = tidier(queue, logs).run(now=NOW)

    assert report.untrusted == {
        "score_out_of_range": 1,
        "job_id_mismatch": 1,
        "not_json": 1,
        "invalid_field": 1,
        "unknown_status": 1,
        "unknown_scorer": 1,
        "too_large": 1,
    }
    assert report.quarantined == 7
    assert names(queue, PROCESSED) == {"good.json"}
    assert names(queue, ERROR) == {"failed.json"}
    for name, note in notes.items():
        assert (queue.folder(QUARANTINE) / f"{name}.why.txt").read_text(encoding="utf-8") == note
    assert (queue.folder(QUARANTINE) / "large.json.why.txt").read_text(encoding="utf-8") == (
        f"error/large.json: result file is larger than {MAX_RESULT_BYTES} bytes (reason: too_large)\n"
    )
    assert tidier(queue, logs).run(now=NOW).untrusted == {}  # each is counted once


async def test_untrusted_results_are_not_learned_but_quarantined_and_counted(
    tmp_path: Path, nats_server: NatsServer, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()
    settings = monitor_settings(tmp_path, nats_server, port)
    queue = FileQueue(settings.queue_dir)
    queue.ensure()
    notes = untrusted_results(queue)
    meta = {"category": "harmlos", "style": "casual", "sequence": 0}
    good = result_record("good", "passed", 96, meta=meta)
    assert queue.write_result(PROCESSED, "good", good)
    monitor = Monitor(settings)
    counted = asyncio.Event()
    original = monitor.tracker.on_event

    async def on_event(event: Event) -> None:
        await original(event)
        if isinstance(event, CleanupReport):
            counted.set()

    monitor.tracker.on_event = on_event  # type: ignore[method-assign]
    caplog.set_level(logging.WARNING, logger="shared.learning.rebuild")
    watched = (HEARTBEATS, subjects.CLEANUP_REPORT, subjects.PRODUCER_GENERATION)
    stop = asyncio.Event()
    async with (
        observer(nats_server.url, *watched) as (nc, events),
        connect(settings.nats, name="monitor") as bus,
        running(settings, {"producer": run_producer, "cleanup": run_cleanup}, events),
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as client,
    ):
        serving = asyncio.create_task(monitor.serve(bus, stop))
        try:
            stats_before, generation = await learn_and_tick(nc, events)
            # Cleanup quarantines the rest and the monitor counts them by reason.
            await events.wait_for(lambda found: any(getattr(e, "service", None) == "monitor" for e in found))
            await nc.publish(subjects.tick("cleanup"), b"")
            await asyncio.wait_for(counted.wait(), timeout=20)
            text = (await client.get("/metrics")).text
            stats_after = await stats(nc)
        finally:
            stop.set()
            await asyncio.wait_for(serving, timeout=30)

    # The producer learned only the trusted result, at its start and on its tick, and kept running.
    assert stats_before.observed == 1 and arm_figures(stats_before)["harmlos/casual"]["weight"] == 1.0
    assert (generation.learned_from, generation.archived) == (1, 1)
    assert stats_after.observed == 1
    assert arm_figures(stats_after)["harmlos/casual"] == arm_figures(stats_before)["harmlos/casual"]
    refused = [message for message in caplog.messages if message.startswith("not learning from")]
    assert len(refused) == len(notes)
    assert any("huge.json: score outside 0..100: score.total = 1000000000" in m for m in refused)
    # Cleanup quarantined each untrusted result with its note; the monitor counted each reason.
    [report] = events.of(CleanupReport)
    reasons = ("score_out_of_range", "job_id_mismatch", "not_json", "invalid_field", "unknown_status")
    assert report.untrusted == dict.fromkeys((*reasons, "unknown_scorer"), 1)
    for reason in (*reasons, "unknown_scorer"):
        assert untrusted_metric(text, reason) == 1
    assert untrusted_metric(text, "too_large") == 0  # every reason is exported from the start
    assert queue.count(PROCESSED) == queue.count(ERROR) == 0
    assert {path.name for path in queue.result_files(ARCHIVE)} == {"good.json"}
    for name, note in notes.items():
        assert (queue.folder(QUARANTINE) / f"{name}.why.txt").read_text(encoding="utf-8") == note


async def learn_and_tick(nc: Client, events: EventLog) -> tuple[ProducerStatsReply, ProducerGeneration]:
    learned = await stats(nc)
    await nc.publish(subjects.tick("producer"), b"")
    await events.wait_for(lambda found: any(isinstance(event, ProducerGeneration) for event in found))
    [generation] = events.of(ProducerGeneration)
    return learned, generation


def untrusted_metric(text: str, reason: str) -> float:
    match = re.search(rf'^syntx_results_untrusted_total\{{reason="{reason}"\}} (\S+)$', text, re.MULTILINE)
    assert match, f"no series for {reason} in /metrics"
    return float(match.group(1))


def test_each_result_is_read_by_the_first_pass_that_sees_it(queue: FileQueue, logs: Path) -> None:
    """A pass reads only results changed since the previous one; a million old results cost a stat each."""
    cleanup = tidier(queue, logs)
    put(queue.folder(PROCESSED) / "good.json", 10, json.dumps(result_record("good", "passed")))
    assert cleanup.run(now=NOW).quarantined == 0
    put(queue.folder(ERROR) / "cut.json", 10, '{"status": "pas')  # changed after the first pass: read
    assert cleanup.run(now=NOW).quarantined == 1
    ahead = Tidier(queue, logs, CleanupSettings(), MAX_RESULT_BYTES, check_overlap_s=-HOUR)
    ahead.run(now=NOW)  # this pass "started" an hour from now
    put(queue.folder(ERROR) / "late.json", 10, '{"status": "pas')
    assert ahead.run(now=NOW).quarantined == 0  # older than the last pass by the file clock: not read
    assert tidier(queue, logs).run(now=NOW).quarantined == 1  # a new cleanup process reads everything once

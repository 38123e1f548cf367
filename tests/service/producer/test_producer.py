"""The producer: back pressure (TV11), what it reads to learn, and the service over a real nats-server."""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from services.monitor.health import Observations, judge
from services.producer.app import EVOLUTION_LOG, last_generation
from shared.backoff import Backoff
from shared.config import BackPressureSettings, HealthSettings
from shared.learning import Observation
from shared.learning.evolution import read_generations
from shared.learning.results import NotLearned, read_observation
from shared.messaging import JobCreated, ProducerGeneration, subjects
from shared.queue import (
    ARCHIVE,
    ERROR,
    INCOMING,
    PROCESSED,
    RESULT_SUFFIX,
    TMP,
    FileQueue,
    JobMeta,
    ResultFolder,
    parse_job,
    producer_batch,
    queue_state,
)
from tests.support.consumers import until
from tests.support.diskfaults import fill, tmpfs
from tests.support.harness import scored
from tests.support.natsserver import NatsServer
from tests.support.producers import (
    arm_figures,
    favoured,
    producer_running,
    producer_settings,
    result_record,
    score_jobs,
    stats,
    stats_once_learned,
    tick,
)

# -- back pressure: TV11 ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("incoming", "state", "batch", "health"),
    [
        (0, "STARVING", 20, "OK"),
        (3, "LOW", 15, "OK"),
        (12, "BALANCED", 10, "OK"),
        (24, "BALANCED", 10, "OK"),
        (25, "HIGH", 0, "WARNING"),
        (50, "OVERFLOW", 0, "CRITICAL"),
        (51, "OVERFLOW", 0, "CRITICAL"),
    ],
)
def test_tv11_queue_states(incoming: int, state: str, batch: int, health: str) -> None:
    limits = BackPressureSettings()
    assert queue_state(incoming, limits) == state
    assert producer_batch(queue_state(incoming, limits), 20) == batch
    assert health_of_queue(queue_state(incoming, limits), incoming) == health


def health_of_queue(state: str, incoming: int) -> str:
    """The monitor's health when nothing but the queue state says anything."""
    quiet = Observations(
        queue_state=state,
        incoming=incoming,
        outcomes=(0, 0, 0),
        oldest_claim_age_s=None,
        backends_down=[],
        wrappers=2,
        silent_services=[],
        expected_services=5,
        missed_schedules=[],
    )
    return judge(quiet, HealthSettings(), lease_s=120).state


def test_configured_thresholds_move_the_states() -> None:
    limits = BackPressureSettings(low=2, high=4, overflow=6)
    states = [queue_state(n, limits) for n in range(8)]
    assert states == ["STARVING", "LOW", "BALANCED", "BALANCED", "HIGH", "HIGH", "OVERFLOW", "OVERFLOW"]


# -- what the learner reads --------------------------------------------------------------------

CONTEXT = "sigma|offline|offline-responder|syntx-2"


def test_observation_from_a_result(tmp_path: Path) -> None:
    path = tmp_path / "job-a.json"
    path.write_text(
        json.dumps(result_record("job-a", "passed", 96, "harmlos", "casual", 4)), encoding="utf-8"
    )
    expected = Observation("job-a", 4, "harmlos", "casual", "de", CONTEXT, 96)
    assert read_observation(path, 4096) == expected
    path.write_text(
        json.dumps(result_record("job-a", "rejected", 40, "harmlos", "casual", 4)), encoding="utf-8"
    )
    assert read_observation(path, 4096) == Observation("job-a", 4, "harmlos", "casual", "de", CONTEXT, 40)


GOOD = result_record("x", "passed", 90, "harmlos", "casual")


def with_total(total: object) -> dict[str, Any]:
    return {**GOOD, "score": {**GOOD["score"], "total": total}}


@pytest.mark.parametrize(
    ("content", "reason", "untrusted"),
    [
        (json.dumps(result_record("x", "failed", None, "harmlos", "casual")).encode(), "not scored", False),
        (
            json.dumps(result_record("x", "malformed", None, "harmlos", "casual")).encode(),
            "not scored",
            False,
        ),
        (json.dumps({**GOOD, "meta": {"sequence": 1}}).encode(), "no category and style", False),
        (json.dumps({**GOOD, "meta": "harmlos"}).encode(), "invalid field: meta = 'harmlos'", True),
        (
            json.dumps({**GOOD, "meta": {**GOOD["meta"], "sequence": None}}).encode(),
            "no producer sequence",
            False,
        ),
        (json.dumps(with_total("90")).encode(), "invalid field: score.total = '90'", True),
        (json.dumps(with_total(150)).encode(), "score outside 0..100", True),
        (json.dumps(with_total(-1)).encode(), "score outside 0..100", True),
        (json.dumps(with_total(True)).encode(), "invalid field: score.total = True", True),
        (json.dumps({**GOOD, "scorer": "mine"}).encode(), "no known scorer", True),
        (json.dumps({**GOOD, "job_id": "other"}).encode(), "job id 'other' does not match", True),
        (json.dumps(["not", "a", "record"]).encode(), "not a result", True),
        (b"{truncated", "result file is not valid JSON", True),
        (b"\xff\xfe\x00binary", "result file is not valid JSON", True),
        (b"", "result file is not valid JSON", True),
        (b" " * 5000, "result file is larger than 4096 bytes", True),
    ],
)
def test_results_that_cannot_be_learned_say_why(
    tmp_path: Path, content: bytes, reason: str, untrusted: bool
) -> None:
    path = tmp_path / "x.json"
    path.write_bytes(content)
    outcome = read_observation(path, 4096)
    assert isinstance(outcome, NotLearned)
    assert outcome.said.startswith(reason) and outcome.untrusted is untrusted


def test_observation_from_an_unreadable_path(tmp_path: Path) -> None:
    assert isinstance(read_observation(tmp_path / "missing.json", 4096), NotLearned)
    (tmp_path / "dir.json").mkdir()
    assert isinstance(read_observation(tmp_path / "dir.json", 4096), NotLearned)


def test_last_generation_reads_the_last_readable_line(tmp_path: Path) -> None:
    path = tmp_path / EVOLUTION_LOG
    assert last_generation(path) == 0
    path.write_text("", encoding="utf-8")
    assert last_generation(path) == 0
    path.write_text('{"generation": 4}\n{"generation": 5}\n{truncated\n[1]\n', encoding="utf-8")
    assert last_generation(path) == 5


# -- the service over NATS -------------------------------------------------------------------------

HEADER_FIELDS = ("topic", "category", "style", "language", "generation")


async def test_a_tick_on_an_empty_queue_writes_a_full_batch(tmp_path: Path, nats_server: NatsServer) -> None:
    settings = producer_settings(tmp_path, nats_server, seed=3)
    queue = FileQueue(settings.queue_dir)
    async with producer_running(settings) as (nc, events):
        generation = await tick(nc, events)
        created = await events.wait_for(lambda evs: len([e for e in evs if isinstance(e, JobCreated)]) >= 20)

    assert (generation.generation, generation.produced, generation.requested) == (1, 20, 20)
    assert (generation.queue_state, generation.incoming, generation.skipped_reason) == ("STARVING", 0, None)
    assert len(generation.favoured) == 3
    assert len(events.of(ProducerGeneration)) == 1

    job_ids = sorted(queue.job_ids(INCOMING))
    assert len(job_ids) == 20
    announced = [event for event in created if isinstance(event, JobCreated)]
    assert sorted(event.job_id for event in announced) == job_ids
    by_id = {event.job_id: event for event in announced}
    for job_id in job_ids:
        job = parse_job(job_id, queue.job_path(INCOMING, job_id).read_bytes(), 256 * 1024)
        assert all(getattr(job.meta, name) is not None for name in HEADER_FIELDS), job.meta
        assert job.meta.generation == 1 and job.meta.language == "de" and job.meta.created is not None
        assert job.meta.category is not None and job.meta.topic in settings.topics[job.meta.category]
        assert job.meta.style in settings.styles
        assert job.prompt.startswith(settings.styles[job.meta.style].strip())
        event = by_id[job_id]
        assert (event.topic, event.category, event.style, event.generation) == (
            job.meta.topic,
            job.meta.category,
            job.meta.style,
            1,
        )
    lines = (settings.logs_dir / EVOLUTION_LOG).read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["generation"] for line in lines] == [1]


async def test_a_high_queue_skips_production(tmp_path: Path, nats_server: NatsServer) -> None:
    settings = producer_settings(tmp_path, nats_server, seed=3)
    queue = FileQueue(settings.queue_dir)
    queue.ensure()
    waiting = {queue.add_job(f"prompt {index}", JobMeta()) for index in range(30)}
    async with producer_running(settings) as (nc, events):
        generation = await tick(nc, events)

    assert (generation.produced, generation.requested, generation.queue_state) == (0, 0, "HIGH")
    assert generation.incoming == 30
    assert generation.skipped_reason == "queue HIGH with 30 waiting"
    assert set(queue.job_ids(INCOMING)) == waiting
    assert events.of(JobCreated) == []


async def test_results_on_disk_are_learned_at_start_and_archived_on_the_next_tick(
    tmp_path: Path, nats_server: NatsServer, caplog: pytest.LogCaptureFixture
) -> None:
    settings = producer_settings(tmp_path, nats_server, seed=3)
    queue = FileQueue(settings.queue_dir)
    queue.ensure()
    rows: list[tuple[ResultFolder, str, str, int | None, str, str]] = [
        (PROCESSED, "p1", "passed", 98, "harmlos", "casual"),
        (PROCESSED, "p2", "passed", 94, "harmlos", "casual"),
        (ERROR, "e1", "rejected", 40, "bildung", "technisch"),
        (ERROR, "e2", "failed", None, "bildung", "technisch"),
    ]
    for sequence, (folder, job_id, status, score, category, style) in enumerate(rows):
        record = result_record(job_id, status, score, category, style, sequence)
        assert queue.write_result(folder, job_id, record)
    (queue.folder(PROCESSED) / "broken.json").write_text("{not json", encoding="utf-8")

    caplog.set_level(logging.INFO, logger="services.producer.app")
    async with producer_running(settings) as (nc, events):
        assert any(m.startswith("learned from 3 results on disk") for m in caplog.messages)
        reply = await stats(nc)
        assert reply.observed == 3
        assert reply.generation == 0
        arms = arm_figures(reply)
        assert len(arms) == len(settings.topics) * len(settings.styles)
        assert arms["harmlos/casual"]["weight"] == 2.0 and arms["bildung/technisch"]["weight"] == 1.0
        assert arms["harmlos/casual"]["mean"] > arms["bildung/technisch"]["mean"]
        assert favoured(reply)[0] == "harmlos/casual"
        assert {path.name for path in queue.result_files(PROCESSED)} == {"p1.json", "p2.json", "broken.json"}

        generation = await tick(nc, events)

    assert generation.archived == 2
    assert generation.learned_from == 3
    assert {path.name for path in queue.result_files(ARCHIVE)} == {"p1.json", "p2.json"}
    assert {path.name for path in queue.result_files(PROCESSED)} == {"broken.json"}
    assert {path.name for path in queue.result_files(ERROR)} == {"e1.json", "e2.json"}


async def test_generation_numbers_continue_across_a_restart(tmp_path: Path, nats_server: NatsServer) -> None:
    settings = producer_settings(tmp_path, nats_server, seed=3)
    queue = FileQueue(settings.queue_dir)
    async with producer_running(settings) as (nc, events):
        first = await tick(nc, events)
    assert (first.generation, first.produced) == (1, 20)

    async with producer_running(settings) as (nc, events):
        assert (await stats(nc)).generation == 1
        second = await tick(nc, events)
    assert (second.generation, second.queue_state, second.produced) == (2, "BALANCED", 10)

    generations_on_disk = Counter(
        parse_job(job_id, queue.job_path(INCOMING, job_id).read_bytes(), 256 * 1024).meta.generation
        for job_id in sorted(queue.job_ids(INCOMING))
    )
    assert generations_on_disk == {1: 20, 2: 10}
    lines = (settings.logs_dir / EVOLUTION_LOG).read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["generation"] for line in lines] == [1, 2]


async def test_results_learned_for_a_stats_request_still_count_in_the_next_generation(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    """Asking what the producer believes (``syntx learning``) learns the results scored since its last
    tick; the next generation still counts them as its own, in its line and its event."""
    settings = producer_settings(tmp_path, nats_server, seed=3)
    queue = FileQueue(settings.queue_dir)
    scores = [70, 80, 90]
    async with producer_running(settings) as (nc, events):
        await tick(nc, events)
        await score_jobs(nc, queue, scores)
        asked = await stats_once_learned(nc, len(scores))
        second = await tick(nc, events, count=2)

    assert asked.observed == len(scores) and second.learned_from == len(scores)
    logged = list(read_generations(settings.logs_dir / EVOLUTION_LOG))
    assert (logged[1].learned, logged[1].mean_score) == (len(scores), 80.0)
    assert second.mean_score == 80.0 and second.archived == len(scores)


async def test_generation_continues_from_an_existing_evolution_log(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    settings = producer_settings(tmp_path, nats_server, seed=3)
    settings.logs_dir.mkdir(parents=True)
    (settings.logs_dir / EVOLUTION_LOG).write_text('{"generation": 5}\n', encoding="utf-8")
    async with producer_running(settings) as (nc, events):
        generation = await tick(nc, events)
    assert generation.generation == 6


async def test_a_scored_event_naming_a_path_outside_the_queue_is_never_read(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    """Before: ``syntx.job.scored`` with ``job_id: "../../../outside/victim"`` made the producer read —
    and learn from — a file outside the queue. Now the id is refused by the name rule, as the event
    arrives and again before any path is built from it."""
    settings = producer_settings(tmp_path, nats_server, seed=5)
    queue = FileQueue(settings.queue_dir)
    queue.ensure()
    hostile = "../../../outside/victim"
    victim = queue.folder(PROCESSED) / f"{hostile}{RESULT_SUFFIX}"  # where a plain join would lead
    victim.parent.mkdir(parents=True)
    victim.write_text(
        json.dumps(result_record("victim", "passed", 99, "harmlos", "casual")), encoding="utf-8"
    )
    body = json.loads(scored("x").model_dump_json()) | {"job_id": hostile}
    async with producer_running(settings) as (nc, events):
        await nc.publish(subjects.JOB_SCORED, json.dumps(body).encode())
        await nc.flush()
        generation = await tick(nc, events)
        reply = await stats(nc)
    assert victim.resolve().is_relative_to(tmp_path) and not victim.resolve().is_relative_to(queue.root)
    assert generation.learned_from == 0 and reply.observed == 0
    assert victim.exists(), "not archived either"


async def test_a_full_disk_pauses_the_producer_without_a_traceback_and_it_resumes(
    tmp_path: Path, nats_server: NatsServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A tick on a full disk writes nothing (no half jobs, no staging files), says so once, and the
    producer resumes by itself once there is space."""
    caplog.set_level(logging.INFO)
    with tmpfs(tmp_path / "data", 1024 * 1024) as data_dir:
        settings = producer_settings(tmp_path, nats_server, seed=7)
        settings = settings.model_copy(
            update={
                "data_dir": data_dir,
                "queue": settings.queue.model_copy(update={"fault_probe": Backoff(base_s=0.05, max_s=0.2)}),
            }
        )
        queue = FileQueue(settings.queue_dir)
        queue.ensure()
        async with producer_running(settings) as (nc, events):
            filler = fill(data_dir)
            await tick(nc, events, 1)
            assert sorted(queue.job_ids(INCOMING)) == [] and os.listdir(queue.folder(TMP)) == []
            filler.unlink()
            await until(
                lambda: any(m.startswith("the queue can be written again") for m in caplog.messages),
                "the producer's gate opens",
            )
            generation = await tick(nc, events, 2)
        assert generation.produced > 0 and len(sorted(queue.job_ids(INCOMING))) == generation.produced
    said = [m for m in caplog.messages if m.startswith("the queue cannot be written")]
    assert len(said) == 1 and "No space left on device (ENOSPC)" in said[0]
    assert not [r for r in caplog.records if r.exc_info], "no tracebacks"

"""The producer: back pressure (TV11), the learner, and the service over a real nats-server."""

from __future__ import annotations

import json
import logging
import random
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from nats.aio.client import Client

from services.monitor.health import Observations, judge
from services.producer.app import EVOLUTION_LOG, last_generation
from services.producer.app import run as run_producer
from services.producer.learning import Arm, Learner, Observation, observation_from_result
from shared.config import (
    DEFAULT_CONFIG,
    BackPressureSettings,
    HealthSettings,
    LearningSettings,
    Settings,
    load_settings,
)
from shared.messaging import (
    Event,
    GeneratorBudgetExhausted,
    GeneratorCall,
    JobCreated,
    ProducerGeneration,
    subjects,
)
from shared.queue import (
    ARCHIVE,
    ERROR,
    INCOMING,
    PROCESSED,
    FileQueue,
    JobMeta,
    ResultFolder,
    parse_job,
    producer_batch,
    queue_state,
)
from tests.harness import HEARTBEATS, EventLog, observer, running
from tests.llm_server import Reply, ScriptedServer
from tests.natsserver import NatsServer
from tests.records import score_record

MAX_RESULT_BYTES = 1024 * 1024

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


# -- the learner -----------------------------------------------------------------------------------

BEST: Arm = ("technologie", "kreativ")
POOR: list[Arm] = [("harmlos", "casual"), ("bildung", "technisch")]
UNTRIED: Arm = ("kritisch", "akademisch")


def trained_learner(seed: int) -> Learner:
    learner = Learner(LearningSettings(), random.Random(seed))
    number = 0
    for arm, score in [(BEST, 98), *((arm, 60) for arm in POOR)]:
        for _ in range(30):
            number += 1
            learner.observe(Observation(f"job-{number}", arm[0], arm[1], score))
    return learner


def test_observing_the_same_job_twice_counts_once() -> None:
    learner = Learner(LearningSettings(), random.Random(1))
    assert learner.observe(Observation("job-1", "harmlos", "casual", 95)) is True
    assert learner.observe(Observation("job-1", "harmlos", "casual", 95)) is False
    assert learner.observe(Observation("job-1", "bildung", "kreativ", 10)) is False
    assert learner.summary() == {"harmlos/casual": {"count": 1, "mean": 95.0, "passed": 1}}
    assert learner.seen == {"job-1"}


def test_choose_favours_the_better_arm_and_still_explores() -> None:
    arms = [BEST, *POOR, UNTRIED]
    learner = trained_learner(seed=11)
    draws = [learner.choose(arms) for _ in range(1000)]
    chosen = Counter(draws)
    assert chosen[BEST] >= 900
    assert 0 < chosen[UNTRIED] < 100, chosen
    assert sum(chosen[arm] for arm in POOR) < 10
    # deterministic with the seed
    again = trained_learner(seed=11)
    assert [again.choose(arms) for _ in range(1000)] == draws


def test_favoured_ranks_by_posterior_mean() -> None:
    learner = trained_learner(seed=3)
    assert learner.favoured([*POOR, UNTRIED, BEST], top=2) == [BEST, UNTRIED]


def test_learning_disabled_chooses_uniformly() -> None:
    learner = trained_learner(seed=5)
    learner.settings = LearningSettings(enabled=False)
    chosen = Counter(learner.choose([BEST, *POOR, UNTRIED]) for _ in range(1000))
    assert all(180 < chosen[arm] < 320 for arm in [BEST, *POOR, UNTRIED]), chosen


def result_record(job_id: str, status: str, score: int | None, category: str, style: str) -> dict[str, Any]:
    return {
        "job_id": job_id,
        "status": status,
        "meta": {"category": category, "style": style, "topic": "Katzen"},
        "reason": f"{status} in a test",
        "score": None if score is None else score_record(score),
        "prompt": "Erkläre: Katzen",
    }


def test_observation_from_result(tmp_path: Path) -> None:
    path = tmp_path / "job-a.json"
    path.write_text(json.dumps(result_record("job-a", "passed", 96, "harmlos", "casual")), encoding="utf-8")
    assert observation_from_result(path, MAX_RESULT_BYTES) == Observation("job-a", "harmlos", "casual", 96)
    path.write_text(json.dumps(result_record("job-a", "rejected", 40, "harmlos", "casual")), encoding="utf-8")
    assert observation_from_result(path, MAX_RESULT_BYTES) == Observation("job-a", "harmlos", "casual", 40)


@pytest.mark.parametrize(
    "content",
    [
        json.dumps(result_record("x", "failed", None, "harmlos", "casual")).encode(),
        json.dumps(result_record("x", "malformed", None, "harmlos", "casual")).encode(),
        json.dumps({**result_record("x", "passed", 90, "harmlos", "casual"), "meta": {}}).encode(),
        json.dumps({**result_record("x", "passed", 90, "harmlos", "casual"), "meta": "harmlos"}).encode(),
        json.dumps(
            {**result_record("x", "passed", 90, "harmlos", "casual"), "score": {"total": "90"}}
        ).encode(),
        json.dumps(["not", "a", "record"]).encode(),
        b"{truncated",
        b"\xff\xfe\x00binary",
        b"",
    ],
)
def test_observation_from_result_ignores_what_cannot_be_learned(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "x.json"
    path.write_bytes(content)
    assert observation_from_result(path, MAX_RESULT_BYTES) is None


def test_observation_from_an_unreadable_path(tmp_path: Path) -> None:
    assert observation_from_result(tmp_path / "missing.json", MAX_RESULT_BYTES) is None
    (tmp_path / "dir.json").mkdir()
    assert observation_from_result(tmp_path / "dir.json", MAX_RESULT_BYTES) is None


def test_last_generation_reads_the_last_readable_line(tmp_path: Path) -> None:
    path = tmp_path / EVOLUTION_LOG
    assert last_generation(path) == 0
    path.write_text("", encoding="utf-8")
    assert last_generation(path) == 0
    path.write_text('{"generation": 4}\n{"generation": 5}\n{truncated\n[1]\n', encoding="utf-8")
    assert last_generation(path) == 5


# -- the service over NATS -------------------------------------------------------------------------

HEADER_FIELDS = ("topic", "category", "style", "language", "generation")


def producer_settings(tmp_path: Path, nats_server: NatsServer) -> Settings:
    return load_settings(
        [DEFAULT_CONFIG],
        data_dir=tmp_path / "data",
        nats={"url": nats_server.url},
        producer={"seed": 3},
    )


@asynccontextmanager
async def producer_running(settings: Settings) -> AsyncIterator[tuple[Client, EventLog]]:
    assert settings.nats.url
    watched = (HEARTBEATS, subjects.JOB_CREATED, subjects.PRODUCER_GENERATION)
    async with (
        observer(settings.nats.url, *watched) as (nc, events),
        running(settings, {"producer": run_producer}, events),
    ):
        yield nc, events


def generations(count: int) -> Any:
    return lambda events: sum(isinstance(event, ProducerGeneration) for event in events) >= count


async def tick(nc: Client, events: EventLog, count: int = 1) -> ProducerGeneration:
    await nc.publish(subjects.tick("producer"), b"")
    found: list[Event] = await events.wait_for(generations(count))
    latest: ProducerGeneration = [event for event in found if isinstance(event, ProducerGeneration)][-1]
    return latest


async def test_a_tick_on_an_empty_queue_writes_a_full_batch(tmp_path: Path, nats_server: NatsServer) -> None:
    settings = producer_settings(tmp_path, nats_server)
    queue = FileQueue(settings.queue_dir)
    async with producer_running(settings) as (nc, events):
        generation = await tick(nc, events)
        created = await events.wait_for(lambda evs: len([e for e in evs if isinstance(e, JobCreated)]) >= 20)

    assert (generation.generation, generation.produced, generation.requested) == (1, 20, 20)
    assert (generation.queue_state, generation.incoming, generation.skipped_reason) == ("STARVING", 0, None)
    assert len(generation.favoured) == 3
    assert len(events.of(ProducerGeneration)) == 1

    job_ids = queue.incoming_ids()
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
    settings = producer_settings(tmp_path, nats_server)
    queue = FileQueue(settings.queue_dir)
    queue.ensure()
    waiting = {queue.add_job(f"prompt {index}", JobMeta()) for index in range(30)}
    async with producer_running(settings) as (nc, events):
        generation = await tick(nc, events)

    assert (generation.produced, generation.requested, generation.queue_state) == (0, 0, "HIGH")
    assert generation.incoming == 30
    assert generation.skipped_reason == "queue HIGH with 30 waiting"
    assert set(queue.incoming_ids()) == waiting
    assert events.of(JobCreated) == []


async def test_results_on_disk_are_learned_at_start_and_archived_on_the_next_tick(
    tmp_path: Path, nats_server: NatsServer, caplog: pytest.LogCaptureFixture
) -> None:
    settings = producer_settings(tmp_path, nats_server)
    queue = FileQueue(settings.queue_dir)
    queue.ensure()
    rows: list[tuple[ResultFolder, str, str, int | None, str, str]] = [
        (PROCESSED, "p1", "passed", 98, "harmlos", "casual"),
        (PROCESSED, "p2", "passed", 94, "harmlos", "casual"),
        (ERROR, "e1", "rejected", 40, "bildung", "technisch"),
        (ERROR, "e2", "failed", None, "bildung", "technisch"),
    ]
    for folder, job_id, status, score, category, style in rows:
        assert queue.write_result(folder, job_id, result_record(job_id, status, score, category, style))
    (queue.folder(PROCESSED) / "broken.json").write_text("{not json", encoding="utf-8")

    caplog.set_level(logging.INFO, logger="services.producer.app")
    async with producer_running(settings) as (nc, events):
        assert "learned from 3 results on disk" in caplog.messages
        reply = await nc.request(subjects.PRODUCER_STATS, b"", timeout=5)
        stats = json.loads(reply.data)
        assert stats["observed"] == 3
        assert stats["generation"] == 0
        assert stats["arms"] == {
            "bildung/technisch": {"count": 1, "mean": 40.0, "passed": 0},
            "harmlos/casual": {"count": 2, "mean": 96.0, "passed": 2},
        }
        assert stats["favoured"][0] == "harmlos/casual"
        assert {path.name for path in queue.result_files(PROCESSED)} == {"p1.json", "p2.json", "broken.json"}

        generation = await tick(nc, events)

    assert generation.archived == 2
    assert generation.learned_from == 3
    assert {path.name for path in queue.result_files(ARCHIVE)} == {"p1.json", "p2.json"}
    assert {path.name for path in queue.result_files(PROCESSED)} == {"broken.json"}
    assert {path.name for path in queue.result_files(ERROR)} == {"e1.json", "e2.json"}


async def test_generation_numbers_continue_across_a_restart(tmp_path: Path, nats_server: NatsServer) -> None:
    settings = producer_settings(tmp_path, nats_server)
    queue = FileQueue(settings.queue_dir)
    async with producer_running(settings) as (nc, events):
        first = await tick(nc, events)
    assert (first.generation, first.produced) == (1, 20)

    async with producer_running(settings) as (nc, events):
        reply = await nc.request(subjects.PRODUCER_STATS, b"", timeout=5)
        assert json.loads(reply.data)["generation"] == 1
        second = await tick(nc, events)
    assert (second.generation, second.queue_state, second.produced) == (2, "BALANCED", 10)

    generations_on_disk = Counter(
        parse_job(job_id, queue.job_path(INCOMING, job_id).read_bytes(), 256 * 1024).meta.generation
        for job_id in queue.incoming_ids()
    )
    assert generations_on_disk == {1: 20, 2: 10}
    lines = (settings.logs_dir / EVOLUTION_LOG).read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["generation"] for line in lines] == [1, 2]


async def test_generation_continues_from_an_existing_evolution_log(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    settings = producer_settings(tmp_path, nats_server)
    settings.logs_dir.mkdir(parents=True)
    (settings.logs_dir / EVOLUTION_LOG).write_text('{"generation": 5}\n', encoding="utf-8")
    async with producer_running(settings) as (nc, events):
        generation = await tick(nc, events)
    assert generation.generation == 6


async def test_an_llm_generator_over_budget_still_yields_a_full_batch_and_says_so_on_the_bus(
    tmp_path: Path, nats_server: NatsServer, server: ScriptedServer
) -> None:
    """A real nats-server, the producer service and a loopback chat server: two prompts come from the
    LLM, then the daily budget stops the calls and the templates write the rest of the batch."""
    usage = {"prompt_tokens": 1000, "completion_tokens": 500}
    server.default = Reply(
        json={"choices": [{"message": {"content": "Vom Modell."}, "finish_reason": "stop"}], "usage": usage}
    )
    generator = {
        "kind": "openai",
        "url": f"{server.url}/v1",
        "model": "prompt-writer",
        "prices": {"prompt-writer": {"input_per_million": 2.0, "output_per_million": 8.0}},
        "daily_budget": 0.015,
    }
    settings = load_settings(
        [DEFAULT_CONFIG],
        data_dir=tmp_path / "data",
        nats={"url": nats_server.url},
        producer={"seed": 3, "generator": generator},
    )
    queue = FileQueue(settings.queue_dir)
    watched = (
        HEARTBEATS,
        subjects.PRODUCER_GENERATION,
        subjects.PRODUCER_GENERATOR,
        subjects.PRODUCER_BUDGET,
    )
    async with (
        observer(nats_server.url, *watched) as (nc, events),
        running(settings, {"producer": run_producer}, events),
    ):
        generation = await tick(nc, events)
        calls = await events.wait_for(lambda evs: len([e for e in evs if isinstance(e, GeneratorCall)]) >= 20)

    assert generation.produced == 20
    outcomes = Counter(event.outcome for event in calls if isinstance(event, GeneratorCall))
    assert outcomes == {"used": 2, "over_budget": 18}
    [exhausted] = events.of(GeneratorBudgetExhausted)
    assert exhausted.calls == 2 and exhausted.spent == pytest.approx(0.012)
    prompts = [
        parse_job(job_id, queue.job_path(INCOMING, job_id).read_bytes(), 1 << 16).prompt
        for job_id in queue.incoming_ids()
    ]
    assert sum(prompt == "Vom Modell." for prompt in prompts) == 2
    assert len(server.requests) == 2

"""The producer in tests: its arms, the results of the jobs it made, and the service running over NATS."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, cast

from nats.aio.client import Client

from services.producer.app import run as run_producer
from shared.config import DEFAULT_CONFIG, Settings, load_settings
from shared.learning import Arm
from shared.messaging import Event, ProducerGeneration, ProducerStatsReply, subjects
from shared.queue import INCOMING, PROCESSED, FileQueue, Status, parse_job
from tests.support.harness import HEARTBEATS, EventLog, observer, running, scored
from tests.support.natsserver import NatsServer
from tests.support.records import result_record as valid_result

BEST: Arm = ("technologie", "kreativ")
POOR: list[Arm] = [("harmlos", "casual"), ("bildung", "technisch")]
UNTRIED: Arm = ("kritisch", "akademisch")
ARMS: list[Arm] = [BEST, *POOR, UNTRIED]


def result_record(
    job_id: str, status: str, score: int | None, category: str, style: str, sequence: int = 0
) -> dict[str, Any]:
    """A valid result (as a consumer writes it) of a job the producer made."""
    return valid_result(
        job_id,
        cast(Status, status),
        score,
        wrapper="sigma",
        backend="offline",
        model="offline-responder",
        scorer="syntx-2",
        meta={
            "category": category,
            "style": style,
            "topic": "Katzen",
            "language": "de",
            "sequence": sequence,
        },
        prompt="Erkläre: Katzen",
    )


def rounded(value: Any) -> Any:
    """``value`` with every float in it rounded to 6 places, for comparing learner states."""
    if isinstance(value, float):
        return round(value, 6)
    if isinstance(value, list):
        return [rounded(item) for item in value]
    if isinstance(value, dict):
        return {key: rounded(item) for key, item in value.items()}
    return value


def producer_settings(tmp_path: Path, nats_server: NatsServer, seed: int) -> Settings:
    """The shipped config on ``nats_server``, the producer's choices drawn from ``seed``."""
    return load_settings(
        [DEFAULT_CONFIG], data_dir=tmp_path / "data", nats={"url": nats_server.url}, producer={"seed": seed}
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
    """Tick the producer; return its ``count``-th generation once announced."""
    await nc.publish(subjects.tick("producer"), b"")
    found: list[Event] = await events.wait_for(generations(count))
    latest: ProducerGeneration = [event for event in found if isinstance(event, ProducerGeneration)][-1]
    return latest


async def score_jobs(nc: Client, queue: FileQueue, scores: list[int]) -> None:
    """The first waiting jobs scored as a consumer would, one per score: a passed result in
    ``processed/``, the job gone from ``incoming/``, its event published."""
    for score, job_id in zip(scores, sorted(queue.job_ids(INCOMING)), strict=False):
        meta = parse_job(job_id, queue.job_path(INCOMING, job_id).read_bytes(), 256 * 1024).meta
        assert meta.category and meta.style and meta.sequence is not None
        record = result_record(job_id, "passed", score, meta.category, meta.style, meta.sequence)
        assert queue.write_result(PROCESSED, job_id, record)
        queue.job_path(INCOMING, job_id).unlink()
        event = scored(job_id, score=score, threshold=50)
        await nc.publish(subjects.JOB_SCORED, event.model_dump_json().encode())
    await nc.flush()


async def stats(nc: Client, wait_s: float = 5) -> ProducerStatsReply:
    """The producer's answer on ``syntx.producer.stats``, read as the model it sends."""
    reply = await nc.request(subjects.PRODUCER_STATS, b"", timeout=wait_s)
    return ProducerStatsReply.model_validate_json(reply.data)


async def stats_once_learned(nc: Client, count: int) -> ProducerStatsReply:
    """Stats once the producer holds ``count`` scored jobs (their events may still be on their way)."""
    for _ in range(200):
        current = await stats(nc, wait_s=10)
        if current.observed >= count:
            return current
        await nc.flush()
    raise AssertionError(f"producer learned {current.observed} of {count}")


def arm_figures(reply: ProducerStatsReply) -> dict[str, dict[str, float]]:
    """Per arm: the weight of the results behind its estimate, its mean and sd, to two places."""
    return {
        row.arm: {"weight": round(row.results, 2), "mean": round(row.mean, 2), "sd": round(row.sd, 2)}
        for row in sorted(reply.estimates.arms, key=lambda row: row.arm)
    }


def favoured(reply: ProducerStatsReply) -> list[str]:
    """The favoured arms, best estimate first."""
    return [row.arm for row in reply.estimates.arms if row.favoured]

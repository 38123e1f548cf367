"""The producer learns over a real nats-server from real result files: a planted best arm pulls its
output, replayed events change nothing, a deleted checkpoint is rebuilt to the same state from the
result files, a poisoned result is refused."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path
from typing import Any

from nats.aio.client import Client

from shared.config import Settings
from shared.learning import Arm
from shared.messaging import JobScored, encode, subjects
from shared.queue import ERROR, INCOMING, PROCESSED, FileQueue, parse_job
from tests.support.harness import scored as scored_event
from tests.support.natsserver import NatsServer
from tests.support.producers import (
    arm_figures,
    favoured,
    producer_running,
    producer_settings,
    result_record,
    rounded,
    stats,
    stats_once_learned,
    tick,
)

PLANTED: Arm = ("technologie", "akademisch")
PER_ARM = 8
POISON = "poisoned-job"


def planted_results(queue: FileQueue, settings: Settings) -> list[JobScored]:
    """PER_ARM scored jobs of every arm on disk; the planted arm scores about 97, the others about 70."""
    rng = random.Random(1)
    arms = [(category, style) for category in settings.topics for style in settings.styles]
    events = []
    for sequence, arm in enumerate(arm for arm in arms for _ in range(PER_ARM)):
        job_id = f"20261130T0000{sequence:08d}Z-planted"
        score = min(100, round(rng.gauss(97 if arm == PLANTED else 70, 6)))
        status = "passed" if score >= 90 else "rejected"
        queue.write_result(
            PROCESSED if status == "passed" else ERROR,
            job_id,
            result_record(job_id, status, score, arm[0], arm[1], sequence),
        )
        events.append(scored_event(job_id, score=score, arm=arm, language="de"))
    return events


async def publish(nc: Client, events: list[JobScored]) -> None:
    for event in events:
        await nc.publish(subjects.JOB_SCORED, encode(event))
    await nc.flush()


def produced_arms(queue: FileQueue) -> Counter[Arm]:
    arms: Counter[Arm] = Counter()
    for job_id in sorted(queue.job_ids(INCOMING)):
        meta = parse_job(job_id, queue.job_path(INCOMING, job_id).read_bytes(), 1 << 18).meta
        assert meta.category and meta.style and meta.sequence is not None
        arms[(meta.category, meta.style)] += 1
    return arms


def learner_state(settings: Settings) -> dict[str, Any]:
    document = json.loads((settings.data_dir / settings.producer.learning.state_file).read_text())
    state: dict[str, Any] = document["learner"]
    production = ("owed", "checked_change")  # these follow production, not results
    return {key: rounded(value) for key, value in state.items() if key not in production}


async def test_the_producer_learns_once_from_trusted_results_and_rebuilds_the_same_state(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    settings = producer_settings(tmp_path, nats_server, seed=5)
    queue = FileQueue(settings.queue_dir)
    queue.ensure()
    state_file = settings.data_dir / settings.producer.learning.state_file
    async with producer_running(settings) as (nc, events):
        assert json.loads(state_file.read_text())["learner"]["observed"] == 0  # checkpointed at start
        scored = planted_results(queue, settings)
        await publish(nc, scored)
        learned = await stats_once_learned(nc, len(scored))
        assert learned.observed == len(scored)
        assert favoured(learned)[0] == "/".join(PLANTED)

        generation = await tick(nc, events)
        assert generation.produced == 20
        arms = produced_arms(queue)
        assert arms[PLANTED] >= 14, arms  # uniform choice would give 20/28 of a job

        before = await stats(nc, wait_s=10)
        await publish(nc, scored)  # a replay
        after = await stats(nc, wait_s=10)
        assert after == before

        poisoned = result_record(POISON, "passed", 99, *PLANTED, sequence=len(scored))
        queue.write_result(PROCESSED, POISON, {**poisoned, "score": {**poisoned["score"], "total": 150}})
        poison_event = scored_event(POISON, score=99, arm=PLANTED, language="de")
        await publish(nc, [poison_event])  # the event looks fine; the file is not
        poisoned_reply = await stats(nc, wait_s=10)
        assert (poisoned_reply.observed, poisoned_reply.estimates) == (before.observed, before.estimates)
        await tick(nc, events, count=2)
        checkpointed = learner_state(settings)
        assert checkpointed["observed"] == len(scored)
        assert checkpointed["refused"] == {"score_out_of_range": 1}

    assert len(list(queue.result_files(PROCESSED))) == 1  # the learned passed results were archived
    state_file.unlink()
    async with producer_running(settings) as (nc, events):
        assert learner_state(settings) == checkpointed  # rebuilt from processed/, error/ and archive/
        assert arm_figures(await stats(nc, wait_s=10)) == arm_figures(before)

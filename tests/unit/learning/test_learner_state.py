"""The learner's state on disk: cold rebuild from (dated) result folders, catch-up from a checkpoint,
an unusable checkpoint; and the offline responder's simulated taste."""

from __future__ import annotations

import asyncio
import json
import random
from pathlib import Path

import pytest

from shared.config import BackendSettings, LearningSettings, OfflineTaste, TasteDrift
from shared.learning import Learner
from shared.learning.rebuild import catch_up, cold_rebuild, newest_results, oldest_in_flight
from shared.learning.state import (
    Checkpoint,
    CheckpointError,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
)
from shared.llm import PromptContext
from shared.llm.offline import LABEL, OfflineBackend
from shared.llm.taste import TASTE_LABEL, Taste
from shared.queue import ARCHIVE, PROCESSED, FileQueue, JobMeta
from tests.support.producers import ARMS, result_record


def job_id(number: int) -> str:
    return f"20261130T{number:012d}Z-000000"


def write_results(queue: FileQueue, numbers: range, *, dated: bool = False) -> None:
    for number in numbers:
        arm = ARMS[number % len(ARMS)]
        record = result_record(job_id(number), "passed", 60 + number % 40, arm[0], arm[1], number)
        folder = queue.folder(ARCHIVE) / f"2026-11-{1 + number % 3:02d}" if dated else queue.folder(PROCESSED)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{job_id(number)}.json").write_text(json.dumps(record), encoding="utf-8")


def learner() -> Learner:
    return Learner(LearningSettings(), list(ARMS), random.Random(1))


def test_a_cold_rebuild_reads_only_the_newest_results_across_dated_folders(queue: FileQueue) -> None:
    write_results(queue, range(60), dated=True)
    write_results(queue, range(60, 70))
    assert [path.stem for path in newest_results(queue, 25)] == [job_id(n) for n in range(45, 70)]
    everything = learner()
    report = cold_rebuild(everything, queue, 1000, 1 << 20)
    assert (report.read, len(report.learned), report.max_sequence) == (70, 70, 69)
    assert everything.observed == 70


def test_catch_up_reads_the_results_from_scan_from_on(queue: FileQueue) -> None:
    write_results(queue, range(10))
    model = learner()
    cold_rebuild(model, queue, 1000, 1 << 20)
    write_results(queue, range(10, 15))
    report = catch_up(model, queue, job_id(8), 1 << 20)
    assert report.learned == [job_id(n) for n in range(10, 15)]  # 8 and 9 were known already
    assert catch_up(model, queue, job_id(0), 1 << 20).learned == []


def test_the_checkpoint_round_trips_and_an_unusable_one_is_ignored(queue: FileQueue, tmp_path: Path) -> None:
    path = tmp_path / "state" / "learner.json"
    assert load_checkpoint(path) is None
    model = learner()
    write_results(queue, range(5))
    cold_rebuild(model, queue, 1000, 1 << 20)
    checkpoint = Checkpoint(
        next_sequence=5, scan_from=job_id(3), learner=model.to_state(), estimates=model.estimates()
    )
    save_checkpoint(queue, path, checkpoint)
    assert load_checkpoint(path) == checkpoint
    assert json.loads(path.read_text(encoding="utf-8"))["version"] == 2
    assert list(queue.folder(".tmp").iterdir()) == []  # written through the queue's staging, renamed
    older = {"version": 1, "next_sequence": 5, "scan_from": None, "learner": {"version": 2}}
    for broken in ("{not json", '{"version": 99}', json.dumps(older), "[]", "\xff\xfe"):
        path.write_text(broken, encoding="utf-8")
        assert load_checkpoint(path) is None
    path.write_text(json.dumps(older), encoding="utf-8")
    with pytest.raises(CheckpointError, match="version"):
        read_checkpoint(path)


def test_the_oldest_unfinished_job(queue: FileQueue) -> None:
    assert oldest_in_flight(queue) is None
    queue.add_job("later", JobMeta(), job_id(9))
    queue.add_job("sooner", JobMeta(), job_id(4))
    assert oldest_in_flight(queue) == job_id(4)


# -- the simulated taste ----------------------------------------------------------------------------

TASTE = OfflineTaste(
    seed=3,
    base=0.5,
    category={"technologie": 0.4, "kritisch": -0.6},
    style={"akademisch": 0.2},
    language={"en": -0.1},
    drift=TasteDrift(from_generation=10, category={"technologie": -0.8}),
)


def test_the_taste_adds_the_effects_and_drifts_from_its_generation() -> None:
    taste = Taste(TASTE)
    assert taste.chance(PromptContext("technologie", "akademisch", "de", 1)) == 1.0  # clipped
    assert taste.chance(PromptContext("technologie", "casual", "en", 1)) == pytest.approx(0.8)
    assert taste.chance(PromptContext("kritisch", "casual", "de", 1)) == 0.0
    assert taste.chance(PromptContext("technologie", "casual", "de", 10)) == pytest.approx(0.1)
    assert taste.chance(PromptContext()) == 0.5


def test_the_taste_is_seeded_and_follows_the_chances() -> None:
    context = PromptContext("technologie", "casual", "en", 1)
    draws = [Taste(TASTE).draw(context) for _ in range(1)] + [Taste(TASTE).draw(context)]
    assert draws[0] == draws[1]
    taste = Taste(TASTE)
    kinds = [taste.draw(context) for _ in range(2000)]
    assert 0.76 < kinds.count("complete") / len(kinds) < 0.84
    assert {"substantive", "thin", "incomplete"} <= set(kinds)


def test_the_offline_responder_answers_by_the_taste_and_says_so() -> None:
    headers = ["### Eins:", "### Zwei:", "### Drei:"]

    async def answer(settings: BackendSettings, context: PromptContext) -> str:
        return (
            await OfflineBackend(settings).complete(
                "Erkläre Katzen", expected_headers=headers, context=context
            )
        ).text

    tasteful = BackendSettings(taste=TASTE)
    good = asyncio.run(answer(tasteful, PromptContext("technologie", "akademisch", "de", 1)))
    poor = asyncio.run(answer(tasteful, PromptContext("kritisch", "casual", "de", 1)))
    assert good.startswith(TASTE_LABEL) and poor.startswith(TASTE_LABEL)
    assert all(header in good for header in headers)
    assert len(poor) < len(good)
    plain = asyncio.run(answer(BackendSettings(), PromptContext("kritisch", "casual", "de", 1)))
    assert plain.startswith(LABEL)

"""How the learner forgets: a world that does not change is kept in full, a change is found where it
happened (compared within each language and context), the changed arm's past is dropped and the other
arms' past counts as a few results, every arm gets a look after a change, and the order results arrive
in never matters."""

from __future__ import annotations

import math
import random

import pytest

from shared.config import LearningSettings
from shared.learning import Arm, Learner, Observation, arm_name
from shared.learning.learner import RESTART_RESULTS
from shared.learning.state import LearnerState
from tests.support.producers import ARMS, BEST, POOR, rounded

STRICT, LENIENT = "syntex_system|offline|offline-responder|syntx-2", "sigma|offline|offline-responder|syntx-2"


def scored(number: int, arm: Arm, score: float, context: str = LENIENT, sd: float = 4.0) -> Observation:
    """A result with seeded noise around ``score``."""
    noise = random.Random(number).gauss(0.0, sd)
    value = max(0, min(100, round(score + noise)))
    return Observation(f"job-{number}", number, arm[0], arm[1], "de", context, value)


def learner(settings: LearningSettings | None = None, seed: int = 1) -> Learner:
    return Learner(settings or LearningSettings(), list(ARMS), random.Random(seed))


def weight(model: Learner, arm: Arm) -> float:
    return sum(stats.weight for key, stats in model.memory.active().items() if key[:2] == arm)


def estimate(model: Learner, arm: Arm) -> float:
    return next(row.mean for row in model.estimates().arms if row.arm == arm_name(arm))


def test_a_world_that_does_not_change_counts_in_full_within_the_window() -> None:
    model = learner(LearningSettings(memory_jobs=2000))
    for number in range(2000):
        model.observe(scored(number, BEST, 90))
    assert model.memory.change() is None
    assert weight(model, BEST) == pytest.approx(2000)
    for number in range(2000, 3000):
        model.observe(scored(number, BEST, 90))
    # the window holds jobs 1000..2999 in full; block k (of 100 jobs) before it weighs 0.5 ** ((10 - k) / 20)
    older = sum(100 * 0.5 ** ((10 - block) / 20) for block in range(10))
    assert weight(model, BEST) == pytest.approx(2000 + older)


def test_a_change_is_placed_at_its_block_and_drops_the_changed_arms_past() -> None:
    model = learner()
    for number in range(1000):
        arm = [BEST, POOR[0]][number % 2]
        model.observe(scored(number, arm, 92 if arm == BEST else 70))
    assert model.memory.change() is None and estimate(model, BEST) > 85
    for number in range(1000, 1040):
        arm = [BEST, POOR[0]][number % 2]
        model.observe(scored(number, arm, 60 if arm == BEST else 70))
    change = model.memory.change()
    assert change is not None and (change.block, change.arms) == (10, (BEST,))
    assert change.size == pytest.approx(32, abs=3)
    assert weight(model, BEST) == pytest.approx(20)  # the results since the change, nothing from before
    assert estimate(model, BEST) < 65
    # the unchanged arm's 500 older results now count as a few: as many as it takes to see such a move
    assert 20 < weight(model, POOR[0]) < 21
    estimates = model.estimates()
    assert (estimates.memory, estimates.changed) == ("short", [arm_name(BEST)])


def test_a_stricter_scorer_taking_over_an_arm_is_not_a_change() -> None:
    model = learner()
    for number in range(600):
        arm = [BEST, POOR[0]][number % 2]
        before = number < 300
        context = LENIENT if before else STRICT
        model.observe(scored(number, arm, (92 if arm == BEST else 70) - (0 if before else 12), context))
    assert model.memory.change() is None  # the same arm under another scorer: no setting saw both sides
    for number in range(600, 700):
        arm = [BEST, POOR[0]][number % 2]
        model.observe(scored(number, arm, 92 - 12 - 25 if arm == BEST else 70 - 12, STRICT))
    change = model.memory.change()
    assert change is not None and change.arms == (BEST,)  # within the strict scorer's results it did


def heavy_tailed_start(model: Learner) -> None:
    """400 jobs shared by two arms, scores within ±5 of 80 and 70."""
    for number in range(400):
        arm = [BEST, POOR[0]][number % 2]
        model.observe(scored(number, arm, 80 if arm == BEST else 70))


def test_two_far_off_scores_among_ten_are_no_change() -> None:
    """Heavy tails: of BEST's next ten results eight are as before and two score 0. Their mean is 16 points
    lower, but so spread that it says little: the ten results' own spread sets their standard error."""
    model = learner()
    heavy_tailed_start(model)
    for number in range(400, 410):
        model.observe(scored(number, BEST, 0 if number % 5 == 0 else 80, sd=0.0))
    assert model.memory.change() is None


def test_ten_results_that_all_moved_are_a_change() -> None:
    """The same 16 points lower, but every one of the ten results moved: that is a change."""
    model = learner()
    heavy_tailed_start(model)
    for number in range(400, 410):
        model.observe(scored(number, BEST, 64))
    change = model.memory.change()
    assert change is not None and (change.block, change.arms) == (4, (BEST,))


def test_the_order_results_arrive_in_does_not_matter_across_a_change() -> None:
    jobs = [
        scored(number, ARMS[number % len(ARMS)], 95 if number < 700 and number % len(ARMS) == 0 else 70)
        for number in range(1200)
    ]
    shuffled = list(jobs)
    random.Random(3).shuffle(shuffled)
    states = []
    for order in (jobs, list(reversed(jobs)), shuffled):
        model = learner()
        for job in order:
            model.observe(job)
        change = model.memory.change()
        assert change is not None and change.arms == (BEST,)
        states.append((rounded(model.to_state().model_dump()), change))
    assert states[0] == states[1] == states[2]


def test_after_a_change_every_arm_without_a_result_since_gets_a_job_once() -> None:
    model = learner(seed=5)
    for number in range(800):
        arm = ARMS[number % len(ARMS)]
        model.observe(scored(number, arm, 95 if arm == BEST else 70))
    for number in range(800, 830):
        model.observe(scored(number, BEST, 50))
    assert model.memory.change() is not None
    model.plan(0)  # nothing to produce: what is owed stays owed
    owed = set(model.owed)
    assert owed == set(ARMS) - {BEST}  # BEST has results since the change
    assert set(model.plan(20)[: len(owed)]) == owed  # owed jobs come first
    model.plan(0)
    assert model.owed == {}  # once per change


def test_after_a_change_arms_with_few_results_since_are_drawn_as_plain_thompson_sampling() -> None:
    model = learner(LearningSettings(exploration=0.4), seed=6)
    for number in range(800):
        arm = ARMS[number % len(ARMS)]
        model.observe(scored(number, arm, 95 if arm == BEST else 70))
    assert {(c.spread, c.cut < math.inf) for c in model.candidates()} == {(0.4, True)}
    for number in range(800, 830):
        model.observe(scored(number, BEST, 50))
    for number in range(830, 830 + RESTART_RESULTS):
        model.observe(scored(number, POOR[0], 70))
    candidates = dict(zip(ARMS, model.candidates(), strict=True))
    assert all(candidates[arm].spread == 0.4 and candidates[arm].cut < math.inf for arm in (BEST, POOR[0]))
    assert all(
        (candidate.spread, candidate.cut) == (1.0, math.inf)
        for arm, candidate in candidates.items()
        if arm not in (BEST, POOR[0])
    )


def test_the_state_with_blocks_and_older_results_round_trips() -> None:
    settings = LearningSettings(memory_jobs=300)
    model = learner(settings)
    for number in range(900):
        model.observe(scored(number, ARMS[number % len(ARMS)], 80))
    state = LearnerState.model_validate_json(model.to_state().model_dump_json())
    assert len(state.blocks) == 3 and state.older
    copy = learner(settings)
    copy.restore(state)
    assert copy.to_state() == model.to_state()
    assert copy.estimates() == model.estimates()

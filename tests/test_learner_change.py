"""How the learner forgets: a world that does not change is kept in full, a change is found where it
happened (compared within each language and context), the changed arm's past is dropped, every arm gets
a look after a change, and the order results arrive in never matters."""

from __future__ import annotations

import json
import random

import pytest

from services.producer.learning import Learner, Observation
from services.producer.model import Arm
from shared.config import LearningSettings
from tests.producers import ARMS, BEST, POOR, rounded

STRICT, LENIENT = "syntex_system|offline|offline-responder|syntx-2", "sigma|offline|offline-responder|syntx-2"


def scored(number: int, arm: Arm, score: float, context: str = LENIENT, sd: float = 4.0) -> Observation:
    """A result with seeded noise around ``score``."""
    noise = random.Random(number).gauss(0.0, sd)
    value = max(0, min(100, round(score + noise)))
    return Observation(f"job-{number}", number, arm[0], arm[1], "de", context, value)


def learner(settings: LearningSettings | None = None, seed: int = 1) -> Learner:
    return Learner(settings or LearningSettings(), list(ARMS), random.Random(seed))


def test_a_world_that_does_not_change_counts_in_full_within_the_window() -> None:
    model = learner(LearningSettings(window_jobs=2000, block_jobs=100, half_life_jobs=2000))
    for number in range(2000):
        model.observe(scored(number, BEST, 90))
    assert model.model.change() is None
    assert model.model.arm_weights()[BEST] == pytest.approx(2000)
    for number in range(2000, 3000):
        model.observe(scored(number, BEST, 90))
    # the window holds jobs 1000..2999 in full; block k before it weighs 0.5 ** ((10 - k) / 20)
    older = sum(100 * 0.5 ** ((10 - block) / 20) for block in range(10))
    assert model.model.arm_weights()[BEST] == pytest.approx(2000 + older)


def test_a_change_is_placed_at_its_block_and_drops_the_changed_arms_past() -> None:
    model = learner()
    for number in range(1000):
        arm = [BEST, POOR[0]][number % 2]
        model.observe(scored(number, arm, 92 if arm == BEST else 70))
    assert model.model.change() is None and model.estimates()[BEST].mean > 85
    for number in range(1000, 1040):
        arm = [BEST, POOR[0]][number % 2]
        model.observe(scored(number, arm, 60 if arm == BEST else 70))
    change = model.model.change()
    assert change is not None and (change.block, change.arms) == (10, (BEST,))
    assert model.estimates()[BEST].mean < 65  # 20 results since the change, nothing from before


def test_a_stricter_scorer_taking_over_an_arm_is_not_a_change() -> None:
    model = learner()
    for number in range(600):
        arm = [BEST, POOR[0]][number % 2]
        before = number < 300
        context = LENIENT if before else STRICT
        model.observe(scored(number, arm, (92 if arm == BEST else 70) - (0 if before else 12), context))
    assert model.model.change() is None  # the same arm under another scorer: no setting saw both sides
    for number in range(600, 700):
        arm = [BEST, POOR[0]][number % 2]
        model.observe(scored(number, arm, 92 - 12 - 25 if arm == BEST else 70 - 12, STRICT))
    change = model.model.change()
    assert change is not None and change.arms == (BEST,)  # within the strict scorer's results it did


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
        change = model.model.change()
        assert change is not None and change.arms == (BEST,)
        states.append((rounded(model.to_state()), change))
    assert states[0] == states[1] == states[2]


def test_after_a_change_every_arm_without_a_result_since_gets_a_job_once() -> None:
    model = learner(seed=5)
    for number in range(800):
        arm = ARMS[number % len(ARMS)]
        model.observe(scored(number, arm, 95 if arm == BEST else 70))
    for number in range(800, 830):
        model.observe(scored(number, BEST, 50))
    assert model.model.drifting() == [BEST]
    model.plan(0)  # nothing to produce: what is owed stays owed
    owed = {arm for arm, credit in model.credits.items() if credit >= 1}
    assert owed == set(ARMS) - {BEST}  # BEST has results since the change
    assert set(model.plan(20)[: len(owed)]) == owed  # owed jobs come first
    model.plan(0)
    assert all(credit < 1 for credit in model.credits.values()), model.credits  # once per change


def test_an_arm_far_from_its_category_and_style_is_believed_more_with_a_student_t_residual() -> None:
    """16 arms follow category + style (noise sd 12); one scores 25 above what they predict, seen 5
    times. A Student-t residual lets its estimate follow its results further than a normal one, which
    shrinks it back."""
    categories = {"a": 0.0, "b": 6.0, "c": -4.0, "d": 10.0}
    styles = {"w": 0.0, "x": -5.0, "y": 8.0, "z": 3.0}
    grid: list[Arm] = [(c, s) for c in categories for s in styles]
    outlier: Arm = ("c", "x")
    predicted = 60.0 + categories["c"] + styles["x"]
    above = {}
    for df in (3.0, 1e6):
        model = Learner(LearningSettings(residual_df=df), grid, random.Random(1))
        number = 0
        for arm in grid:
            mean = 60.0 + categories[arm[0]] + styles[arm[1]]
            if arm == outlier:
                for noise in (-6, 6, 0, -3, 3):  # exactly its mean on average
                    number += 1
                    model.observe(
                        Observation(f"job-{number}", number, *arm, "de", LENIENT, round(mean + 25 + noise))
                    )
                continue
            for _ in range(30):
                number += 1
                model.observe(scored(number, arm, mean, sd=12.0))
        above[df] = model.estimates()[outlier].mean - predicted
    assert above[3.0] > above[1e6] + 2, above


def test_the_state_with_blocks_and_older_results_round_trips() -> None:
    model = learner(LearningSettings(window_jobs=300, block_jobs=50))
    for number in range(900):
        model.observe(scored(number, ARMS[number % len(ARMS)], 80))
    state = json.loads(json.dumps(model.to_state()))
    assert len(state["blocks"]) == 6 and state["older"]
    copy = learner(LearningSettings(window_jobs=300, block_jobs=50))
    copy.load_state(state)
    assert copy.to_state() == model.to_state()
    assert copy.estimates() == model.estimates()

"""Simulated worlds and the choice rules the learner is compared with (``python -m benchmarks.learning``).

A world has 7 categories x 4 styles = 28 arms; a job of an arm scores Normal(arm mean, noise sd), rounded
and clipped to 0..100, with the noise sd drawn from 8..15 per seed. Every world plants a best arm at least
``BEST_LEAD`` points above the runner-up, so "the best arm" is well defined.

- ``independent``: arm means drawn independently.
- ``factorised``: arm mean = category effect + style effect + a small arm residual.
- ``switch``: independent; after half the jobs the best arm drops and another arm takes its place.
"""

from __future__ import annotations

import math
import random
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from services.producer.learning import Learner, Observation
from services.producer.model import Arm
from shared.config import LearningSettings

CATEGORIES = [f"category{index}" for index in range(7)]
STYLES = [f"style{index}" for index in range(4)]
ARMS: list[Arm] = [(category, style) for category in CATEGORIES for style in STYLES]
LEVEL = 70.0
ARM_SD = 8.0  # independent worlds: spread of arm means
CATEGORY_SD, STYLE_SD, RESIDUAL_SD = 7.0, 5.0, 1.5  # factorised worlds
BEST_LEAD = 5.0
SWITCH_DROP = 15.0
NOISE_RANGE = (8.0, 15.0)
VARIANTS = ("independent", "factorised", "switch")
CONTEXT = "simulated|simulated|simulated|syntx-2"


@dataclass
class World:
    means: dict[Arm, float]
    noise_sd: float
    rng: random.Random
    switch_at: int | None = None
    after_switch: dict[Arm, float] = field(default_factory=dict)

    def mean(self, arm: Arm, job: int) -> float:
        if self.switch_at is not None and job >= self.switch_at:
            return self.after_switch[arm]
        return self.means[arm]

    def best(self, job: int) -> Arm:
        means = self.after_switch if self.switch_at is not None and job >= self.switch_at else self.means
        return max(means, key=means.__getitem__)

    def score(self, arm: Arm, job: int) -> int:
        return max(0, min(100, round(self.rng.gauss(self.mean(arm, job), self.noise_sd))))


def make_world(variant: str, seed: int, jobs: int) -> World:
    rng = random.Random(f"world-{variant}-{seed}")
    if variant == "factorised":
        category = {name: rng.gauss(0, CATEGORY_SD) for name in CATEGORIES}
        style = {name: rng.gauss(0, STYLE_SD) for name in STYLES}
        means = {(c, s): LEVEL + category[c] + style[s] + rng.gauss(0, RESIDUAL_SD) for c, s in ARMS}
    else:
        means = {arm: LEVEL + rng.gauss(0, ARM_SD) for arm in ARMS}
    _plant_lead(means)
    world = World(means, rng.uniform(*NOISE_RANGE), random.Random(f"noise-{variant}-{seed}"))
    if variant == "switch":
        old_best = world.best(0)
        newcomer = rng.choice([arm for arm in ARMS if arm != old_best])
        after = dict(means)
        after[newcomer] = means[old_best]
        after[old_best] = means[old_best] - SWITCH_DROP
        _plant_lead(after)
        world.switch_at, world.after_switch = jobs // 2, after
    return world


def _plant_lead(means: dict[Arm, float]) -> None:
    ranked = sorted(means, key=means.__getitem__, reverse=True)
    means[ranked[0]] = max(means[ranked[0]], means[ranked[1]] + BEST_LEAD)


# -- the choice rules -------------------------------------------------------------------------------


class Policy(Protocol):
    name: str

    def plan(self, count: int) -> list[Arm]: ...

    def learn(self, batch: list[tuple[int, Arm, int]]) -> None: ...


class Uniform:
    name = "uniform"

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def plan(self, count: int) -> list[Arm]:
        return [self.rng.choice(ARMS) for _ in range(count)]

    def learn(self, batch: list[tuple[int, Arm, int]]) -> None:
        return None


class OriginalRule:
    """The original producer: styles of the first three jobs scoring >= 90 since its last run (by score,
    highest first), chosen uniformly among those three; categories always uniform."""

    name = "original"

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.styles: list[str] = []

    def plan(self, count: int) -> list[Arm]:
        styles = self.styles or STYLES
        return [(self.rng.choice(CATEGORIES), self.rng.choice(styles)) for _ in range(count)]

    def learn(self, batch: list[tuple[int, Arm, int]]) -> None:
        good = sorted((job for job in batch if job[2] >= 90), key=lambda job: -job[2])
        self.styles = list(dict.fromkeys(arm[1] for _, arm, _ in good))[:3]


class PlainThompson:
    """The previous learner: Gaussian Thompson sampling per arm, prior 75 worth 2 jobs, sd 15,
    no forgetting."""

    name = "thompson"
    PRIOR_MEAN, PRIOR_WEIGHT, SCORE_SD = 75.0, 2.0, 15.0

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.count: Counter[Arm] = Counter()
        self.total: defaultdict[Arm, float] = defaultdict(float)

    def plan(self, count: int) -> list[Arm]:
        return [self._draw() for _ in range(count)]

    def _draw(self) -> Arm:
        def sample(arm: Arm) -> float:
            weight = self.PRIOR_WEIGHT + self.count[arm]
            mean = (self.PRIOR_MEAN * self.PRIOR_WEIGHT + self.total[arm]) / weight
            return self.rng.gauss(mean, self.SCORE_SD / math.sqrt(weight))

        return max(ARMS, key=sample)

    def learn(self, batch: list[tuple[int, Arm, int]]) -> None:
        for _, arm, score in batch:
            self.count[arm] += 1
            self.total[arm] += score


class Ours:
    """The producer's learner, with the configured defaults."""

    name = "ours"

    def __init__(self, rng: random.Random, settings: LearningSettings | None = None) -> None:
        self.learner = Learner(settings or LearningSettings(), list(ARMS), rng)

    def plan(self, count: int) -> list[Arm]:
        return self.learner.plan(count)

    def learn(self, batch: list[tuple[int, Arm, int]]) -> None:
        for job, (category, style), score in batch:
            self.learner.observe(Observation(f"job-{job}", job, category, style, "de", CONTEXT, score))


POLICIES: dict[str, Callable[[random.Random], Policy]] = {
    "uniform": Uniform,
    "original": OriginalRule,
    "thompson": PlainThompson,
    "ours": Ours,
}

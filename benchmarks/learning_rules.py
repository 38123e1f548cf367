"""The choice rules the learning benchmark compares (``python -m benchmarks.learning``).

- ``uniform``: every arm equally likely.
- ``thompson``: plain Gaussian Thompson sampling per arm (prior 75 worth 2 jobs, sd 15, no forgetting) —
  the producer's learner before the factorised model.
- ``previous``: the learner as it was before it moved to shared/learning (a frozen copy in
  benchmarks/previous, with the configuration it shipped with).
- ``ours``: shared/learning with the configuration shipped in config/syntx.yaml.
- ``bernoulli`` (asked for by name, meaningful in the pass/fail worlds only): Thompson sampling on whether
  a score passed, with those worlds' own prior for an arm's chance — the right model of them, which no
  learner of real scores is given; a yardstick for what modelling pass/fail alone can win.

Every rule sees a batch's scores as (job, arm, score) once they arrive.
"""

from __future__ import annotations

import functools
import math
import random
from collections import Counter, defaultdict
from collections.abc import Callable
from typing import Protocol

from benchmarks.learning_world import CONTEXT, Arm
from benchmarks.previous.learning import Learner as PreviousLearner
from benchmarks.previous.learning import Observation as PreviousObservation
from benchmarks.previous.settings import LearningSettings as PreviousSettings
from shared.config import DEFAULT_CONFIG, LearningSettings, load_settings
from shared.learning import Learner, Observation

Scored = tuple[int, Arm, int]  # job number (its sequence), arm, score
LANGUAGE = "de"


class Rule(Protocol):
    def plan(self, count: int) -> list[Arm]: ...

    def learn(self, batch: list[Scored]) -> None: ...


class Uniform:
    def __init__(self, arms: list[Arm], rng: random.Random) -> None:
        self.arms, self.rng = arms, rng

    def plan(self, count: int) -> list[Arm]:
        return [self.rng.choice(self.arms) for _ in range(count)]

    def learn(self, batch: list[Scored]) -> None:
        return None


class PlainThompson:
    PRIOR_MEAN, PRIOR_WEIGHT, SCORE_SD = 75.0, 2.0, 15.0

    def __init__(self, arms: list[Arm], rng: random.Random) -> None:
        self.arms, self.rng = arms, rng
        self.count: Counter[Arm] = Counter()
        self.total: defaultdict[Arm, float] = defaultdict(float)

    def plan(self, count: int) -> list[Arm]:
        return [max(self.arms, key=self._sample) for _ in range(count)]

    def _sample(self, arm: Arm) -> float:
        weight = self.PRIOR_WEIGHT + self.count[arm]
        mean = (self.PRIOR_MEAN * self.PRIOR_WEIGHT + self.total[arm]) / weight
        return self.rng.gauss(mean, self.SCORE_SD / math.sqrt(weight))

    def learn(self, batch: list[Scored]) -> None:
        for _, arm, score in batch:
            self.count[arm] += 1
            self.total[arm] += score


class Previous:
    def __init__(self, arms: list[Arm], rng: random.Random) -> None:
        self.learner = PreviousLearner(PreviousSettings(), list(arms), rng)

    def plan(self, count: int) -> list[Arm]:
        return self.learner.plan(count)

    def learn(self, batch: list[Scored]) -> None:
        for job, (category, style), score in batch:
            self.learner.observe(
                PreviousObservation(f"job-{job}", job, category, style, LANGUAGE, CONTEXT, score)
            )


class Ours:
    def __init__(self, arms: list[Arm], rng: random.Random, settings: LearningSettings | None = None) -> None:
        self.learner = Learner(settings or shipped_settings(), list(arms), rng)

    def plan(self, count: int) -> list[Arm]:
        return self.learner.plan(count)

    def learn(self, batch: list[Scored]) -> None:
        for job, (category, style), score in batch:
            self.learner.observe(Observation(f"job-{job}", job, category, style, LANGUAGE, CONTEXT, score))

    def changed(self) -> bool:
        return self.learner.memory.change() is not None


class PassFailOracle:
    PASS_AT = 50  # the pass/fail worlds' scores cluster near 85 and 20: a pass is unambiguous
    PRIOR = 9.0  # Beta(9, 9): mean 0.5, sd 0.115, the worlds' U(0.3, 0.7) chances
    SPREAD = 1.0  # draws at this many posterior sds (1: plain Thompson sampling)

    def __init__(self, arms: list[Arm], rng: random.Random) -> None:
        self.arms, self.rng = arms, rng
        self.passed: Counter[Arm] = Counter()
        self.failed: Counter[Arm] = Counter()

    def plan(self, count: int) -> list[Arm]:
        return [max(self.arms, key=self._sample) for _ in range(count)]

    def _sample(self, arm: Arm) -> float:
        passed, failed = self.PRIOR + self.passed[arm], self.PRIOR + self.failed[arm]
        total = passed + failed
        sd = math.sqrt(passed * failed / (total * total * (total + 1)))
        return passed / total + self.SPREAD * sd * self.rng.gauss(0.0, 1.0)

    def learn(self, batch: list[Scored]) -> None:
        for _, arm, score in batch:
            (self.passed if score >= self.PASS_AT else self.failed)[arm] += 1


@functools.cache
def shipped_settings() -> LearningSettings:
    """The learner's settings as config/syntx.yaml ships them."""
    return load_settings([DEFAULT_CONFIG]).producer.learning


RULES: dict[str, Callable[[list[Arm], random.Random], Rule]] = {
    "uniform": Uniform,
    "thompson": PlainThompson,
    "previous": Previous,
    "ours": Ours,
    "bernoulli": PassFailOracle,
}
DEFAULT_RULES = ("uniform", "thompson", "previous", "ours")

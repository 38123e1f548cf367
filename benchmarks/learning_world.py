"""Simulated worlds for the learning benchmark (``python -m benchmarks.learning``).

An arm is a (category, style) pair: 7 x 4 = 28 arms (15 x 4 = 60 in ``arms60``). A job of an arm gets a
score, an integer 0..100; an arm's *mean* is the expected score, clipping included, so regret is measured
in the points a job really loses. Every world plants a best arm, at least ``BEST_LEAD`` points above the
runner-up.

- ``independent``: arm scores Normal(mean, noise), means drawn independently (sd 8 around 70), noise sd
  8..15 per seed.
- ``factorised``: arm mean = category effect + style effect + a small arm residual.
- ``switch``: independent; at job 1,000 the best arm drops 15 points and another arm takes its place.
- ``passfail``: a job passes with its arm's probability (score ~ Normal(85, 5)) or fails (~ Normal(20,
  10)); probabilities uniform in 0.3..0.7, the best arm 0.8 — scores in two clusters, as real ones are.
- ``passfail-switch``: pass/fail; at job 1,000 the best arm drops 15 points (its chance falls by 15/65)
  and another arm gets 0.8.
- ``heavy``: independent means, Student-t noise with 2 degrees of freedom (scale 5..10): most scores near
  the mean, some far off (clipped at 0 and 100).
- ``piled``: arms near the top (sd 8 around 75 before clipping, the best one higher): many of the
  best arms' scores are exactly 100.
- ``drift``: independent; from job 500 the best arm loses 0.02 points a job (30 points by the end), so
  the runner-up (planted ``BEST_LEAD`` above the rest) becomes the best.
- ``arms60``: independent with 60 arms.
- ``delayed``: independent; a batch's scores arrive two batches late.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field

Arm = tuple[str, str]  # (category, style)

LEVEL = 70.0
ARM_SD = 8.0  # spread of arm means in the independent worlds
CATEGORY_SD, STYLE_SD, RESIDUAL_SD = 7.0, 5.0, 1.5  # factorised world
BEST_LEAD = 5.0
SWITCH_DROP = 15.0
NOISE_RANGE = (8.0, 15.0)
PASS_SCORE, FAIL_SCORE = (85.0, 5.0), (20.0, 10.0)  # (mean, sd) of a passing and a failing score
PASS_RANGE, BEST_PASS = (0.3, 0.7), 0.8
HEAVY_SCALE = (5.0, 10.0)  # Student-t (2 degrees of freedom) scale
PILED_LEVEL = 75.0
DRIFT_FROM, DRIFT_PER_JOB = 500, 0.02
DELAY_BATCHES = 2
JOBS = 2000
SWITCH_AT = JOBS // 2
SCORE_MAX = 100.0
MAX_RAISE = 40.0  # a best arm raised this far above the runner-up scores 100 nearly always
VARIANTS = (
    "independent",
    "factorised",
    "switch",
    "passfail",
    "passfail-switch",
    "heavy",
    "piled",
    "drift",
    "arms60",
    "delayed",
)
CONTEXT = "simulated|simulated|simulated|syntx-2"


def arms_of(categories: int, styles: int = 4) -> list[Arm]:
    return [(f"category{c}", f"style{s}") for c in range(categories) for s in range(styles)]


Noise = Callable[[float, random.Random], float]  # location -> one raw score (before rounding, clipping)
MeanOf = Callable[[float], float]  # location -> the expected clipped score


@dataclass
class World:
    """Arms with a location each (the score before noise and clipping); ``mean`` is the expected score."""

    name: str
    arms: list[Arm]
    location: dict[Arm, float]
    draw: Noise
    expected: MeanOf
    switch_at: int | None = None
    after_switch: dict[Arm, float] = field(default_factory=dict)
    drifting: Arm | None = None
    delay_batches: int = 0
    _means: dict[tuple[Arm, float], float] = field(default_factory=dict, repr=False)
    _best: list[float] = field(default_factory=list, repr=False)

    def _location(self, arm: Arm, job: int) -> float:
        if self.switch_at is not None and job >= self.switch_at:
            return self.after_switch[arm]
        if arm == self.drifting and job >= DRIFT_FROM:
            return self.location[arm] - DRIFT_PER_JOB * (job - DRIFT_FROM)
        return self.location[arm]

    def mean(self, arm: Arm, job: int) -> float:
        location = self._location(arm, job)
        key = (arm, location)
        if key not in self._means:
            self._means[key] = self.expected(location)
        return self._means[key]

    def best(self, job: int) -> Arm:
        return max(self.arms, key=lambda arm: self.mean(arm, job))

    def best_mean(self, job: int) -> float:
        """The best arm's mean at ``job`` (worked out once per world)."""
        if not self._best:
            self._best = [self.mean(self.best(j), j) for j in range(JOBS)]
        return self._best[job]

    def score(self, arm: Arm, job: int, rng: random.Random) -> int:
        return max(0, min(100, round(self.draw(self._location(arm, job), rng))))


# -- score distributions: a draw and the expected clipped score --------------------------------------


def _normal_tail_integral(location: float, sd: float) -> float:
    """E[clip(Normal(location, sd), 0, 100)] = the integral of P(X > x) over 0..100."""

    def antiderivative(u: float) -> float:  # of 1 - Phi(u)
        return u * (1 - _phi_cdf(u)) - math.exp(-u * u / 2) / math.sqrt(2 * math.pi)

    return sd * (antiderivative((SCORE_MAX - location) / sd) - antiderivative(-location / sd))


def _phi_cdf(u: float) -> float:
    return 0.5 * math.erfc(-u / math.sqrt(2))


def gaussian(sd: float) -> tuple[Noise, MeanOf]:
    return (lambda loc, rng: rng.gauss(loc, sd)), (lambda loc: _normal_tail_integral(loc, sd))


def student2(scale: float) -> tuple[Noise, MeanOf]:
    """Student-t noise with 2 degrees of freedom: its survival function integrates in closed form."""

    def draw(location: float, rng: random.Random) -> float:
        normal = rng.gauss(0.0, 1.0)
        chi2 = rng.expovariate(0.5)  # chi-squared with 2 degrees of freedom
        return location + scale * normal / math.sqrt(chi2 / 2)

    def expected(location: float) -> float:
        def antiderivative(u: float) -> float:  # of 1 - F(u) = 1/2 - u / (2 sqrt(2 + u^2))
            return u / 2 - math.sqrt(2 + u * u) / 2

        return scale * (antiderivative((SCORE_MAX - location) / scale) - antiderivative(-location / scale))

    return draw, expected


def pass_fail() -> tuple[Noise, MeanOf]:
    """The location is the chance to pass; a pass and a fail score each from their own cluster."""
    passed, failed = _normal_tail_integral(*PASS_SCORE), _normal_tail_integral(*FAIL_SCORE)

    def draw(chance: float, rng: random.Random) -> float:
        return rng.gauss(*PASS_SCORE) if rng.random() < chance else rng.gauss(*FAIL_SCORE)

    return draw, (lambda chance: chance * passed + (1 - chance) * failed)


# -- the worlds ----------------------------------------------------------------------------------


def make_world(variant: str, seed: int) -> World:
    rng = random.Random(f"world-{variant}-{seed}")
    arms = arms_of(15 if variant == "arms60" else 7)
    if variant.startswith("passfail"):
        draw, expected = pass_fail()
        location = {arm: rng.uniform(*PASS_RANGE) for arm in arms}
        location[rng.choice(arms)] = BEST_PASS
        world = World(variant, arms, location, draw, expected)
        if variant == "passfail-switch":
            _switch(world, rng, SWITCH_DROP / (PASS_SCORE[0] - FAIL_SCORE[0]))
        return world
    if variant == "factorised":
        category = {c: rng.gauss(0, CATEGORY_SD) for c, _ in arms}
        style = {s: rng.gauss(0, STYLE_SD) for _, s in arms}
        location = {(c, s): LEVEL + category[c] + style[s] + rng.gauss(0, RESIDUAL_SD) for c, s in arms}
    else:
        level = PILED_LEVEL if variant == "piled" else LEVEL
        location = {arm: level + rng.gauss(0, ARM_SD) for arm in arms}
    if variant == "heavy":
        draw, expected = student2(rng.uniform(*HEAVY_SCALE))
    else:
        draw, expected = gaussian(rng.uniform(*NOISE_RANGE))
    _plant_lead(location, expected)
    world = World(variant, arms, location, draw, expected)
    if variant == "switch":
        _switch(world, rng, SWITCH_DROP)
    elif variant == "drift":
        world.drifting = world.best(0)
        others = {arm: loc for arm, loc in location.items() if arm != world.drifting}
        _plant_lead(others, expected)  # the arm that takes over leads the rest too
        location.update(others)
    elif variant == "delayed":
        world.delay_batches = DELAY_BATCHES
    return world


def _plant_lead(location: dict[Arm, float], expected: MeanOf) -> None:
    """Raise the best arm until its mean leads the runner-up's by ``BEST_LEAD`` (near the cap, as far as
    ``MAX_RAISE`` allows)."""
    ranked = sorted(location, key=location.__getitem__, reverse=True)
    best, runner_up = ranked[0], expected(location[ranked[1]])
    ceiling = location[ranked[1]] + MAX_RAISE
    while expected(location[best]) < runner_up + BEST_LEAD and location[best] < ceiling:
        location[best] += 0.25


def _switch(world: World, rng: random.Random, drop: float) -> None:
    """At half the jobs the best arm drops by ``drop`` and a random other arm takes its old place."""
    old_best = world.best(0)
    newcomer = rng.choice([arm for arm in world.arms if arm != old_best])
    after = dict(world.location)
    after[newcomer] = world.location[old_best]
    after[old_best] = world.location[old_best] - drop
    world.switch_at, world.after_switch = SWITCH_AT, after

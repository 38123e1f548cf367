"""What the learner believes, as ``syntx learning`` shows it: per arm its estimated mean score in the
usual language and context with its sd and its chance of being the best arm, and the effects.

The figures come from a Gibbs chain of their own, seeded, so they are a function of the statistics
alone: the learner's own draws never move them. Means and variances are averaged over the sweeps
(given each sweep's spreads, exactly), the chance of being best counted over draws.
"""

from __future__ import annotations

import random

from shared.learning.change import Change
from shared.learning.observation import Arm, arm_name
from shared.learning.posterior import BURN_IN_SWEEPS, Design, Spreads, gibbs_step
from shared.learning.state import ArmEstimate, Estimates

SWEEPS, DRAWS_PER_SWEEP = 40, 10  # 400 draws: a chance of being best to within about 2 points
SEED = 0
FAVOURED = 3  # arms shown as favoured: the best estimates


def estimate(design: Design, arms: list[Arm], change: Change | None) -> Estimates:
    rng, spreads = random.Random(SEED), Spreads()
    for _ in range(BURN_IN_SWEEPS):
        gibbs_step(design, spreads, rng)
    sums = [[0.0, 0.0, 0.0] for _ in arms]  # mean, mean², variance
    wins = [0] * len(arms)
    effects = [0.0] * design.size
    for _ in range(SWEEPS):
        conditional = gibbs_step(design, spreads, rng)
        for arm, row in enumerate(sums):
            mean, variance = conditional.arm_moments(arm, design.usual)
            row[0] += mean
            row[1] += mean * mean
            row[2] += variance
        for _ in range(DRAWS_PER_SWEEP):
            values = conditional.arm_values(conditional.draw_effects(rng), rng)
            wins[max(range(len(values)), key=values.__getitem__)] += 1
        effects = [e + m / SWEEPS for e, m in zip(effects, conditional.mean, strict=True)]
    return Estimates(
        arms=_rows(design, arms, sums, wins),
        effects=_centred(design, effects),
        noise_sd=design.noise**0.5,
        memory="short" if change else "long",
        changed=[arm_name(arm) for arm in change.arms] if change else [],
    )


def _rows(design: Design, arms: list[Arm], sums: list[list[float]], wins: list[int]) -> list[ArmEstimate]:
    rows = []
    for arm, (total, squares, variance), won, data in zip(arms, sums, wins, design.arms, strict=True):
        mean = total / SWEEPS
        sd = max(variance / SWEEPS + squares / SWEEPS - mean * mean, 0.0) ** 0.5
        rows.append((arm, mean, sd, won / (SWEEPS * DRAWS_PER_SWEEP), data.results))
    rows.sort(key=lambda row: (-row[1], row[0]))
    return [
        ArmEstimate(
            arm=arm_name(arm), results=results, mean=mean, sd=sd, chance_best=chance, favoured=rank < FAVOURED
        )
        for rank, (arm, mean, sd, chance, results) in enumerate(rows)
    ]


def _centred(design: Design, effects: list[float]) -> dict[str, dict[str, float]]:
    """Each kind's effects against the mean of that kind (the model only knows differences)."""
    centred: dict[str, dict[str, float]] = {}
    for kind, positions in design.kinds.items():
        middle = sum(effects[p] for p in positions) / len(positions) if positions else 0.0
        ordered = sorted(positions, key=lambda p: design.names[p])
        centred[kind] = {design.names[p][1]: effects[p] - middle for p in ordered}
    return centred

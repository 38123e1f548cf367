"""How a batch's arms are chosen: Thompson sampling within plausible bounds that widen with time.

Every job goes to the arm with the best draw. An arm's draw is its estimated mean score plus its
posterior sd times a standard normal number, scaled by ``exploration`` and cut at ``CUT`` standard
deviations: an arm competes only as far as its evidence makes plausible, so arms the results put well
below the leader cost nothing, while arms close to it are tried as often as Thompson sampling would.
The cut widens with the jobs since the arm's newest result, by sqrt(2 ln(1 + age / ``STALE_JOBS``)):
an arm that looks poor is left alone while that evidence is fresh and tried again as it ages, sooner
the closer it is — no arm is shut out for good, however unlucky its first results were. The learner
lifts the cut of an arm whose share of the results lags its chance of being best
(:func:`chances_of_best`, under the full posterior), so a good arm judged too soon is tried again before
its evidence ages.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

CUT = 1.5  # sds: an arm's draws stay this close to its estimate while its evidence is fresh
STALE_JOBS = 300  # the cut grows by 1.2 sds once an arm's newest result is this many jobs old (log)
CHANCE_DRAWS = 200  # posterior draws per batch to tell each arm's chance of being the best (±3 % at 50 %)


@dataclass(frozen=True)
class Candidate:
    mean: float
    sd: float  # posterior sd of the arm's mean score
    spread: float  # how far its draws reach: ``exploration`` (1 right after a change)
    cut: float  # sds


def cut_for(age_jobs: float) -> float:
    """The cut for an arm whose newest result is ``age_jobs`` jobs old."""
    return CUT + math.sqrt(2.0 * math.log1p(age_jobs / STALE_JOBS))


def choose(candidates: list[Candidate], rng: random.Random) -> int:
    """The position of the candidate with the best draw."""
    best, chosen = -math.inf, 0
    for position, candidate in enumerate(candidates):
        value = candidate.mean + candidate.spread * candidate.sd * _cut_normal(rng, candidate.cut)
        if value > best:
            best, chosen = value, position
    return chosen


def _cut_normal(rng: random.Random, cut: float) -> float:
    """A standard normal number within ±``cut`` (rejection: cuts are at least ``CUT``, or infinite)."""
    while True:
        value = rng.gauss(0.0, 1.0)
        if -cut <= value <= cut:
            return value


def chances_of_best(candidates: list[Candidate], rng: random.Random) -> list[float]:
    """Each candidate's chance of being the best under its full posterior (no spread scaling, no cut)."""
    wins = [0] * len(candidates)
    for _ in range(CHANCE_DRAWS):
        draws = [candidate.mean + candidate.sd * rng.gauss(0.0, 1.0) for candidate in candidates]
        wins[draws.index(max(draws))] += 1
    return [win / CHANCE_DRAWS for win in wins]

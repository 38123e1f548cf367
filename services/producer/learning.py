"""What the producer learns and how it chooses: the learner over the score model.

- **Each scored job once.** A job is learned under its id; the ids inside the forgetting horizon are
  kept, so a replay changes nothing; a result older than the horizon weighs less than 1e-6 and is not
  learned at all.
- **Thompson sampling over a shared model** (see :mod:`services.producer.model`): every slot of a batch
  goes to the arm with the best draw from the posterior (``draw_sweeps`` sampler sweeps apart, so the
  draws of one batch are nearly independent), so good arms are favoured while uncertain ones are still
  tried; an untried arm starts from its category and style, not from a fixed pessimistic prior.
- **Exploration floor.** Every arm is owed ``exploration_floor`` of every batch; what is owed is carried
  to the next batch until it adds up to a whole job, which is then given to the arm before any draw. A
  job the draws give an arm pays what it owes, so forced jobs only go to arms the draws starve.
- **After a change** (see the model), every arm with no result since is owed ``change_recheck_jobs``: the
  change may have moved any arm, and a result is how the model hears of it.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from services.producer.model import Arm, CellKey, CellStats, Sampler, ScoreModel
from shared.config import LearningSettings

ESTIMATE_SEED = 0  # the shown estimates are a deterministic function of the statistics
STATE_VERSION = 2


@dataclass(frozen=True)
class Observation:
    """One scored job, as the learner needs it."""

    job_id: str
    sequence: int
    category: str
    style: str
    language: str
    context: str  # wrapper|backend|model|scorer
    score: int
    prompt: str | None = field(default=None, compare=False)  # shown to an LLM generator as an example


@dataclass(frozen=True)
class Estimate:
    mean: float
    sd: float
    weight: float  # discounted number of results behind the arm


def arm_name(arm: Arm) -> str:
    return f"{arm[0]}/{arm[1]}"


@dataclass
class Learner:
    settings: LearningSettings
    arms: list[Arm]
    rng: random.Random
    model: ScoreModel = field(init=False)
    learned: dict[str, int] = field(default_factory=dict)  # job id -> sequence, inside the horizon
    credits: dict[Arm, float] = field(default_factory=dict)
    checked_change: int | None = None  # the change (block) whose untried arms were given a job each
    observed: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    _estimates: dict[Arm, Estimate] | None = field(default=None, repr=False)
    _pruned_at: int | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not self.arms:
            raise ValueError("the learner needs at least one arm")
        self.model = ScoreModel(self.settings)
        floor_share = self.settings.exploration_floor * len(self.arms)
        if floor_share > 1:
            raise ValueError(
                f"producer.learning.exploration_floor {self.settings.exploration_floor} times "
                f"{len(self.arms)} arms is over a whole batch; at most {1 / len(self.arms):.4f}"
            )

    @property
    def horizon_jobs(self) -> float:
        config = self.settings
        return config.window_jobs + config.half_life_jobs * config.horizon_half_lives

    # -- learning ----------------------------------------------------------------------------------

    def knows(self, job_id: str) -> bool:
        return job_id in self.learned

    def observe(self, observation: Observation) -> bool:
        """Learn a scored job once; False for one already learned or beyond the forgetting horizon."""
        if observation.job_id in self.learned or self._beyond_horizon(observation.sequence):
            return False
        key: CellKey = (observation.category, observation.style, observation.language, observation.context)
        self.model.add(observation.sequence, key, observation.score)
        self.learned[observation.job_id] = observation.sequence
        self.observed += 1
        self._estimates = None
        self._prune()
        return True

    def _beyond_horizon(self, sequence: int) -> bool:
        reference = self.model.reference
        return reference is not None and reference - sequence > self.horizon_jobs

    def _prune(self) -> None:
        """Forget the ids of jobs beyond the horizon (now and then, so it costs O(1) per job)."""
        reference = self.model.reference
        if reference is None:
            return
        if self._pruned_at is not None and reference - self._pruned_at < self.horizon_jobs / 4:
            return
        self._pruned_at = reference
        self.learned = {job: seq for job, seq in self.learned.items() if reference - seq <= self.horizon_jobs}
        self.model.prune(below=1e-12)

    # -- choosing ----------------------------------------------------------------------------------

    def plan(self, count: int) -> list[Arm]:
        """The arms for a batch of ``count`` jobs: what the floor owes first, then Thompson draws."""
        if not self.settings.enabled:
            return [self.rng.choice(self.arms) for _ in range(count)]
        for arm in self.arms:
            self.credits[arm] = max(self.credits.get(arm, 0.0), 0.0) + self.settings.exploration_floor * count
        self._recheck_after_change()
        picks: list[Arm] = []
        for arm in sorted(self.arms, key=lambda a: -self.credits[a]):
            while self.credits[arm] >= 1.0 and len(picks) < count:
                picks.append(arm)
                self.credits[arm] -= 1.0
        if len(picks) < count:
            sampler = self._sampler()
            for _ in range(self.settings.burn_in_sweeps):
                sampler.sweep(self.rng)
            while len(picks) < count:
                for _ in range(self.settings.draw_sweeps):
                    sampler.sweep(self.rng)
                best = max(self.arms, key=sampler.arm_value)
                picks.append(best)
                self.credits[best] -= 1.0
        return picks

    def _recheck_after_change(self) -> None:
        """After a new change, every arm with no result since is owed ``change_recheck_jobs``."""
        change = self.model.change()
        if change is None or change.block == self.checked_change:
            return
        self.checked_change = change.block
        tried = self.model.arms_since(change.block)
        for arm in self.arms:
            if arm not in tried:
                self.credits[arm] = max(self.credits[arm], 0.0) + self.settings.change_recheck_jobs

    def _sampler(self) -> Sampler:
        sampler = Sampler.of(self.model, self.arms)
        for _ in range(3):
            sampler.sweep(None)  # start near the posterior mean: short burn-in
        return sampler

    # -- what it believes --------------------------------------------------------------------------

    def estimates(self) -> dict[Arm, Estimate]:
        """Posterior mean and sd of each arm's score in the usual language and context (cached until
        something new is learned)."""
        if self._estimates is None:
            sampler = self._sampler()
            rng = random.Random(ESTIMATE_SEED)
            sums = dict.fromkeys(self.arms, 0.0)
            squares = dict.fromkeys(self.arms, 0.0)
            rounds = self.settings.estimate_sweeps
            for _ in range(rounds):
                sampler.sweep(rng)
                usual = sampler.usual_setting()
                for arm in self.arms:
                    value = sampler.arm_value(arm) + usual
                    sums[arm] += value
                    squares[arm] += value * value
            weights = self.model.arm_weights()
            self._estimates = {
                arm: Estimate(
                    mean=sums[arm] / rounds,
                    sd=math.sqrt(max(squares[arm] / rounds - (sums[arm] / rounds) ** 2, 0.0)),
                    weight=weights.get(arm, 0.0),
                )
                for arm in self.arms
            }
        return self._estimates

    def favoured(self, top: int = 3) -> list[Arm]:
        estimates = self.estimates()
        return sorted(self.arms, key=lambda arm: (-estimates[arm].mean, arm))[:top]

    def context_effects(self) -> dict[str, dict[str, float]]:
        sampler = Sampler.of(self.model, self.arms)
        for _ in range(50):
            sampler.sweep(None)
        return {kind: sampler.effects(kind) for kind in ("category", "style", "language", "context")}

    def summary(self) -> dict[str, dict[str, float]]:
        return {
            arm_name(arm): {
                "weight": round(estimate.weight, 2),
                "mean": round(estimate.mean, 2),
                "sd": round(estimate.sd, 2),
            }
            for arm, estimate in sorted(self.estimates().items())
        }

    # -- state -------------------------------------------------------------------------------------

    def to_state(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "reference": self.model.reference,
            "observed": self.observed,
            "blocks": {str(block): _cells(cells) for block, cells in sorted(self.model.blocks.items())},
            "older": _cells(self.model.older),
            "learned": dict(sorted(self.learned.items())),
            "credits": {arm_name(arm): round(credit, 12) for arm, credit in sorted(self.credits.items())},
            "checked_change": self.checked_change,
            "refused": dict(sorted(self.refused.items())),
        }

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore from :meth:`to_state`; raises ValueError/KeyError/TypeError on a foreign document."""
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"learner state version {state.get('version')!r}, expected {STATE_VERSION}")
        reference = state["reference"]
        self.model.reference = None if reference is None else int(reference)
        self.model.blocks = {int(block): _read_cells(rows) for block, rows in state["blocks"].items()}
        self.model.older = _read_cells(state["older"])
        self.model.forget_change()
        self.learned = {str(job): int(seq) for job, seq in state["learned"].items()}
        by_name = {arm_name(arm): arm for arm in self.arms}
        self.credits = {by_name[name]: float(v) for name, v in state["credits"].items() if name in by_name}
        checked = state.get("checked_change")
        self.checked_change = None if checked is None else int(checked)
        self.observed = int(state["observed"])
        self.refused = Counter({str(k): int(v) for k, v in state.get("refused", {}).items()})
        self._estimates = None


def _cells(cells: dict[CellKey, CellStats]) -> list[list[Any]]:
    return [[*key, stats.weight, stats.total, stats.squares] for key, stats in sorted(cells.items())]


def _read_cells(rows: list[list[Any]]) -> dict[CellKey, CellStats]:
    return {
        (str(c), str(s), str(lang), str(ctx)): CellStats(float(w), float(t), float(q))
        for c, s, lang, ctx, w, t, q in rows
    }

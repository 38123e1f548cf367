"""The previous learner: Thompson sampling over the Gibbs-sampled score model, with an exploration floor."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from benchmarks.previous.model import Arm, CellKey, Sampler, ScoreModel
from benchmarks.previous.settings import LearningSettings


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

"""The learner: learns each scored job once and chooses the arms of the next batch.

- **Each scored job once.** A job is learned under its id; the ids inside the memory's horizon are kept,
  so a replay changes nothing; a result beyond the horizon weighs less than 0.1 % and is not learned.
- **Choices** (:mod:`shared.learning.choice`): Thompson sampling from each arm's posterior
  (:mod:`shared.learning.posterior`), its spread scaled by ``exploration``, within bounds that keep
  implausible arms out while their evidence is fresh and widen with time, so no arm is shut out; an arm
  with fewer results than its chance of being best warrants is drawn without the bound.
- **After a change** (see :mod:`shared.learning.memory`), every arm with no result since is owed
  ``RECHECK_JOBS``, and an arm is drawn with its full spread until it has ``RESTART_RESULTS`` results
  since: the change may have moved any arm, and results are how the learner hears of it.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial

from shared.config import LearningSettings
from shared.learning.choice import Candidate, chances_of_best, choose, cut_for
from shared.learning.estimates import estimate
from shared.learning.memory import Memory
from shared.learning.observation import Arm, Observation, arm_name
from shared.learning.posterior import BURN_IN_SWEEPS, Conditional, Design, Spreads, gibbs_step
from shared.learning.state import BlockRow, Estimates, LearnerState, cells_of, rows_of

RECHECK_JOBS = 1  # after a change, jobs owed to every arm with no result since
RESTART_RESULTS = 3  # after a change, an arm is drawn with its full spread until it has this many since
SWEEPS_PER_PLAN = 2  # Gibbs sweeps of the spreads before a batch (the chain continues between batches)
BEHIND = 0.5  # an arm with a share of the results under this much of its chance of being best is uncut
PRUNE_EVERY = 4  # forget ids beyond the horizon after a quarter of it passed (O(1) per job on average)


@dataclass
class Learner:
    settings: LearningSettings
    arms: list[Arm]
    rng: random.Random
    memory: Memory = field(init=False)
    learned: dict[str, int] = field(default_factory=dict)  # job id -> sequence, inside the horizon
    owed: dict[Arm, float] = field(default_factory=dict)
    checked_change: int | None = None
    observed: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    _spreads: Spreads = field(default_factory=Spreads, repr=False)
    _design: Design | None = field(default=None, repr=False)
    _burnt_in: bool = field(default=False, repr=False)
    _pruned_at: int | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not self.arms:
            raise ValueError("the learner needs at least one arm")
        self.memory = Memory(self.settings.memory_jobs, self.settings.change_z)

    # -- learning ----------------------------------------------------------------------------------

    def knows(self, job_id: str) -> bool:
        return job_id in self.learned

    def observe(self, observation: Observation) -> bool:
        """Learn a scored job once; False for one already learned or beyond the horizon."""
        if observation.job_id in self.learned or self.memory.beyond_horizon(observation.sequence):
            return False
        self.memory.add(observation.sequence, observation.cell, observation.score)
        self.learned[observation.job_id] = observation.sequence
        self.observed += 1
        self._design = None
        self._prune()
        return True

    def _prune(self) -> None:
        reference, horizon = self.memory.reference, self.memory.horizon_jobs
        if reference is None or (
            self._pruned_at is not None and reference - self._pruned_at < horizon / PRUNE_EVERY
        ):
            return
        self._pruned_at = reference
        self.learned = {job: seq for job, seq in self.learned.items() if reference - seq <= horizon}
        self.memory.prune()

    # -- choosing ----------------------------------------------------------------------------------

    def plan(self, count: int) -> list[Arm]:
        """The arms for a batch of ``count`` jobs: what is owed after a change first, then draws."""
        if not self.settings.enabled:
            return [self.rng.choice(self.arms) for _ in range(count)]
        picks = self._owed_jobs(count)
        if len(picks) < count:
            candidates = self.candidates()
            picks += [self.arms[choose(candidates, self.rng)] for _ in range(count - len(picks))]
        return picks

    def candidates(self) -> list[Candidate]:
        """Every arm's estimate, spread and cut for the next draws (the Gibbs chain continued)."""
        conditional = self._sweep(SWEEPS_PER_PLAN)
        setting = self.design().usual
        ages = self.memory.ages(self.arms)
        restarting = self._restarting()
        candidates = []
        for position, arm in enumerate(self.arms):
            mean, variance = conditional.arm_moments(position, setting)
            if arm in restarting:
                candidates.append(Candidate(mean, variance**0.5, 1.0, math.inf))
            else:
                candidates.append(
                    Candidate(mean, variance**0.5, self.settings.exploration, cut_for(ages[arm]))
                )
        return self._widen_behind(candidates)

    def _widen_behind(self, candidates: list[Candidate]) -> list[Candidate]:
        """An arm below the leader whose share of the results is under ``BEHIND`` of its chance of being
        best (under its full posterior) is drawn without the cut until its share catches up: an unlucky
        start that put a good arm far below the leader cannot keep it from the results that correct it."""
        results = [data.results for data in self.design().arms]
        total = sum(results)
        if total <= 0:
            return candidates
        chances = chances_of_best(candidates, self.rng)
        leader = max(candidates, key=lambda candidate: candidate.mean)
        return [
            replace(c, cut=math.inf) if c is not leader and share < BEHIND * chance * total else c
            for c, share, chance in zip(candidates, results, chances, strict=True)
        ]

    def _restarting(self) -> set[Arm]:
        """After a change, the arms with fewer than ``RESTART_RESULTS`` results since: drawn as plain
        Thompson sampling would (full spread, no cut)."""
        change = self.memory.change()
        if change is None:
            return set()
        since = self.memory.results_since(change.block)
        return {arm for arm in self.arms if since.get(arm, 0.0) < RESTART_RESULTS}

    def _owed_jobs(self, count: int) -> list[Arm]:
        change = self.memory.change()
        if change is not None and change.block != self.checked_change:
            self.checked_change = change.block
            tried = self.memory.results_since(change.block)
            for arm in self.arms:
                if arm not in tried:
                    self.owed[arm] = self.owed.get(arm, 0.0) + RECHECK_JOBS
        picks: list[Arm] = []
        for arm in sorted(self.owed, key=lambda a: (-self.owed[a], a)):
            while self.owed[arm] >= 1.0 and len(picks) < count:
                picks.append(arm)
                self.owed[arm] -= 1.0
        self.owed = {arm: left for arm, left in self.owed.items() if left >= 1.0}
        return picks

    def design(self) -> Design:
        if self._design is None:
            self._design = Design.of(self.memory.active(), self.arms)
        return self._design

    def _sweep(self, sweeps: int) -> Conditional:
        """Continue the Gibbs chain over the current data; the conditional of its last sweep."""
        design = self.design()
        if not self._burnt_in:
            sweeps, self._burnt_in = max(sweeps, BURN_IN_SWEEPS), True
        conditional = gibbs_step(design, self._spreads, self.rng)
        for _ in range(sweeps - 1):
            conditional = gibbs_step(design, self._spreads, self.rng)
        return conditional

    # -- what it believes --------------------------------------------------------------------------

    def estimates(self) -> Estimates:
        """What it believes now (:func:`shared.learning.estimates.estimate`)."""
        return self.estimator()()

    def estimator(self) -> Callable[[], Estimates]:
        """:meth:`estimates` to work out later, e.g. in a thread: the statistics are taken now, so what
        the learner learns meanwhile neither changes them nor is read while it changes."""
        return partial(estimate, self.design(), list(self.arms), self.memory.change())

    # -- state -------------------------------------------------------------------------------------

    def to_state(self) -> LearnerState:
        return LearnerState(
            reference=self.memory.reference,
            observed=self.observed,
            blocks=[
                BlockRow(block=block, cells=rows_of(cells))
                for block, cells in sorted(self.memory.blocks.items())
            ],
            older=rows_of(self.memory.older),
            learned=dict(sorted(self.learned.items())),
            owed={arm_name(arm): left for arm, left in sorted(self.owed.items())},
            checked_change=self.checked_change,
            refused=dict(sorted(self.refused.items())),
        )

    def restore(self, state: LearnerState) -> None:
        """Continue from ``state`` (arms no longer configured are dropped from what is owed)."""
        self.memory.reference = state.reference
        self.memory.blocks = {row.block: cells_of(row.cells) for row in state.blocks}
        self.memory.older = cells_of(state.older)
        self.memory.restored()
        self.learned = dict(state.learned)
        names = {arm_name(arm): arm for arm in self.arms}
        self.owed = {names[name]: left for name, left in state.owed.items() if name in names}
        self.checked_change = state.checked_change
        self.observed = state.observed
        self.refused = Counter(state.refused)
        self._design, self._burnt_in = None, False

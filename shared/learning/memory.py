"""What the learner remembers: the results per block of produced jobs, forgetting on evidence.

Results are kept as sufficient statistics per cell (category, style, language, context) and per block
of ``BLOCK_JOBS`` jobs, counted by the job's sequence number: the newest ``memory_jobs`` at full weight,
older ones halving every ``memory_jobs`` more — a world that does not change is not discounted away.
Within the window the memory looks for a change (:mod:`shared.learning.change`). From the latest change
on, choices use the results after it; before it, a changed arm's results are dropped, and every other
arm's count as at most as many results as it takes to see a move of the change's size (the change may
have moved it too, unseen). Everything is a function of the set of results (weights depend on sequence
numbers, not on arrival), so the order results arrive in does not matter.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from shared.learning.change import Change, find_change
from shared.learning.observation import Arm, CellKey
from shared.learning.stats import Cells, CellStats, merge

BLOCK_JOBS = 100  # a change is placed at a block boundary; finer blocks cost memory and change checks
HORIZON_HALF_LIVES = 10  # results older than the window and this many half-lives weigh < 0.1 %: not kept
NEGLIGIBLE_WEIGHT = 1e-12


@dataclass
class Memory:
    memory_jobs: int
    change_z: float
    blocks: dict[int, Cells] = field(default_factory=dict)
    older: Cells = field(default_factory=dict)
    reference: int | None = None  # the newest sequence number learned
    _change: tuple[Change | None] | None = field(default=None, repr=False)  # None: not looked for yet

    @property
    def window_blocks(self) -> int:
        return max(1, math.ceil(self.memory_jobs / BLOCK_JOBS))

    @property
    def horizon_jobs(self) -> float:
        return self.memory_jobs * (1 + HORIZON_HALF_LIVES)

    def newest_block(self) -> int | None:
        return None if self.reference is None else self.reference // BLOCK_JOBS

    def beyond_horizon(self, sequence: int) -> bool:
        return self.reference is not None and self.reference - sequence > self.horizon_jobs

    def _weight(self, age: int) -> float:
        """The weight of a block ``age`` blocks older than the newest (1 inside the window)."""
        beyond = age - self.window_blocks + 1
        return 1.0 if beyond <= 0 else float(0.5 ** (beyond * BLOCK_JOBS / self.memory_jobs))

    def add(self, sequence: int, key: CellKey, score: float) -> None:
        if self.reference is None or sequence > self.reference:
            self._advance(sequence)
        newest = self.newest_block()
        assert newest is not None
        block = sequence // BLOCK_JOBS
        weight = self._weight(newest - block)
        cells = self.blocks.setdefault(block, {}) if weight == 1.0 else self.older
        cells.setdefault(key, CellStats()).add(CellStats.of(score), weight)
        self._change = None

    def _advance(self, sequence: int) -> None:
        """Move the reference to ``sequence``: blocks that leave the window join ``older``."""
        old = self.newest_block()
        self.reference = sequence
        new = sequence // BLOCK_JOBS
        if old is None or new == old:
            return
        factor = self._weight(new - old + self.window_blocks - 1)
        self.older = {key: stats.scaled(factor) for key, stats in self.older.items()}
        for block in sorted(k for k in self.blocks if new - k >= self.window_blocks):
            merge(self.older, self.blocks.pop(block), self._weight(new - block))

    def prune(self) -> None:
        self.older = {key: stats for key, stats in self.older.items() if stats.weight > NEGLIGIBLE_WEIGHT}

    def restored(self) -> None:
        """Forget what was derived from the statistics (after they were replaced)."""
        self._change = None

    # -- change ----------------------------------------------------------------------------------------

    def change(self) -> Change | None:
        """The latest change in the window (cached until something new is learned)."""
        if self._change is None:
            self._change = (find_change(self.older, self.blocks, self.change_z),)
        return self._change[0]

    def ages(self, arms: list[Arm]) -> dict[Arm, float]:
        """Jobs since each arm's newest result (to the block): the window's length for one whose
        newest result is older, the horizon for one never seen."""
        newest = self.newest_block()
        ages = dict.fromkeys(arms, self.horizon_jobs)
        for key in self.older:
            ages[key[:2]] = min(ages.get(key[:2], self.horizon_jobs), float(self.memory_jobs))
        for block, cells in self.blocks.items():
            age = float((newest or block) - block) * BLOCK_JOBS
            for key in cells:
                ages[key[:2]] = min(ages.get(key[:2], self.horizon_jobs), age)
        return {arm: ages[arm] for arm in arms}

    def results_since(self, block: int) -> dict[Arm, float]:
        """How many results each arm has from ``block`` on (arms without any are left out)."""
        counts: dict[Arm, float] = {}
        for k, cells in self.blocks.items():
            if k >= block:
                for key, stats in cells.items():
                    counts[key[:2]] = counts.get(key[:2], 0.0) + stats.weight
        return counts

    # -- what choices use ------------------------------------------------------------------------------

    def active(self) -> Cells:
        """The statistics choices use: everything, or after a change what is left of it (see above)."""
        change = self.change()
        merged: Cells = {}
        if change is None:
            for cells in (*self.blocks.values(), self.older):
                merge(merged, cells)
            return merged
        before: Cells = {}
        for block, cells in self.blocks.items():
            merge(merged if block >= change.block else before, cells)
        merge(before, self.older)
        counts: dict[Arm, float] = {}
        for key, stats in before.items():
            counts[key[:2]] = counts.get(key[:2], 0.0) + stats.weight
        stale = change.noise / max(change.size, 1.0) ** 2  # results it takes to see a move of that size
        for key, stats in before.items():
            if key[:2] not in change.arms:
                merged.setdefault(key, CellStats()).add(stats, 1.0 / (1.0 + counts[key[:2]] / stale))
        return merged

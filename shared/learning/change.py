"""Finding a change in the world: an arm whose results from some block on differ from its results before.

An arm's results are compared within each setting (language and context: wrapper, backend, model,
scorer) and the differences combined with inverse-variance weights, so a consumer with a stricter scorer
taking over an arm's jobs does not look like a change of the arm. For every block at which the arm has
results, the test asks how many standard errors its results from that block on lie from those before;
the arm changed at the block where that is largest, when it is more than ``z``, each side holds at
least ``MIN_RESULTS`` and the move is at least ``MIN_MOVE`` of the noise's sd. The change of the world
is the latest block at which some arm changed. The noise is the arm's own spread around its
per-setting means, pulled towards the spread pooled over all arms.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from shared.learning.observation import Arm
from shared.learning.priors import NOISE_SD, NOISE_WEIGHT
from shared.learning.stats import Cells, CellStats

MIN_RESULTS = 10.0  # results an arm needs on each side before a change can be placed between them
MIN_MOVE = 0.3  # and the move must be this many noise sds: a much-played arm's tiny wobble is no change
Setting = tuple[str, str]  # (language, context)


@dataclass(frozen=True)
class Change:
    """The latest change: from ``block`` on, ``arms`` score differently than before; ``size`` is the
    largest of their moves in score points, ``noise`` the variance of one score."""

    block: int
    arms: tuple[Arm, ...]
    size: float
    noise: float


@dataclass
class _History:
    """One arm's results per setting: before the window, and per block inside it."""

    older: dict[Setting, CellStats] = field(default_factory=dict)
    blocks: dict[int, dict[Setting, CellStats]] = field(default_factory=lambda: defaultdict(dict))

    def totals(self) -> dict[Setting, CellStats]:
        totals: dict[Setting, CellStats] = defaultdict(CellStats)
        for part in (self.older, *self.blocks.values()):
            for setting, stats in part.items():
                totals[setting].add(stats)
        return totals


@dataclass(frozen=True)
class _Split:
    z_squared: float
    block: int
    move: float  # score points: results from the block on minus those before


def find_change(older: Cells, blocks: dict[int, Cells], z: float) -> Change | None:
    histories = _histories(older, blocks)
    noise = _pooled_variance(histories.values())
    found = {arm: split for arm, history in histories.items() if (split := _best_split(history, noise, z))}
    if not found:
        return None
    return Change(
        block=max(split.block for split in found.values()),
        arms=tuple(sorted(found)),
        size=max(abs(split.move) for split in found.values()),
        noise=noise,
    )


def _histories(older: Cells, blocks: dict[int, Cells]) -> dict[Arm, _History]:
    histories: dict[Arm, _History] = defaultdict(_History)
    for (category, style, language, context), stats in older.items():
        histories[category, style].older[language, context] = stats
    for block, cells in blocks.items():
        for (category, style, language, context), stats in cells.items():
            histories[category, style].blocks[block][language, context] = stats
    return histories


def _pooled_variance(histories: Iterable[_History]) -> float:
    """The variance of one score around its arm's mean in its setting, averaged over arms and settings —
    each counts once, so a much-played steady arm does not set it for arms with mixed answers."""
    variances = [
        stats.deviations / (stats.weight - 1)
        for history in histories
        for stats in history.totals().values()
        if stats.weight >= 2
    ]
    return sum(variances) / len(variances) if variances else NOISE_SD**2


def _best_split(history: _History, noise: float, z: float) -> _Split | None:
    totals = history.totals()
    before: dict[Setting, CellStats] = defaultdict(CellStats)
    for setting, stats in history.older.items():
        before[setting].add(stats)
    best: _Split | None = None
    for block in sorted(history.blocks):
        split = _split(before, totals, noise, block)
        if (
            split is not None
            and _changed(split, noise, z)
            and (best is None or split.z_squared > best.z_squared)
        ):
            best = split
        for setting, stats in history.blocks[block].items():
            before[setting].add(stats)
    return best


def _changed(split: _Split, noise: float, z: float) -> bool:
    return split.z_squared > z * z and abs(split.move) >= MIN_MOVE * noise**0.5


def _split(
    before: dict[Setting, CellStats], totals: dict[Setting, CellStats], noise: float, block: int
) -> _Split | None:
    """(Standard errors between the results from ``block`` on and those before it)², compared within
    each setting; None when either side has too few results. The spread of one result is the wider of
    the two sides' own spreads (each pulled towards ``noise``): a few far-off scores in a short side widen
    its standard error instead of passing for a move, so heavy tails do not look like a change. (Each side
    with only its own spread took a run of tight passes for a change; README, "How well it learns".)"""
    pairs: list[tuple[CellStats, CellStats]] = []
    sides = [_Side(), _Side()]
    for setting, total in totals.items():
        early = before.get(setting, CellStats())
        late = CellStats(total.weight, total.total, total.squares)
        late.add(early, -1.0)
        for side, stats in zip(sides, (early, late), strict=True):
            side.add(stats)
        if early.weight > 1e-9 and late.weight > 1e-9:
            pairs.append((early, late))
    counts = [sum(pair[index].weight for pair in pairs) for index in (0, 1)]
    if min(counts, default=0.0) < MIN_RESULTS:
        return None
    variance = max(side.variance(noise) for side in sides)
    weighted_gap = weights = error = 0.0
    for early, late in pairs:
        weight = early.weight * late.weight / (early.weight + late.weight)
        weighted_gap += weight * (late.mean - early.mean)
        weights += weight
        error += weight * weight * variance * (1.0 / early.weight + 1.0 / late.weight)
    return _Split(weighted_gap * weighted_gap / error, block, weighted_gap / weights)


@dataclass
class _Side:
    """The spread of the results on one side of a split, over every setting."""

    deviations: float = 0.0
    degrees: float = 0.0

    def add(self, stats: CellStats) -> None:
        if stats.weight > 0:
            self.deviations += stats.deviations
            self.degrees += max(stats.weight - 1.0, 0.0)

    def variance(self, noise: float) -> float:
        """The spread of one score on this side, pulled towards the pooled ``noise``."""
        return max((self.deviations + NOISE_WEIGHT * noise) / (self.degrees + NOISE_WEIGHT), 1.0)

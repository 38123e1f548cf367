"""Finding a change in the world: an arm whose results from some block on differ from its results before.

An arm's results are compared within each setting (language and context: wrapper, backend, model,
scorer) and the differences combined with inverse-variance weights — so a consumer with a stricter scorer
taking over an arm's jobs does not look like a change of the arm. For every block at which the arm has
results, the test asks how many standard errors its results from that block on lie from those before;
the arm changed at the block where that is largest, when it is more than ``drift_z`` and each side holds
at least ``drift_min_weight`` results. The change of the world is the latest block at which some arm
changed. The noise is the arm's own spread around its per-setting means, shrunk towards the spread
pooled over all arms (``score_sd_weight`` pseudo-observations), so an arm with mixed answers is not
judged by the spread of a steady one.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from benchmarks.previous.cells import Arm, Cells, CellStats
from benchmarks.previous.settings import LearningSettings

Setting = tuple[str, str]  # (language, context)


@dataclass(frozen=True)
class Change:
    """The latest change in the window: from ``block`` on, ``arms`` score differently than before."""

    block: int
    arms: tuple[Arm, ...]


@dataclass
class _History:
    """One arm's results per setting: before the window, and per block inside it."""

    older: dict[Setting, CellStats] = field(default_factory=dict)
    blocks: dict[int, dict[Setting, CellStats]] = field(default_factory=lambda: defaultdict(dict))


def find_change(older: Cells, blocks: dict[int, Cells], config: LearningSettings) -> Change | None:
    histories: dict[Arm, _History] = defaultdict(_History)
    for (category, style, language, context), stats in older.items():
        histories[category, style].older[language, context] = stats
    for block, cells in blocks.items():
        for (category, style, language, context), stats in cells.items():
            histories[category, style].blocks[block][language, context] = stats
    noise = _pooled_variance(histories.values(), config.score_sd**2)
    found: dict[Arm, int] = {}
    for arm, history in sorted(histories.items()):
        changed_at = _change_block(history, noise, config)
        if changed_at is not None:
            found[arm] = changed_at
    if not found:
        return None
    return Change(max(found.values()), tuple(sorted(found)))


def _totals(history: _History) -> dict[Setting, CellStats]:
    totals: dict[Setting, CellStats] = defaultdict(CellStats)
    for setting, stats in history.older.items():
        totals[setting].add(stats)
    for cells in history.blocks.values():
        for setting, stats in cells.items():
            totals[setting].add(stats)
    return totals


def _pooled_variance(histories: Iterable[_History], fallback: float) -> float:
    """The variance of one score around its arm's mean in its setting, averaged over arms and settings —
    each counts once, so a much-played steady arm does not set it for arms with mixed answers."""
    variances = [
        stats.deviations / (stats.weight - 1)
        for history in histories
        for stats in _totals(history).values()
        if stats.weight >= 2
    ]
    return sum(variances) / len(variances) if variances else fallback


def _change_block(history: _History, noise: float, config: LearningSettings) -> int | None:
    totals = _totals(history)
    before: dict[Setting, CellStats] = defaultdict(CellStats)
    for setting, stats in history.older.items():
        before[setting].add(stats)
    best: tuple[float, int] | None = None
    for block in sorted(history.blocks):
        z_squared = _z_squared(before, totals, noise, config)
        if z_squared is not None and z_squared > config.drift_z**2 and (best is None or z_squared > best[0]):
            best = (z_squared, block)
        for setting, stats in history.blocks[block].items():
            before[setting].add(stats)
    return None if best is None else best[1]


def _z_squared(
    before: dict[Setting, CellStats], totals: dict[Setting, CellStats], noise: float, config: LearningSettings
) -> float | None:
    """(Standard errors between the results from a block on and those before it)², compared within each
    setting; None when either side has too few results."""
    weighted_gap = 0.0
    weights = 0.0
    counts = [0.0, 0.0]
    deviations = 0.0
    degrees = 0.0
    for setting, total in totals.items():
        early = before.get(setting, CellStats())
        late = CellStats(total.weight, total.total, total.squares)
        late.add(early, -1.0)
        for side in (early, late):
            if side.weight > 0:
                deviations += side.deviations
                degrees += max(side.weight - 1.0, 0.0)
        if early.weight <= 1e-9 or late.weight <= 1e-9:
            continue
        weight = early.weight * late.weight / (early.weight + late.weight)
        weighted_gap += weight * (late.total / late.weight - early.total / early.weight)
        weights += weight
        counts[0] += early.weight
        counts[1] += late.weight
    if min(counts) < config.drift_min_weight or weights <= 0:
        return None
    variance = (deviations + config.score_sd_weight * noise) / (degrees + config.score_sd_weight)
    return weighted_gap * weighted_gap / (max(variance, 1.0) * weights)

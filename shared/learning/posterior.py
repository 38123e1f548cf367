"""The score model and its posterior.

    score = level + category + style + arm residual + language + context + noise

An arm's value — what choices compare — is level + category + style + residual; the estimates shown
add the language and context effects averaged over the results (the usual setting, where scores live).
Language and context (wrapper, backend, model, scorer) are nuisance effects: they explain part of a
score but never decide between arms, so results from different settings are not pooled raw. How far
categories, styles and arm residuals spread is learned (a hierarchical model); the residual has a
Student-t prior, and what an arm's category and style predict counts as at most ``PREDICTION_RESULTS``
results, so an arm's own results overrule the prediction once there are a few of them. The noise of one
score is the arm's own spread, pulled towards the spread pooled over every arm.

The posterior is sampled by Gibbs sweeps over the spreads (persistent :class:`Spreads`), each given a
joint Gaussian draw of level, category, style, language and context effects with the arm residuals
integrated out (a Cholesky factor of a matrix with one row per effect), then the residuals.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from shared.learning.linalg import Matrix, cholesky, solve_lower, solve_upper
from shared.learning.observation import Arm
from shared.learning.priors import (
    ARM_NOISE_WEIGHT,
    CONTEXT_SD,
    LANGUAGE_SD,
    LEVEL_MEAN,
    LEVEL_SD,
    NOISE_SD,
    NOISE_WEIGHT,
    PREDICTION_RESULTS,
    RESIDUAL_DF,
    SPREAD_SD,
    SPREAD_WEIGHT,
)
from shared.learning.stats import Cells

LEVEL = 0  # position of the level among the effects
BURN_IN_SWEEPS = 20  # sweeps before a fresh chain's draws count (its spreads start at the prior's)


@dataclass(frozen=True)
class ArmData:
    """One arm's results: its category and style positions, and per cell (language and context
    positions, weight / noise, weighted total / noise)."""

    category: int
    style: int
    cells: tuple[tuple[int, int, float, float], ...]
    noise: float  # variance of one score of this arm
    results: float  # the weight of its results
    precision: float  # the sum of the cells' weight / noise
    signal: float  # the sum of the cells' total / noise


@dataclass(frozen=True)
class Design:
    """The effects (names by position) and every arm's data, for one state of the memory."""

    names: tuple[tuple[str, str], ...]  # (kind, name) per position; position 0 is the level
    kinds: dict[str, tuple[int, ...]]
    arms: tuple[ArmData, ...]
    usual: dict[int, float]  # language and context positions -> their share of the results
    noise: float  # the variance of one score, pooled over every cell

    @classmethod
    def of(cls, cells: Cells, arms: list[Arm]) -> Design:
        names: list[tuple[str, str]] = [("level", "")]
        index: dict[tuple[str, str], int] = {}

        def position(kind: str, name: str) -> int:
            if (kind, name) not in index:
                index[kind, name] = len(names)
                names.append((kind, name))
            return index[kind, name]

        for category, style in arms:
            position("category", category)
            position("style", style)
        for _, _, language, context in sorted(cells):
            position("language", language)
            position("context", context)
        pooled = _pooled_noise(cells)
        by_arm: dict[Arm, list[tuple[str, str, float, float, float]]] = {arm: [] for arm in arms}
        for (category, style, language, context), stats in cells.items():
            if (category, style) in by_arm and stats.weight > 0:
                by_arm[category, style].append(
                    (language, context, stats.weight, stats.total, stats.deviations)
                )
        data = tuple(
            _arm_data(index["category", arm[0]], index["style", arm[1]], by_arm[arm], index, pooled)
            for arm in arms
        )
        kinds = {kind: tuple(i for i, name in enumerate(names) if name[0] == kind) for kind in _KINDS}
        return cls(tuple(names), kinds, data, _usual(cells, index), pooled)

    @property
    def size(self) -> int:
        return len(self.names)

    def prior_precision(self, spreads: Spreads) -> list[float]:
        variance = {
            "level": LEVEL_SD**2,
            "category": spreads.category,
            "style": spreads.style,
            "language": LANGUAGE_SD**2,
            "context": CONTEXT_SD**2,
        }
        return [1.0 / variance[kind] for kind, _ in self.names]


_KINDS = ("category", "style", "language", "context")


def _pooled_noise(cells: Cells) -> float:
    deviations = sum(stats.deviations for stats in cells.values())
    degrees = sum(max(stats.weight - 1.0, 0.0) for stats in cells.values())
    return (deviations + NOISE_WEIGHT * NOISE_SD**2) / (degrees + NOISE_WEIGHT)


def _arm_data(
    category: int,
    style: int,
    cells: list[tuple[str, str, float, float, float]],
    index: dict[tuple[str, str], int],
    pooled: float,
) -> ArmData:
    deviations = sum(cell[4] for cell in cells)
    degrees = sum(max(cell[2] - 1.0, 0.0) for cell in cells)
    noise = (deviations + ARM_NOISE_WEIGHT * pooled) / (degrees + ARM_NOISE_WEIGHT)
    rows = tuple(
        (index["language", language], index["context", context], weight / noise, total / noise)
        for language, context, weight, total, _ in cells
    )
    return ArmData(
        category,
        style,
        rows,
        noise,
        results=sum(cell[2] for cell in cells),
        precision=sum(row[2] for row in rows),
        signal=sum(row[3] for row in rows),
    )


def _usual(cells: Cells, index: dict[tuple[str, str], int]) -> dict[int, float]:
    """Each language and context's share of the results: the setting estimates are shown in."""
    total = sum(stats.weight for stats in cells.values())
    shares: dict[int, float] = {}
    if total <= 0:
        return shares
    for (_, _, language, context), stats in cells.items():
        for position in (index["language", language], index["context", context]):
            shares[position] = shares.get(position, 0.0) + stats.weight / total
    return shares


@dataclass
class Spreads:
    """The learned spreads (variances) and each arm's Student-t scale: the Gibbs chain's state, kept
    between ticks so every tick continues where the last one stopped."""

    category: float = SPREAD_SD**2
    style: float = SPREAD_SD**2
    residual: float = SPREAD_SD**2
    outlier: list[float] = field(default_factory=list)  # per arm: the t prior's precision multiplier

    def residual_variance(self, arm: int, data: ArmData) -> float:
        """The residual's prior variance; never so small that the prediction outweighs
        ``PREDICTION_RESULTS`` of the arm's own results."""
        scale = self.outlier[arm] if arm < len(self.outlier) else 1.0
        return max(self.residual / scale, data.noise / PREDICTION_RESULTS)


@dataclass(frozen=True)
class Conditional:
    """The posterior of the effects given the spreads: mean and Cholesky factor of the precision of
    the non-residual effects (residuals integrated out), and per arm its residual's precision."""

    design: Design
    mean: list[float]
    factor: Matrix
    residual_precision: list[float]
    residual_variance: list[float]
    residual_sd: list[float]  # of each residual given the other effects

    @classmethod
    def of(cls, design: Design, spreads: Spreads) -> Conditional:
        size = design.size
        matrix = [[0.0] * size for _ in range(size)]
        vector = [0.0] * size
        prior = design.prior_precision(spreads)
        for i in range(size):
            matrix[i][i] = prior[i]
        vector[LEVEL] = LEVEL_MEAN / LEVEL_SD**2
        variances = [spreads.residual_variance(a, data) for a, data in enumerate(design.arms)]
        precisions = []
        for data, variance in zip(design.arms, variances, strict=True):
            precisions.append(1.0 / variance + data.precision)
            _add_arm(matrix, vector, data, precisions[-1])
        factor = cholesky(matrix)
        mean = solve_upper(factor, solve_lower(factor, vector))
        return cls(design, mean, factor, precisions, variances, [1.0 / math.sqrt(p) for p in precisions])

    def draw_effects(self, rng: random.Random, temper: float = 1.0) -> list[float]:
        """A draw of the non-residual effects, its spread around the mean scaled by ``temper``."""
        noise = solve_upper(self.factor, [rng.gauss(0.0, 1.0) for _ in self.mean])
        return [m + temper * e for m, e in zip(self.mean, noise, strict=True)]

    def residual_mean(self, arm: int, effects: list[float]) -> float:
        data = self.design.arms[arm]
        explained = data.precision * (effects[LEVEL] + effects[data.category] + effects[data.style])
        for language, context, weight, _ in data.cells:
            explained += weight * (effects[language] + effects[context])
        return (data.signal - explained) / self.residual_precision[arm]

    def arm_values(
        self, effects: list[float], rng: random.Random | None, tempers: list[float] | None = None
    ) -> list[float]:
        """Every arm's value given ``effects``: residuals drawn (each arm's spread scaled by its
        ``tempers`` entry), or at their conditional means when ``rng`` is None."""
        values = []
        gauss = rng.gauss if rng is not None else None
        arms = self.design.arms
        for arm, (data, precision, scale) in enumerate(
            zip(arms, self.residual_precision, self.residual_sd, strict=True)
        ):
            base = effects[LEVEL] + effects[data.category] + effects[data.style]
            explained = data.precision * base
            for language, context, weight, _ in data.cells:
                explained += weight * (effects[language] + effects[context])
            value = base + (data.signal - explained) / precision
            if gauss is not None:
                value += (tempers[arm] if tempers else 1.0) * scale * gauss(0.0, 1.0)
            values.append(value)
        return values

    def arm_moments(self, arm: int, setting: dict[int, float]) -> tuple[float, float]:
        """Mean and variance of the arm's mean score in ``setting`` (language and context positions ->
        weights summing to 1 for each kind), given the spreads: the effects integrated out."""
        data = self.design.arms[arm]
        weights = [0.0] * self.design.size
        for position, share in setting.items():
            weights[position] += share
        share = data.precision / self.residual_precision[arm]
        for position in (LEVEL, data.category, data.style):
            weights[position] += 1.0 - share
        for language, context, weight, _ in data.cells:
            weights[language] -= weight / self.residual_precision[arm]
            weights[context] -= weight / self.residual_precision[arm]
        mean = sum(w * m for w, m in zip(weights, self.mean, strict=True))
        mean += data.signal / self.residual_precision[arm]
        spread = solve_lower(self.factor, weights)
        return mean, sum(x * x for x in spread) + 1.0 / self.residual_precision[arm]


def _add_arm(matrix: Matrix, vector: list[float], data: ArmData, precision: float) -> None:
    """The arm's results with its residual integrated out: Σ d x xᵀ − u uᵀ / precision."""
    if not data.cells:
        return
    shared: dict[int, float] = {}
    for language, context, weight, signal in data.cells:
        positions = (LEVEL, data.category, data.style, language, context)
        for p in positions:
            vector[p] += signal
            shared[p] = shared.get(p, 0.0) + weight
            row = matrix[p]
            for q in positions:
                row[q] += weight
    total_signal = data.signal
    for p, up in shared.items():
        vector[p] -= up * total_signal / precision
        row = matrix[p]
        for q, uq in shared.items():
            row[q] -= up * uq / precision


def gibbs_step(design: Design, spreads: Spreads, rng: random.Random) -> Conditional:
    """One sweep: effects and residuals drawn given the spreads, then the spreads given them."""
    conditional = Conditional.of(design, spreads)
    effects = conditional.draw_effects(rng)
    residuals = [
        conditional.residual_mean(arm, effects) + rng.gauss(0.0, 1.0) / math.sqrt(precision)
        for arm, precision in enumerate(conditional.residual_precision)
    ]
    spreads.category = _variance_draw([effects[p] for p in design.kinds["category"]], rng)
    spreads.style = _variance_draw([effects[p] for p in design.kinds["style"]], rng)
    outlier = spreads.outlier or [1.0] * len(residuals)
    spreads.residual = _variance_draw(residuals, rng, outlier)
    spreads.outlier = [
        rng.gammavariate((RESIDUAL_DF + 1.0) / 2.0, 2.0 / (RESIDUAL_DF + r * r / spreads.residual))
        for r in residuals
    ]
    return conditional


def _variance_draw(values: list[float], rng: random.Random, scales: list[float] | None = None) -> float:
    """A spread's variance given its effects (scaled-inverse-χ², ``SPREAD_WEIGHT`` pseudo-effects)."""
    squares = sum(v * v * (scales[i] if scales else 1.0) for i, v in enumerate(values))
    shape = SPREAD_WEIGHT + len(values)
    return (SPREAD_WEIGHT * SPREAD_SD**2 + squares) / (2.0 * rng.gammavariate(shape / 2.0, 1.0))

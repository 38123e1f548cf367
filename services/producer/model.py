"""The score model behind the producer's choices: an additive Gaussian model with forgetting.

    score = level + category + style + arm residual + language + context + noise

A new arm starts from what its category and style already say (its residual is shrunk towards 0);
language and context (wrapper, backend, model, scorer) are nuisance effects — they explain part of a score
but never decide which arm is best, so results from different contexts are not pooled raw.

Data are kept as discounted sufficient statistics per cell (category, style, language, context): a
result's weight halves every ``half_life_jobs`` produced jobs, counted by the job's sequence number, so
the weights do not depend on the order results arrive in. The posterior is sampled by Gibbs sweeps
(each effect in turn given the others, then the noise variance), which is cheap for tens of effects.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from shared.config import LearningSettings

Arm = tuple[str, str]  # (category, style)
LEARNED_SPREADS = ("category", "style", "arm")
CellKey = tuple[str, str, str, str]  # (category, style, language, context)


@dataclass
class CellStats:
    """Discounted weight, weighted sum and weighted sum of squares of the scores in one cell."""

    weight: float = 0.0
    total: float = 0.0
    squares: float = 0.0

    def scale(self, factor: float) -> None:
        self.weight *= factor
        self.total *= factor
        self.squares *= factor


@dataclass
class ScoreModel:
    """Discounted statistics at two speeds, expressed at the weight scale of ``reference`` (the newest
    sequence): ``cells`` forget with ``half_life_jobs``, ``recent`` with ``change_half_life_jobs``.

    While every arm's recent mean agrees with its long-run mean, choices use the long memory (cheap in
    a stable world); when some arm's recent mean moves by more than ``drift_z`` standard errors, the world
    has changed and choices use the short memory, so old beliefs about every arm fade fast. Which memory
    is used is a function of the statistics, never a change to them: the order results arrive in does not
    matter.
    """

    settings: LearningSettings
    cells: dict[CellKey, CellStats] = field(default_factory=dict)
    recent: dict[CellKey, CellStats] = field(default_factory=dict)
    reference: int | None = None

    def weight_of(self, sequence: int, half_life: float) -> float:
        """The weight of a result of job ``sequence`` now (1 for the newest job)."""
        if self.reference is None or sequence >= self.reference:
            return 1.0
        return float(0.5 ** ((self.reference - sequence) / half_life))

    def add(self, sequence: int, key: CellKey, score: float) -> None:
        config = self.settings
        memories = ((self.cells, config.half_life_jobs), (self.recent, config.change_half_life_jobs))
        if self.reference is None:
            self.reference = sequence
        elif sequence > self.reference:
            for cells, half_life in memories:
                factor = 0.5 ** ((sequence - self.reference) / half_life)
                for stats in cells.values():
                    stats.scale(factor)
            self.reference = sequence
        for cells, half_life in memories:
            weight = self.weight_of(sequence, half_life)
            stats = cells.setdefault(key, CellStats())
            stats.weight += weight
            stats.total += weight * score
            stats.squares += weight * score * score

    def arm_weight(self, arm: Arm) -> float:
        return sum(stats.weight for key, stats in self.active().items() if key[:2] == arm)

    def drifting(self) -> list[Arm]:
        """Arms whose recent mean left their long-run mean by more than ``drift_z`` standard errors."""
        config = self.settings
        long_run = _by_arm(self.cells)
        moved: list[Arm] = []
        for arm, recent in _by_arm(self.recent).items():
            past = long_run.get(arm)
            if past is None or recent.weight < config.drift_min_weight:
                continue
            recent_mean, past_mean = recent.total / recent.weight, past.total / past.weight
            spread = math.sqrt(max(past.squares / past.weight - past_mean**2, 1.0))
            error = spread * math.sqrt(1.0 / recent.weight + 1.0 / past.weight)  # as if independent: cautious
            if abs(recent_mean - past_mean) > config.drift_z * error:
                moved.append(arm)
        return moved

    def active(self) -> dict[CellKey, CellStats]:
        """The memory choices use: the short one while some arm drifts, else the long one."""
        return self.recent if self.drifting() else self.cells

    def prune(self, below: float) -> None:
        self.cells = {key: cell for key, cell in self.cells.items() if cell.weight > below}
        self.recent = {key: cell for key, cell in self.recent.items() if key in self.cells}


def _by_arm(cells: dict[CellKey, CellStats]) -> dict[Arm, CellStats]:
    arms: dict[Arm, CellStats] = {}
    for key, stats in cells.items():
        merged = arms.setdefault(key[:2], CellStats())
        merged.weight += stats.weight
        merged.total += stats.total
        merged.squares += stats.squares
    return arms


@dataclass
class Sampler:
    """Gibbs sampler over the model's effects; ``sweep`` draws, ``settle`` moves to the posterior mean."""

    names: list[tuple[str, ...]]
    prior_mean: list[float]
    prior_precision: list[float]
    cell_effects: list[tuple[int, ...]]
    cells_of: list[list[int]]
    weight: list[float]
    total: list[float]
    squares: list[float]
    noise_prior: tuple[float, float]  # (pseudo-observations, variance)
    spread_prior: dict[str, tuple[float, float]]  # learned spreads: kind -> (pseudo-effects, variance)
    members: dict[str, list[int]]  # kind -> positions of its effects
    theta: list[float]
    predicted: list[float]
    variance: float
    index: dict[tuple[str, ...], int]

    @classmethod
    def of(cls, model: ScoreModel, arms: list[Arm]) -> Sampler:
        config = model.settings
        names: list[tuple[str, ...]] = [("level",)]
        index: dict[tuple[str, ...], int] = {("level",): 0}
        spreads = {
            "level": config.prior_sd,
            "category": config.effect_sd,
            "style": config.effect_sd,
            "arm": config.residual_sd,
            "language": config.language_sd,
            "context": config.context_sd,
        }

        def effect(name: tuple[str, ...]) -> int:
            if name not in index:
                index[name] = len(names)
                names.append(name)
            return index[name]

        for category, style in arms:
            effect(("category", category))
            effect(("style", style))
            effect(("arm", category, style))
        cell_effects: list[tuple[int, ...]] = []
        weight: list[float] = []
        total: list[float] = []
        squares: list[float] = []
        for (category, style, language, context), stats in sorted(model.active().items()):
            cell_effects.append(
                (
                    0,
                    effect(("category", category)),
                    effect(("style", style)),
                    effect(("arm", category, style)),
                    effect(("language", language)),
                    effect(("context", context)),
                )
            )
            weight.append(stats.weight)
            total.append(stats.total)
            squares.append(stats.squares)
        cells_of: list[list[int]] = [[] for _ in names]
        for cell, effects in enumerate(cell_effects):
            for position in effects:
                cells_of[position].append(cell)
        prior_mean = [config.prior_mean] + [0.0] * (len(names) - 1)
        theta = list(prior_mean)
        members: dict[str, list[int]] = {kind: [] for kind in LEARNED_SPREADS}
        for position, name in enumerate(names):
            if name[0] in members:
                members[name[0]].append(position)
        return cls(
            names=names,
            prior_mean=prior_mean,
            prior_precision=[1.0 / spreads[name[0]] ** 2 for name in names],
            cell_effects=cell_effects,
            cells_of=cells_of,
            weight=weight,
            total=total,
            squares=squares,
            noise_prior=(config.score_sd_weight, config.score_sd**2),
            spread_prior={kind: (config.spread_weight, spreads[kind] ** 2) for kind in LEARNED_SPREADS},
            members=members,
            theta=theta,
            predicted=[sum(theta[e] for e in effects) for effects in cell_effects],
            variance=config.score_sd**2,
            index=index,
        )

    def sweep(self, rng: random.Random | None) -> None:
        """One pass over every effect, then the noise variance; ``rng=None`` takes conditional means."""
        theta, predicted = self.theta, self.predicted
        weight, total = self.weight, self.total
        for position, cells in enumerate(self.cells_of):
            current = theta[position]
            residual = 0.0
            mass = 0.0
            for cell in cells:
                residual += total[cell] - weight[cell] * (predicted[cell] - current)
                mass += weight[cell]
            precision = self.prior_precision[position] + mass / self.variance
            mean = (self.prior_precision[position] * self.prior_mean[position] + residual / self.variance) / (
                precision
            )
            new = mean + rng.gauss(0.0, 1.0) / math.sqrt(precision) if rng else mean
            delta = new - current
            if delta:
                theta[position] = new
                for cell in cells:
                    predicted[cell] += delta
        self.variance = self._noise(rng)
        self._spreads(rng)

    def _spreads(self, rng: random.Random | None) -> None:
        """How far categories, styles and arm residuals really spread: the hierarchy learns whether the
        world is factorised (small residuals) or not (residuals as wide as the arms)."""
        for kind, positions in self.members.items():
            pseudo, prior_variance = self.spread_prior[kind]
            scale = pseudo * prior_variance + sum(self.theta[p] ** 2 for p in positions)
            shape = pseudo + len(positions)
            variance = scale / (2.0 * rng.gammavariate(shape / 2.0, 1.0)) if rng else scale / shape
            for position in positions:
                self.prior_precision[position] = 1.0 / variance

    def _noise(self, rng: random.Random | None) -> float:
        pseudo, prior_variance = self.noise_prior
        squared = 0.0
        mass = 0.0
        for cell, fitted in enumerate(self.predicted):
            squared += (
                self.squares[cell] - 2 * fitted * self.total[cell] + self.weight[cell] * fitted * fitted
            )
            mass += self.weight[cell]
        scale = pseudo * prior_variance + max(squared, 0.0)
        if rng is None:
            return scale / (pseudo + mass)
        return scale / (2.0 * rng.gammavariate((pseudo + mass) / 2.0, 1.0))

    def arm_value(self, arm: Arm) -> float:
        """The arm's mean score in the reference language and context (those effects left out)."""
        category, style = arm
        theta, index = self.theta, self.index
        return (
            theta[0]
            + theta[index[("category", category)]]
            + theta[index[("style", style)]]
            + theta[index[("arm", category, style)]]
        )

    def usual_setting(self) -> float:
        """The language and context effects averaged over the data: added to an arm's value, it reads on
        the scale of the scores seen (choices do not need it; every arm gets the same)."""
        total = sum(self.weight)
        if total <= 0:
            return 0.0
        theta = self.theta
        return (
            sum(w * (theta[e[4]] + theta[e[5]]) for w, e in zip(self.weight, self.cell_effects, strict=True))
            / total
        )

    def effects(self, kind: str) -> dict[str, float]:
        return {name[1]: self.theta[i] for i, name in enumerate(self.names) if name[0] == kind}

"""The score model behind the producer's choices: an additive model with forgetting on evidence.

    score = level + category + style + arm residual + language + context + noise

A new arm starts from what its category and style already say (its residual is shrunk towards 0, with a
Student-t prior so that an arm its results show to be far from that is believed);
language and context (wrapper, backend, model, scorer) are nuisance effects — they explain part of a score
but never decide which arm is best, so results from different contexts are not pooled raw.

Data are kept as sufficient statistics per cell (category, style, language, context) and per block of
``block_jobs`` produced jobs, counted by the job's sequence number: the newest ``window_jobs`` at full
weight, older ones halving every ``half_life_jobs`` — so a world that does not change is not discounted
away. Within the window the model looks for a change: an arm whose results after some block differ from
its results before by more than ``drift_z`` standard errors. From the latest such change on, choices use
the results after it; before it, a changed arm's results are dropped and the others' fade with
``change_half_life_jobs``. Everything is a function of the set of results (weights depend on sequence
numbers, not on arrival), so the order results arrive in does not matter. The posterior is sampled by
Gibbs sweeps (each effect in turn given the others, then the noise variance), cheap for tens of effects.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from benchmarks.previous.cells import Arm, CellKey, Cells, CellStats
from benchmarks.previous.change import Change, find_change
from benchmarks.previous.settings import LearningSettings

__all__ = ["Arm", "CellKey", "CellStats", "Cells", "Change", "Sampler", "ScoreModel"]

LEARNED_SPREADS = ("category", "style", "arm")


@dataclass
class ScoreModel:
    """Statistics per block of produced jobs: ``blocks`` inside the window (full weight), ``older`` before
    it (halving every ``half_life_jobs``, expressed at the newest block). ``reference`` is the newest
    sequence learned."""

    settings: LearningSettings
    blocks: dict[int, Cells] = field(default_factory=dict)
    older: Cells = field(default_factory=dict)
    reference: int | None = None
    _change: tuple[Change | None] | None = field(default=None, repr=False)  # None: not looked for yet

    @property
    def block_jobs(self) -> int:
        return self.settings.block_jobs

    @property
    def window_blocks(self) -> int:
        return max(1, math.ceil(self.settings.window_jobs / self.settings.block_jobs))

    def newest_block(self) -> int | None:
        return None if self.reference is None else self.reference // self.block_jobs

    def older_weight(self, age: int) -> float:
        """The weight of a block ``age`` blocks older than the newest (1 inside the window)."""
        beyond = age - self.window_blocks + 1
        return 1.0 if beyond <= 0 else float(0.5 ** (beyond * self.block_jobs / self.settings.half_life_jobs))

    def add(self, sequence: int, key: CellKey, score: float) -> None:
        if self.reference is None or sequence > self.reference:
            self._advance(sequence)
        newest = self.newest_block()
        assert newest is not None
        block = sequence // self.block_jobs
        weight = self.older_weight(newest - block)
        cells = self.blocks.setdefault(block, {}) if weight == 1.0 else self.older
        cells.setdefault(key, CellStats()).add(CellStats(1.0, score, score * score), weight)
        self.forget_change()

    def _advance(self, sequence: int) -> None:
        """Move the reference to ``sequence``: blocks that leave the window join ``older``."""
        old = self.newest_block()
        self.reference = sequence
        new = sequence // self.block_jobs
        if old is None or new == old:
            return
        factor = self.older_weight(new - old + self.window_blocks - 1)
        for stats in self.older.values():
            stats.scale(factor)
        for block in sorted(k for k in self.blocks if new - k >= self.window_blocks):
            weight = self.older_weight(new - block)
            for key, stats in self.blocks.pop(block).items():
                self.older.setdefault(key, CellStats()).add(stats, weight)

    # -- change ----------------------------------------------------------------------------------------

    def forget_change(self) -> None:
        """Drop the cached change (after the statistics were replaced)."""
        self._change = None

    def change(self) -> Change | None:
        """The latest change in the window (cached until something new is learned)."""
        if self._change is None:
            self._change = (find_change(self.older, self.blocks, self.settings),)
        return self._change[0]

    def drifting(self) -> list[Arm]:
        """Arms whose results changed within the window (more than ``drift_z`` standard errors)."""
        change = self.change()
        return [] if change is None else list(change.arms)

    # -- what choices use ------------------------------------------------------------------------------

    def active(self) -> Cells:
        """The statistics choices use: everything, or after a change what is left of it (see above)."""
        change = self.change()
        newest = self.newest_block()
        merged: Cells = {}
        if newest is None:
            return merged
        changed = set(change.arms) if change else set()

        def keep(key: CellKey, block: int) -> float:
            if change is None or block >= change.block:
                return 1.0
            if key[:2] in changed:
                return 0.0
            fade = self.block_jobs / self.settings.change_half_life_jobs
            return float(0.5 ** ((change.block - block) * fade))

        older_block = newest - self.window_blocks
        for block, cells in [*self.blocks.items(), (older_block, self.older)]:
            for key, stats in cells.items():
                factor = keep(key, block)
                if factor > 0:
                    merged.setdefault(key, CellStats()).add(stats, factor)
        return merged

    def arms_since(self, block: int) -> set[Arm]:
        """The arms with a result from ``block`` on."""
        return {key[:2] for k, cells in self.blocks.items() if k >= block for key in cells}

    def arm_weights(self) -> dict[Arm, float]:
        """The weight of the results behind each arm in the statistics choices use."""
        weights: dict[Arm, float] = {}
        for key, stats in self.active().items():
            weights[key[:2]] = weights.get(key[:2], 0.0) + stats.weight
        return weights

    def prune(self, below: float) -> None:
        self.older = {key: cell for key, cell in self.older.items() if cell.weight > below}


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
    residual_df: float  # degrees of freedom of the arm residuals' Student-t prior
    outlier: dict[int, float]  # arm residual -> its precision multiplier (the t prior's scale mixture)
    theta: list[float]
    predicted: list[float]
    variance: float
    mass: list[float]  # per effect: the weight of the results it explains
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
            residual_df=config.residual_df,
            outlier={},
            theta=theta,
            predicted=[sum(theta[e] for e in effects) for effects in cell_effects],
            variance=config.score_sd**2,
            mass=[sum(weight[cell] for cell in cells) for cells in cells_of],
            index=index,
        )

    def sweep(self, rng: random.Random | None) -> None:
        """One pass over every effect, then the noise variance; ``rng=None`` takes conditional means."""
        theta, predicted = self.theta, self.predicted
        weight, total, variance = self.weight, self.total, self.variance
        prior_precision, prior_mean = self.prior_precision, self.prior_mean
        for position, cells in enumerate(self.cells_of):
            current = theta[position]
            residual = 0.0
            for cell in cells:
                residual += total[cell] - weight[cell] * (predicted[cell] - current)
            precision = prior_precision[position] + self.mass[position] / variance
            mean = (prior_precision[position] * prior_mean[position] + residual / variance) / precision
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
        world is factorised (small residuals) or not (residuals as wide as the arms). Arm residuals have
        a Student-t prior (a normal whose precision varies per arm): one arm far from what its category
        and style say is believed once its results show it, instead of being shrunk back."""
        theta, precision, outlier = self.theta, self.prior_precision, self.outlier
        for kind, positions in self.members.items():
            pseudo, prior_variance = self.spread_prior[kind]
            if kind == "arm":
                squares = sum(outlier.get(p, 1.0) * theta[p] ** 2 for p in positions)
            else:
                squares = sum(theta[p] ** 2 for p in positions)
            scale = pseudo * prior_variance + squares
            shape = pseudo + len(positions)
            variance = scale / (2.0 * rng.gammavariate(shape / 2.0, 1.0)) if rng else scale / shape
            if kind != "arm":
                for position in positions:
                    precision[position] = 1.0 / variance
                continue
            df = self.residual_df
            for position in positions:
                rate = (df + theta[position] ** 2 / variance) / 2.0
                outlier[position] = (
                    rng.gammavariate((df + 1.0) / 2.0, 1.0 / rate) if rng else (df + 1.0) / (2.0 * rate)
                )
                precision[position] = outlier[position] / variance

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

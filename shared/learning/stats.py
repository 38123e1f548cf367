"""Sufficient statistics of scores: weight, weighted sum and weighted sum of squares."""

from __future__ import annotations

from dataclasses import dataclass

from shared.learning.observation import CellKey


@dataclass
class CellStats:
    weight: float = 0.0
    total: float = 0.0
    squares: float = 0.0

    @classmethod
    def of(cls, score: float) -> CellStats:
        return cls(1.0, score, score * score)

    def add(self, other: CellStats, factor: float = 1.0) -> None:
        self.weight += factor * other.weight
        self.total += factor * other.total
        self.squares += factor * other.squares

    def scaled(self, factor: float) -> CellStats:
        return CellStats(self.weight * factor, self.total * factor, self.squares * factor)

    @property
    def mean(self) -> float:
        return self.total / self.weight if self.weight > 0 else 0.0

    @property
    def deviations(self) -> float:
        """Sum of squared deviations from the mean."""
        return max(self.squares - self.total**2 / self.weight, 0.0) if self.weight > 0 else 0.0


Cells = dict[CellKey, CellStats]


def merge(into: Cells, cells: Cells, factor: float = 1.0) -> None:
    for key, stats in cells.items():
        into.setdefault(key, CellStats()).add(stats, factor)

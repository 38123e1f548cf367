"""The learner's sufficient statistics: weight, weighted sum and weighted sum of squares per cell."""

from __future__ import annotations

from dataclasses import dataclass

Arm = tuple[str, str]  # (category, style)
CellKey = tuple[str, str, str, str]  # (category, style, language, context)
Cells = dict[CellKey, "CellStats"]


@dataclass
class CellStats:
    """Weight, weighted sum and weighted sum of squares of the scores in one cell."""

    weight: float = 0.0
    total: float = 0.0
    squares: float = 0.0

    def scale(self, factor: float) -> None:
        self.weight *= factor
        self.total *= factor
        self.squares *= factor

    def add(self, other: CellStats, factor: float = 1.0) -> None:
        self.weight += factor * other.weight
        self.total += factor * other.total
        self.squares += factor * other.squares

    @property
    def deviations(self) -> float:
        """Sum of squared deviations from the mean."""
        return max(self.squares - self.total**2 / self.weight, 0.0) if self.weight > 0 else 0.0

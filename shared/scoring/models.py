"""Result models shared by every scorer, and the scorer call signature."""

from __future__ import annotations

from collections.abc import Callable

from pydantic import BaseModel, ConfigDict, Field

from shared.scoring.formats import FormatSpec, Wrapper
from shared.scoring.parsing import ParsedResponse


class FieldScore(BaseModel):
    """Points one section earned, with a reason for every point it lost."""

    model_config = ConfigDict(frozen=True)

    key: str
    label: str
    points: float
    max_points: float
    present: bool
    chars: int
    deductions: list[str] = Field(default_factory=list)


class ScoreResult(BaseModel):
    """A versioned score: ``scorer`` names the algorithm that produced it."""

    model_config = ConfigDict(frozen=True)

    scorer: str
    format: str
    total: int = Field(ge=0, le=100)
    completeness: float = Field(ge=0, le=100)  # weighted share of non-empty sections
    structure: float = Field(ge=0, le=100)  # how well the headers follow the format
    fields: list[FieldScore]
    deductions: list[str] = Field(default_factory=list)
    components: dict[str, float] = Field(default_factory=dict)  # points per component of the total


Scorer = Callable[[str, ParsedResponse, FormatSpec, str, Wrapper | None], ScoreResult]
"""``scorer(text, parsed, fmt, prompt, wrapper) -> ScoreResult``."""


def field_text(parsed: ParsedResponse, key: str) -> str:
    return parsed.fields.get(key, "").strip()


def completeness_percent(parsed: ParsedResponse, fmt: FormatSpec) -> float:
    """Weighted share (0-100) of the format's sections that are non-empty."""
    present = sum(spec.weight for spec in fmt.fields if field_text(parsed, spec.key))
    return present * 100 / fmt.total_weight

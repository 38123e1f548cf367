"""Versioned scorers: a registry, one entry point and a readable breakdown.

``SCORERS`` maps a scorer name to its function; ``"default"`` points at ``syntx-2``. Every
``ScoreResult`` names the scorer that produced it (``"v1"`` or ``"syntx-2"``, never ``"default"``).
"""

from __future__ import annotations

from shared.scoring.formats import FormatSpec, Wrapper
from shared.scoring.models import FieldScore, Scorer, ScoreResult
from shared.scoring.parsing import ParsedResponse
from shared.scoring.syntx2 import SCORER_NAME as DEFAULT_SCORER
from shared.scoring.syntx2 import score_syntx2
from shared.scoring.v1 import score_v1

__all__ = [
    "DEFAULT_SCORER",
    "SCORERS",
    "SCORER_NAMES",
    "FieldScore",
    "ScoreResult",
    "Scorer",
    "render_breakdown",
    "score_response",
]

SCORERS: dict[str, Scorer] = {"v1": score_v1, "syntx-2": score_syntx2, "default": score_syntx2}
SCORER_NAMES = frozenset(SCORERS) - {"default"}  # what a ScoreResult's ``scorer`` says; "default" is an alias


def score_response(
    text: str,
    parsed: ParsedResponse,
    fmt: FormatSpec,
    prompt: str,
    scorer: str = "default",
    *,
    wrapper: Wrapper | None = None,
) -> ScoreResult:
    """Score a parsed answer against ``fmt``; ``wrapper`` (optional) enables the echo check."""
    try:
        function = SCORERS[scorer]
    except KeyError:
        known = ", ".join(sorted(SCORERS))
        raise ValueError(f"unknown scorer {scorer!r} (known: {known})") from None
    return function(text, parsed, fmt, prompt, wrapper)


def _field_rows(result: ScoreResult) -> list[str]:
    names = [f"{field.key} ({field.label})" for field in result.fields]
    width = max([len("section"), *map(len, names)])
    rows = [f"{'section':<{width}} {'points':>6} {'max':>6} {'chars':>6}  notes"]
    for name, field in zip(names, result.fields, strict=True):
        notes = "; ".join(field.deductions) or "ok"
        rows.append(
            f"{name:<{width}} {field.points:>6.1f} {field.max_points:>6.1f} {field.chars:>6}  {notes}"
        )
    return rows


def render_breakdown(result: ScoreResult) -> str:
    """A plain-text table for ``syntx score FILE``."""
    lines = [
        f"scorer {result.scorer}  format {result.format}  total {result.total}/100",
        f"completeness {result.completeness:.1f}%  structure {result.structure:.1f}%",
        "components: " + ", ".join(f"{name} {value:+.1f}" for name, value in result.components.items()),
        "",
        *_field_rows(result),
    ]
    if result.deductions:
        lines += ["", "deductions:", *(f"  - {deduction}" for deduction in result.deductions)]
    return "\n".join(lines)

"""Scorer ``v1``: the original structural score, reproduced (reference §2.7).

* completeness = weighted share of non-empty sections, in percent (the original weights sum to 100);
* structure = for ``hash`` formats the marker ``###``, otherwise the markers ``1.`` … ``N.``; every marker
  found *anywhere* in the raw answer adds ``100 // len(markers)``, capped at 100 (so six sections give 96);
* total = ``int(0.7 * completeness + 0.3 * structure)``.

Only the parser differs from the original (it is robust), so results differ where the original misparsed.
"""

from __future__ import annotations

from shared.scoring.formats import FormatSpec, Wrapper
from shared.scoring.models import FieldScore, ScoreResult, completeness_percent, field_text
from shared.scoring.parsing import ParsedResponse

V1_COMPLETENESS_WEIGHT = 0.7
V1_STRUCTURE_WEIGHT = 0.3


def v1_markers(fmt: FormatSpec) -> list[str]:
    if fmt.layout == "hash":
        return ["###"]
    return [f"{number}." for number in range(1, len(fmt.fields) + 1)]


def _structure(text: str, fmt: FormatSpec) -> tuple[float, list[str]]:
    markers = v1_markers(fmt)
    step = 100 // len(markers)
    missing = [marker for marker in markers if marker not in text]
    structure = min(100, step * (len(markers) - len(missing)))
    deductions = []
    if missing:
        deductions.append(f"structure: marker(s) {', '.join(missing)} not found in the answer")
    if step * len(markers) < 100:
        deductions.append(
            f"structure: {len(markers)} markers x {step} caps structure at {step * len(markers)}"
        )
    return float(structure), deductions


def _field(fmt: FormatSpec, parsed: ParsedResponse, index: int) -> FieldScore:
    spec = fmt.fields[index]
    text = field_text(parsed, spec.key)
    max_points = V1_COMPLETENESS_WEIGHT * 100 * spec.weight / fmt.total_weight
    return FieldScore(
        key=spec.key,
        label=spec.label,
        points=max_points if text else 0.0,
        max_points=max_points,
        present=bool(text),
        chars=len(text),
        deductions=[] if text else [f"missing or empty (-{max_points:.1f})"],
    )


def score_v1(
    text: str, parsed: ParsedResponse, fmt: FormatSpec, prompt: str, wrapper: Wrapper | None
) -> ScoreResult:
    completeness = completeness_percent(parsed, fmt)
    structure, deductions = _structure(text, fmt)
    total = int(V1_COMPLETENESS_WEIGHT * completeness + V1_STRUCTURE_WEIGHT * structure)
    return ScoreResult(
        scorer="v1",
        format=fmt.name,
        total=max(0, min(100, total)),
        completeness=completeness,
        structure=structure,
        fields=[_field(fmt, parsed, index) for index in range(len(fmt.fields))],
        deductions=deductions,
        components={
            "completeness": V1_COMPLETENESS_WEIGHT * completeness,
            "structure": V1_STRUCTURE_WEIGHT * structure,
        },
    )

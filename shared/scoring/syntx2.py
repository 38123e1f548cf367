"""Scorer ``syntx-2`` (the default): completeness, structure, depth and relevance minus penalties.

Points out of 100 (``WEIGHTS``): completeness 35 and depth 30 are split over the sections by their
format weight; structure 15 and relevance 20 are global. Penalties are subtracted afterwards. Every lost
point is explained, per section in ``FieldScore.deductions`` or globally in ``ScoreResult.deductions``.

* depth of a section: 0 → ``DEPTH_AT_MIN`` linearly up to ``min_chars``, then up to 1.0 at ``ideal_chars``;
* structure (0-100): minus the share of missing headers, ``ORDER_PENALTY`` if out of order,
  ``DUPLICATE_PENALTY`` per duplicated section, ``LAYOUT_PENALTY`` × share of headers not in the layout;
* relevance: share of the prompt's content words found in the answer, full credit from
  ``RELEVANCE_FULL_SHARE``, counted only for the present share of sections;
* penalties: repeated sentences, sentences copied from the wrapper, answer not in the format's language.
"""

from __future__ import annotations

from shared.scoring.formats import FieldSpec, FormatSpec, Wrapper
from shared.scoring.models import FieldScore, ScoreResult, completeness_percent, field_text
from shared.scoring.parsing import ParsedResponse
from shared.scoring.text import echo_share, language_share, relevance, repetition_share

SCORER_NAME = "syntx-2"
WEIGHTS = {"completeness": 35.0, "depth": 30.0, "structure": 15.0, "relevance": 20.0}
DEPTH_AT_MIN = 0.6
ORDER_PENALTY = 20.0
DUPLICATE_PENALTY = 10.0
MAX_DUPLICATE_PENALTY = 30.0
LAYOUT_PENALTY = 20.0
RELEVANCE_FULL_SHARE = 0.25
REPETITION_FREE_SHARE, REPETITION_FULL_SHARE, REPETITION_PENALTY = 0.1, 0.5, 40.0
ECHO_FREE_SHARE, ECHO_FULL_SHARE, ECHO_PENALTY = 0.05, 0.3, 30.0
LANGUAGE_MIN_SHARE, LANGUAGE_PENALTY = 0.35, 30.0


def depth_ratio(chars: int, spec: FieldSpec) -> float:
    if chars >= spec.ideal_chars:
        return 1.0
    if chars >= spec.min_chars:
        span = spec.ideal_chars - spec.min_chars
        return DEPTH_AT_MIN + (1 - DEPTH_AT_MIN) * (chars - spec.min_chars) / span
    return DEPTH_AT_MIN * chars / spec.min_chars


def _field(spec: FieldSpec, text: str, share: float) -> FieldScore:
    max_presence, max_depth = WEIGHTS["completeness"] * share, WEIGHTS["depth"] * share
    max_points = max_presence + max_depth
    if not text:
        return FieldScore(
            key=spec.key,
            label=spec.label,
            points=0.0,
            max_points=max_points,
            present=False,
            chars=0,
            deductions=[f"missing (-{max_points:.1f})"],
        )
    depth = depth_ratio(len(text), spec)
    deductions = []
    if depth < 1:
        deductions.append(
            f"thin: {len(text)} chars, expected at least {spec.min_chars} and ideally {spec.ideal_chars} "
            f"(-{max_depth * (1 - depth):.1f})"
        )
    points = max_presence + max_depth * depth
    return FieldScore(
        key=spec.key,
        label=spec.label,
        points=points,
        max_points=max_points,
        present=True,
        chars=len(text),
        deductions=deductions,
    )


def _structure(parsed: ParsedResponse, fmt: FormatSpec) -> tuple[float, list[str]]:
    """Structure 0-100 and its deductions (as structure percentage points)."""
    found = list(dict.fromkeys(hit.key for hit in parsed.found_headers if hit.key in fmt.keys))
    losses: list[tuple[float, str]] = []
    missing = [key for key in fmt.keys if key not in found]
    if missing:
        losses.append((100 * len(missing) / len(fmt.keys), f"header(s) not found: {', '.join(missing)}"))
    if found and found != [key for key in fmt.keys if key in found]:
        losses.append((ORDER_PENALTY, "sections are not in the format's order"))
    if parsed.duplicates:
        penalty = min(MAX_DUPLICATE_PENALTY, DUPLICATE_PENALTY * len(parsed.duplicates))
        losses.append((penalty, f"duplicated section(s) ignored: {', '.join(parsed.duplicates)}"))
    wanted = "hash" if fmt.layout == "hash" else "numbered"
    firsts = {hit.key: hit for hit in reversed(parsed.found_headers)}
    off = [key for key, hit in firsts.items() if hit.style != wanted]
    if found and off:
        example = fmt.header_line(0)
        losses.append((LAYOUT_PENALTY * len(off) / len(found), f"headers not written like '{example}'"))
    structure = max(0.0, 100 - sum(loss for loss, _ in losses))
    scale = WEIGHTS["structure"] / 100
    return structure, [f"structure: {reason} (-{loss * scale:.1f})" for loss, reason in losses]


def _relevance(prompt: str, answer: str, present: float) -> tuple[float, list[str]]:
    found = relevance(prompt, answer)
    ratio = 1.0 if found is None else min(1.0, found.share / RELEVANCE_FULL_SHARE)
    points = WEIGHTS["relevance"] * ratio * present
    lost = WEIGHTS["relevance"] - points
    if lost < 0.05:
        return points, []
    reasons = []
    if found is not None and ratio < 1:
        reasons.append(
            f"{found.matched} of {found.total} content words of the prompt occur in the answer "
            f"(full credit from {RELEVANCE_FULL_SHARE:.0%}; not found e.g. {', '.join(found.missing_sample)})"
        )
    if present < 1:
        reasons.append(f"only counted for the {present:.0%} of sections present")
    return points, [f"relevance: {'; '.join(reasons)} (-{lost:.1f})"]


def _scaled(share: float, free: float, full: float, penalty: float) -> float:
    return 0.0 if share <= free else penalty * min(1.0, (share - free) / (full - free))


def _repetition(answer: str) -> tuple[float, str]:
    share, repeats = repetition_share(answer)
    points = _scaled(share, REPETITION_FREE_SHARE, REPETITION_FULL_SHARE, REPETITION_PENALTY)
    return points, f"repetition: {repeats} repeated sentence(s), {share:.0%} of all sentences"


def _echo(answer: str, fmt: FormatSpec, wrapper: Wrapper | None) -> tuple[float, str]:
    if wrapper is None:
        return 0.0, ""
    share, count = echo_share(answer, wrapper.template, fmt.header_lines())
    points = _scaled(share, ECHO_FREE_SHARE, ECHO_FULL_SHARE, ECHO_PENALTY)
    return points, f"echo: {count} sentence(s) copied from the wrapper instructions ({share:.0%} of the text)"


def _language(answer: str, fmt: FormatSpec) -> tuple[float, str]:
    judged = language_share(answer, fmt.language)
    if judged is None or judged[0] >= LANGUAGE_MIN_SHARE:
        return 0.0, ""
    share, hits = judged
    return LANGUAGE_PENALTY, f"language: only {share:.0%} of {hits} function words are {fmt.language!r}"


def _penalties(answer: str, fmt: FormatSpec, wrapper: Wrapper | None) -> tuple[float, list[str]]:
    found = [_repetition(answer), _echo(answer, fmt, wrapper), _language(answer, fmt)]
    kept = [(points, reason) for points, reason in found if points > 0]
    return sum(points for points, _ in kept), [f"{reason} (-{points:.1f})" for points, reason in kept]


def _empty(fmt: FormatSpec, reason: str) -> ScoreResult:
    fields = [_field(spec, "", spec.weight / fmt.total_weight) for spec in fmt.fields]
    return ScoreResult(
        scorer=SCORER_NAME,
        format=fmt.name,
        total=0,
        completeness=0.0,
        structure=0.0,
        fields=fields,
        deductions=[reason],
        components=dict.fromkeys(WEIGHTS, 0.0),
    )


def score_syntx2(
    text: str, parsed: ParsedResponse, fmt: FormatSpec, prompt: str, wrapper: Wrapper | None
) -> ScoreResult:
    if not text.strip():
        return _empty(fmt, "empty answer (-100)")
    texts = {spec.key: field_text(parsed, spec.key) for spec in fmt.fields}
    if not any(texts.values()):
        return _empty(fmt, f"no section of format {fmt.name!r} found (-100)")
    fields = [_field(spec, texts[spec.key], spec.weight / fmt.total_weight) for spec in fmt.fields]
    completeness = completeness_percent(parsed, fmt)
    structure, deductions = _structure(parsed, fmt)
    answer = "\n".join(value for value in texts.values() if value)
    relevance_points, relevance_notes = _relevance(prompt, answer, completeness / 100)
    penalty, penalty_notes = _penalties(answer, fmt, wrapper)
    if parsed.format is not None and parsed.format != fmt.name:
        deductions.insert(0, f"format: the answer looks like {parsed.format!r}, expected {fmt.name!r}")
    components = {
        "completeness": WEIGHTS["completeness"] * completeness / 100,
        "depth": sum(score.points for score in fields) - WEIGHTS["completeness"] * completeness / 100,
        "structure": WEIGHTS["structure"] * structure / 100,
        "relevance": relevance_points,
        "penalties": -penalty,
    }
    total = round(sum(components.values()))
    return ScoreResult(
        scorer=SCORER_NAME,
        format=fmt.name,
        total=max(0, min(100, total)),
        completeness=completeness,
        structure=structure,
        fields=fields,
        deductions=[*deductions, *relevance_notes, *penalty_notes],
        components=components,
    )

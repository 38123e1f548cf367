"""Parse an LLM answer into the named sections of a format.

Header detection is structural: a line is a section header when, at its start, it carries an optional
marker (``#``/``##``/``###``, ``**``/``__``, ``N.``/``N)``) followed by one of the format's labels or
aliases (any case, umlauts or ``ae``/``oe``/``ue``/``ss`` or plain vowels) and then a colon, a closing
marker or the end of the line. The format whose headers occur most wins; a stray word inside a body never
counts. Text after the last header belongs to the last section; text before the first is the preamble.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict

from shared.scoring.formats import FormatSpec

HeaderStyle = Literal["hash", "numbered", "bold", "plain"]

_CHAR_VARIANTS = {
    "ä": "(?:ä|ae|a)",
    "ö": "(?:ö|oe|o)",
    "ü": "(?:ü|ue|u)",
    "ß": "(?:ß|ss)",
    "σ": "(?:σ|sigma)?",
}
_SEPARATORS = " -_–"
_PREFIX = (
    r"^[ \t]*(?P<hash>\#{1,6}[ \t]*)?(?P<bold>(?:\*\*|__)[ \t]*)?"
    r"(?:(?P<num>\d{1,2})[ \t]*[.)][ \t]*)?(?P<bold2>(?:\*\*|__)[ \t]*)?"
)
_SUFFIX = (
    r"(?![^\W_])[ \t]*(?:\([^)\n]{0,40}\))?[ \t]*(?P<close>\*\*|__)?[ \t]*"
    r"(?P<sep>:|[-–—](?=[ \t]|$))?[ \t]*(?:\*\*|__)?[ \t]*(?P<rest>.*)$"
)
_GROUP = "field_"  # regex group name prefix, so that field keys cannot clash with the marker groups
_HORIZONTAL_RULE = re.compile(r"^[ \t]*([-*_=])(?:[ \t]*\1){2,}[ \t]*$")
REGEXES_KEPT = 256  # compiled header regexes kept: more formats than any catalog has
_regexes: dict[int, tuple[FormatSpec, re.Pattern[str]]] = {}  # id of a format -> (it, its regex)


class HeaderHit(BaseModel):
    """One header line recognised for the chosen format."""

    model_config = ConfigDict(frozen=True)

    key: str
    line: int  # 1-based line number in the answer
    style: HeaderStyle
    number: int | None = None
    inline: bool = False  # the body starts on the header line itself


class ParsedResponse(BaseModel):
    """The sections of one answer; ``fields`` has every key of ``format`` ('' when missing)."""

    model_config = ConfigDict(frozen=True)

    format: str | None
    fields: dict[str, str]
    found_headers: list[HeaderHit]
    duplicates: list[str]
    preamble: str
    problems: list[str]
    candidates: dict[str, int]  # distinct headers found per format (detection evidence)

    @property
    def missing(self) -> list[str]:
        return [key for key, value in self.fields.items() if not value]


def _label_pattern(label: str) -> str:
    parts: list[str] = []
    for char in label.strip().lower():
        if char in _SEPARATORS:
            if parts[-1:] != [r"[ \t\-_–]*"]:
                parts.append(r"[ \t\-_–]*")
        else:
            parts.append(_CHAR_VARIANTS.get(char, re.escape(char)))
    return "".join(parts)


def _field_pattern(labels: list[str]) -> str:
    patterns = {_label_pattern(label) for label in labels if label.strip()}
    return "|".join(sorted(patterns, key=lambda pattern: (-len(pattern), pattern)))


def header_regex(fmt: FormatSpec) -> re.Pattern[str]:
    """One regex per format: an optional marker, then one named group per field key. Remembered per
    format object, not by value: hashing a format model (all its fields) cost more than a line's match."""
    known = _regexes.get(id(fmt))
    if known is not None and known[0] is fmt:
        return known[1]
    if len(_regexes) >= REGEXES_KEPT:
        _regexes.clear()
    groups = "|".join(
        f"(?P<{_GROUP}{spec.key}>{_field_pattern([spec.label, *spec.aliases])})" for spec in fmt.fields
    )
    regex = re.compile(f"{_PREFIX}(?:{groups}){_SUFFIX}", re.IGNORECASE)
    _regexes[id(fmt)] = (fmt, regex)  # holding the format keeps its id from being reused meanwhile
    return regex


def _style(match: re.Match[str]) -> HeaderStyle:
    if match.group("num"):
        return "numbered"
    if match.group("hash"):
        return "hash"
    return "bold" if match.group("bold") or match.group("bold2") else "plain"


def _match_header(
    line: str, fmt: FormatSpec, regex: re.Pattern[str], number: int
) -> tuple[HeaderHit, str] | None:
    match = regex.match(line)
    if match is None:
        return None
    rest = match.group("rest").strip()
    strong = match.group("hash") or match.group("bold") or match.group("bold2") or match.group("close")
    if not (strong or match.group("sep") or not rest):
        return None  # e.g. "1. Drift der Werte ..." inside a body: a label word, not a header
    key = next(spec.key for spec in fmt.fields if match.group(_GROUP + spec.key) is not None)
    num = int(match.group("num")) if match.group("num") else None
    hit = HeaderHit(key=key, line=number, style=_style(match), number=num, inline=bool(rest))
    return hit, rest


def _scan(lines: list[str], fmt: FormatSpec) -> list[tuple[int, HeaderHit, str]]:
    hits = []
    regex = header_regex(fmt)  # looked up once per answer, not per line
    for index, line in enumerate(lines):
        found = _match_header(line, fmt, regex, index + 1)
        if found is not None:
            hits.append((index, *found))
    return hits


def _choose(counts: dict[str, int], formats: Mapping[str, FormatSpec], expected: str | None) -> str | None:
    best = max(counts.values(), default=0)
    if best == 0:
        return expected if expected in formats else None
    if expected is not None and counts.get(expected, 0) == best:
        return expected
    ranked = sorted(counts, key=lambda name: (-counts[name], -counts[name] / len(formats[name].fields)))
    return ranked[0]


def _clean_body(parts: list[str]) -> str:
    lines = list(parts)
    while lines and (not lines[-1].strip() or _HORIZONTAL_RULE.match(lines[-1])):
        lines.pop()
    return "\n".join(line.rstrip() for line in lines).strip()


def _sections(
    lines: list[str], hits: list[tuple[int, HeaderHit, str]], fmt: FormatSpec
) -> tuple[dict[str, str], list[str]]:
    fields = dict.fromkeys(fmt.keys, "")
    seen: set[str] = set()
    duplicates: list[str] = []
    for position, (index, hit, rest) in enumerate(hits):
        end = hits[position + 1][0] if position + 1 < len(hits) else len(lines)
        if hit.key in seen:
            duplicates.append(hit.key)
            continue
        seen.add(hit.key)
        fields[hit.key] = _clean_body([rest, *lines[index + 1 : end]])
    return fields, duplicates


def _problems(
    fmt: FormatSpec, fields: dict[str, str], duplicates: list[str], expected: str | None, hits: int
) -> list[str]:
    problems = []
    if hits == 0:
        problems.append(f"no section header of format {fmt.name!r} found")
    if expected is not None and expected != fmt.name:
        problems.append(f"answer has the layout of format {fmt.name!r}, not the expected {expected!r}")
    for spec in fmt.fields:
        if not fields[spec.key]:
            problems.append(f"section {spec.key!r} ({spec.label}) is missing or empty")
    problems.extend(f"section {key!r} appears more than once; the first one is kept" for key in duplicates)
    return problems


def parse_response(
    text: str, formats: Mapping[str, FormatSpec], expected: str | None = None
) -> ParsedResponse:
    """Detect the answer's format by its headers and split it into that format's fields.

    The format with the most distinct headers wins; ``expected`` wins a tie and is used when no
    format's headers occur at all. Without any match and without ``expected`` the format is ``None``.
    """
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    scans = {name: _scan(lines, fmt) for name, fmt in formats.items()}
    counts = {name: len({hit.key for _, hit, _ in found}) for name, found in scans.items()}
    chosen = _choose(counts, formats, expected)
    if not text.strip() or chosen is None:
        problem = "empty answer" if not text.strip() else "no known section headers found"
        empty = dict.fromkeys(formats[chosen].keys, "") if chosen else {}
        return ParsedResponse(
            format=chosen,
            fields=empty,
            found_headers=[],
            duplicates=[],
            preamble=text.strip(),
            problems=[problem],
            candidates=counts,
        )
    fmt = formats[chosen]
    hits = scans[chosen]
    fields, duplicates = _sections(lines, hits, fmt)
    preamble = _clean_body(lines[: hits[0][0]]) if hits else _clean_body(lines)
    return ParsedResponse(
        format=chosen,
        fields=fields,
        found_headers=[hit for _, hit, _ in hits],
        duplicates=duplicates,
        preamble=preamble,
        problems=_problems(fmt, fields, duplicates, expected, len(hits)),
        candidates=counts,
    )

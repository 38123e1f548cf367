"""``data/logs/evolution.jsonl``: one compact line per producer generation, and how to read it back.

A line says when the generation ran, how many jobs it produced and for which arms (``jobs``: arm →
count, so the shares are exact and add up over generations), how many new results it learned, their
mean score and its spread, which arms it favours, which memory the learner uses, and what changed since
the generation before (arms that entered or left the favoured ones, arms whose recent scores drift).
Lines of older producers (a ``timestamp`` and per-arm summaries) still read: their ``jobs`` are unknown
(empty). Reading is bounded: a line over ``MAX_LINE_BYTES`` or that is not a generation record is
skipped. :func:`take_window` gathers the newest whole generations holding a number of produced jobs.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError

EVOLUTION_LOG = "evolution.jsonl"
MAX_LINE_BYTES = 64 * 1024
TAIL_BYTES = 4 * MAX_LINE_BYTES  # the last readable line is within this much of the end

Memory = Literal["long", "short"]


class Changed(BaseModel):
    """What changed since the generation before; empty lists are left out of the line."""

    model_config = ConfigDict(frozen=True, extra="ignore")
    favoured_in: list[str] = Field(default_factory=list)
    favoured_out: list[str] = Field(default_factory=list)
    drifting: list[str] = Field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.favoured_in or self.favoured_out or self.drifting)


class GenerationLine(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")
    generation: int = Field(ge=1)
    time: datetime = Field(validation_alias=AliasChoices("time", "timestamp"))
    produced: int = Field(0, ge=0)
    learned: int = Field(0, ge=0, validation_alias=AliasChoices("learned", "learned_new"))
    mean_score: float | None = Field(None, ge=0, le=100)
    score_sd: float | None = Field(None, ge=0, le=100)  # of the results learned
    jobs: dict[str, int] = Field(default_factory=dict)
    favoured: list[str] = Field(default_factory=list)
    memory: Memory = "long"
    changed: Changed = Field(default_factory=Changed)

    def to_line(self) -> str:
        document = self.model_dump(mode="json", exclude_defaults=True)
        document.update(generation=self.generation, produced=self.produced)  # always there
        return json.dumps(document, ensure_ascii=False, separators=(",", ":"))


def append_generation(path: Path, line: GenerationLine) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as handle:
        handle.write(line.to_line() + "\n")


def parse_line(raw: bytes) -> GenerationLine | None:
    """A generation record, or None for a line that is not one (too long, not JSON, wrong fields)."""
    if len(raw) > MAX_LINE_BYTES:
        return None
    try:
        return GenerationLine.model_validate_json(raw)
    except ValidationError:
        return None


def read_generations(path: Path) -> Iterator[GenerationLine]:
    """Every readable generation record, in file order (streamed; unreadable lines skipped)."""
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        return
    with handle:
        for raw in handle:
            line = parse_line(raw.rstrip(b"\r\n"))
            if line is not None:
                yield line


def last_generation(path: Path) -> int:
    """The generation number of the log's last readable line; 0 when there is none (reads the tail only)."""
    try:
        with path.open("rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(0, size - TAIL_BYTES))
            tail = handle.read()
    except FileNotFoundError:
        return 0
    for raw in reversed(tail.splitlines()):
        number = _generation_of(raw)
        if number is not None:
            return number
    return 0


def _generation_of(raw: bytes) -> int | None:
    if len(raw) > MAX_LINE_BYTES:
        return None
    try:
        value = json.loads(raw).get("generation")
    except (UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        return None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


@dataclass(frozen=True)
class Window:
    """Whole generations, newest first, until they hold at least the wanted number of produced jobs."""

    jobs: Counter[str]
    first: int | None
    last: int | None

    @property
    def total(self) -> int:
        return self.jobs.total()

    def share(self, arm: str) -> float | None:
        return self.jobs[arm] / self.total if self.total else None


def take_window(generations: list[GenerationLine], jobs: int) -> tuple[Window, list[GenerationLine]]:
    """The newest whole generations holding at least ``jobs`` produced jobs, and the older ones."""
    counted: Counter[str] = Counter()
    position = len(generations)
    while position > 0 and counted.total() < jobs:
        position -= 1
        counted.update(generations[position].jobs)
    taken = generations[position:]
    first = taken[0].generation if taken else None
    last = taken[-1].generation if taken else None
    return Window(counted, first, last), generations[:position]

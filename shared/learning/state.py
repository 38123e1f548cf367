"""The learner's checkpoint as typed records: written and read as one pydantic model, versioned.

``data/state/learner.json`` holds the learner's statistics and the ids it learned inside its horizon
(:class:`LearnerState`), the next job sequence number, ``scan_from`` (every result of a job with an id
from there on may be newer than the checkpoint: its job was in flight) and what the learner believed at
that moment (:class:`Estimates`: what ``syntx learning`` shows, so the command never samples again). A
checkpoint of another version, or one that does not validate, is not used: the producer rebuilds the
learner from the result files.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.learning.stats import Cells, CellStats
from shared.queue import FileQueue

log = logging.getLogger(__name__)
CHECKPOINT_VERSION: Literal[2] = 2  # 1: the producer's own learner (a hand-written document); 2: this
MAX_CHECKPOINT_BYTES = 64 * 1024 * 1024  # ids within the horizon (~22,000) and statistics: a few MB at most

Memory = Literal["long", "short"]


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CellRow(_Record):
    category: str
    style: str
    language: str
    context: str
    weight: float = Field(ge=0)
    total: float
    squares: float = Field(ge=0)


class BlockRow(_Record):
    block: int
    cells: list[CellRow]


class LearnerState(_Record):
    """What the learner learned: enough to continue exactly where it stopped."""

    reference: int | None  # the newest sequence number learned
    observed: int = Field(ge=0)
    blocks: list[BlockRow]  # inside the window, at full weight
    older: list[CellRow]  # before the window, discounted to the newest block
    learned: dict[str, int]  # job id -> sequence, inside the horizon (a replay changes nothing)
    owed: dict[str, float]  # arm -> jobs owed after a change
    checked_change: int | None  # the change (block) whose untried arms were owed a job
    refused: dict[str, int]  # why results were not learned -> how many


class ArmEstimate(_Record):
    arm: str
    results: float = Field(ge=0)  # the weight of the results behind it in the memory in use
    mean: float  # its mean score in the usual language and context
    sd: float = Field(ge=0)
    chance_best: float = Field(ge=0, le=1)  # the posterior probability that it is the best arm
    favoured: bool


class Estimates(_Record):
    """What the learner believed when the checkpoint was written."""

    arms: list[ArmEstimate]  # best estimate first
    effects: dict[str, dict[str, float]]  # kind -> name -> score points against the mean of its kind
    noise_sd: float = Field(ge=0)  # the spread of one score around its arm's mean, pooled
    memory: Memory
    changed: list[str]  # arms whose scores changed (memory short)


class Checkpoint(_Record):
    version: Literal[2] = CHECKPOINT_VERSION
    next_sequence: int = Field(ge=0)
    scan_from: str | None
    learner: LearnerState
    estimates: Estimates | None = None


def rows_of(cells: Cells) -> list[CellRow]:
    return [
        CellRow(
            category=c, style=s, language=lang, context=ctx, weight=v.weight, total=v.total, squares=v.squares
        )
        for (c, s, lang, ctx), v in sorted(cells.items())
    ]


def cells_of(rows: list[CellRow]) -> Cells:
    return {
        (row.category, row.style, row.language, row.context): CellStats(row.weight, row.total, row.squares)
        for row in rows
    }


class CheckpointError(Exception):
    """The checkpoint exists but cannot be used (the message says why)."""


def read_checkpoint(path: Path) -> Checkpoint:
    """The checkpoint; FileNotFoundError when there is none, CheckpointError when it is unusable."""
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_CHECKPOINT_BYTES + 1)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise CheckpointError(exc.strerror or str(exc)) from exc
    if len(raw) > MAX_CHECKPOINT_BYTES:
        raise CheckpointError(f"larger than {MAX_CHECKPOINT_BYTES} bytes")
    try:
        return Checkpoint.model_validate_json(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "document"
        raise CheckpointError(f"{where}: {first['msg']}") from None


def load_checkpoint(path: Path) -> Checkpoint | None:
    """The checkpoint, or None when there is none or it cannot be used (then the caller rebuilds)."""
    try:
        return read_checkpoint(path)
    except FileNotFoundError:
        return None
    except CheckpointError as exc:
        log.warning("learner checkpoint %s unusable (%s); rebuilding from the result files", path, exc)
        return None


def save_checkpoint(queue: FileQueue, path: Path, checkpoint: Checkpoint) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    queue.write_atomic(path, checkpoint.model_dump_json().encode("utf-8"))

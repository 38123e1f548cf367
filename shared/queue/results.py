"""The result record: one JSON file per job holding everything about how it ended.

A result is written as a :class:`JobResult` and read back as one, through :meth:`JobResult.load`: a
bounded read, strict validation, and one error, :class:`ResultFileError`, whose ``reason`` says
precisely why a file in a result folder is not a result this system wrote (and so is not trusted).
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final, Literal, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_serializer,
    model_validator,
)
from pydantic_core import ErrorDetails, PydanticCustomError

from shared.queue.faults import FileFault, file_fault
from shared.queue.folders import ERROR, PROCESSED, RESULT_SUFFIX, ResultFolder
from shared.queue.intake import Quarantined, UnreadableFile, quarantine, read_bounded
from shared.queue.jobfile import Job, JobMeta
from shared.queue.store import FileQueue
from shared.scoring import SCORER_NAMES, ParsedResponse, ScoreResult
from shared.timing import utc_now

Status = Literal["passed", "rejected", "failed", "malformed"]
SCORED: Final = ("passed", "rejected")

ResultProblem = Literal[
    "unreadable",
    "too_large",
    "not_json",
    "not_a_result",
    "invalid_field",
    "score_out_of_range",
    "unknown_status",
    "unknown_scorer",
    "job_id_mismatch",
]
RESULT_PROBLEMS: Final[tuple[ResultProblem, ...]] = get_args(ResultProblem)
BOUND_ERRORS: Final = ("greater_than_equal", "less_than_equal", "greater_than", "less_than")
SHOWN_INPUT_CHARS: Final = 60


class ResultFileError(ValueError):
    """A file in a result folder that is not a valid result; ``reason`` is one of ``RESULT_PROBLEMS``."""

    def __init__(self, path: Path, reason: ResultProblem, detail: str) -> None:
        super().__init__(detail)
        self.path = path
        self.reason: ResultProblem = reason
        self.detail = detail


class Attempt(BaseModel):
    model_config = ConfigDict(frozen=True)
    number: int = Field(ge=1)
    owner: str
    started_at: datetime
    finished_at: datetime
    llm_seconds: float = Field(0.0, ge=0)
    outcome: Literal["answered", "backend_error", "lease_expired"]
    error: str | None = None
    retryable: bool = False


class JobResult(BaseModel):
    model_config = ConfigDict(frozen=True)
    version: Literal[1] = 1
    job_id: str
    status: Status
    reason: str
    wrapper: str | None = None
    format: str | None = None
    backend: str | None = None
    model: str | None = None
    prompt: str | None = None
    meta: JobMeta = JobMeta()
    response: str | None = None
    truncated: bool = False
    fields: dict[str, str] = Field(default_factory=dict)
    parse_problems: list[str] = Field(default_factory=list)
    score: ScoreResult | None = None
    threshold: int | None = Field(None, ge=0, le=100)
    scorer: str | None = None
    attempts: list[Attempt] = Field(default_factory=list)
    created_at: datetime | None = None
    finished_at: datetime = Field(default_factory=utc_now)
    llm_seconds: float = Field(0.0, ge=0)
    total_seconds: float = Field(0.0, ge=0)

    @model_validator(mode="after")
    def _scored_by_a_known_scorer(self) -> JobResult:
        """A passed or rejected job carries its score, and every scorer named is one this system has."""
        named = [name for name in (self.scorer, self.score.scorer if self.score else None) if name]
        unknown = sorted(set(named) - SCORER_NAMES)
        if unknown:
            raise PydanticCustomError("unknown_scorer", "scorer {names} is unknown", {"names": unknown})
        if self.status in SCORED and self.score is None:
            raise PydanticCustomError(
                "unknown_scorer", "a {status} result without a score", {"status": self.status}
            )
        return self

    @field_serializer("meta")
    def _meta_as_given(self, meta: JobMeta) -> dict[str, Any]:
        """What the job said about itself, without the fields it left out (as its header has them)."""
        return meta.model_dump(mode="json", exclude_none=True)

    @property
    def folder(self) -> ResultFolder:
        return PROCESSED if self.status == "passed" else ERROR

    def encoded(self) -> bytes:
        """The bytes of the result file."""
        return self.model_dump_json(indent=1).encode()

    @classmethod
    def load(cls, path: Path, *, max_bytes: int) -> JobResult:
        """Read a result file of the queue: at most ``max_bytes``, never through a symlink, strictly
        validated, and its job id must be its file name. Raises :class:`ResultFileError` (and
        ``FileNotFoundError`` for a file that is gone)."""
        result = cls.decode(path, _read_bounded(path, max_bytes, follow_symlinks=False))
        expected = path.name.removesuffix(RESULT_SUFFIX)
        if result.job_id != expected:
            raise ResultFileError(
                path, "job_id_mismatch", f"job id {_shown(result.job_id)} does not match the file name"
            )
        return result

    @classmethod
    def load_copy(cls, path: Path, *, max_bytes: int) -> JobResult:
        """A result an operator names (a copy under any name, a symlink): checked like :meth:`load`,
        except the file name."""
        return cls.decode(path, _read_bounded(path, max_bytes, follow_symlinks=True))

    @classmethod
    def decode(cls, path: Path, data: bytes) -> JobResult:
        try:
            return cls.model_validate_json(data, strict=True)
        except ValidationError as exc:
            raise _refusal(path, exc.errors()[0]) from None


def _read_bounded(path: Path, max_bytes: int, *, follow_symlinks: bool) -> bytes:
    flags = os.O_RDONLY | os.O_NONBLOCK | (0 if follow_symlinks else getattr(os, "O_NOFOLLOW", 0))
    try:
        descriptor = os.open(path, flags)
    except FileNotFoundError:
        raise
    except OSError as exc:
        cause = "it is a symbolic link" if exc.errno == errno.ELOOP and not follow_symlinks else exc.strerror
        raise ResultFileError(path, "unreadable", f"result file cannot be read: {cause}") from None
    try:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            raise ResultFileError(path, "unreadable", "result file is not a regular file")
        data = _read_at_most(descriptor, max_bytes + 1)
    finally:
        os.close(descriptor)
    if len(data) > max_bytes:
        raise ResultFileError(path, "too_large", f"result file is larger than {max_bytes} bytes")
    return data


def _read_at_most(descriptor: int, limit: int) -> bytes:
    chunks: list[bytes] = []
    while limit > 0 and (chunk := os.read(descriptor, limit)):
        chunks.append(chunk)
        limit -= len(chunk)
    return b"".join(chunks)


def _refusal(path: Path, error: ErrorDetails) -> ResultFileError:
    kind, where = error["type"], ".".join(str(part) for part in error["loc"])
    if kind == "json_invalid":
        cause = (error.get("ctx") or {}).get("error", error["msg"])
        return ResultFileError(path, "not_json", f"result file is not valid JSON: {cause}")
    if kind == "unknown_scorer":
        return ResultFileError(path, "unknown_scorer", f"no known scorer: {error['msg']}")
    shown = f"{where} = {_shown(error['input'])}"
    if where == "status" and kind == "literal_error":
        return ResultFileError(path, "unknown_status", f"unknown status: {shown}")
    if where.startswith("score.") and kind in BOUND_ERRORS:
        return ResultFileError(path, "score_out_of_range", f"score outside 0..100: {shown}")
    if not where or kind == "missing" or where == "version":
        return ResultFileError(path, "not_a_result", f"not a result: {where or 'the file'}: {error['msg']}")
    return ResultFileError(path, "invalid_field", f"invalid field: {shown}: {error['msg']}")


def _shown(value: object) -> str:
    """A value for a log line or a note: one line, bounded."""
    text = repr(value)
    return text if len(text) <= SHOWN_INPUT_CHARS else text[: SHOWN_INPUT_CHARS - 1] + "…"


COUNTED_OUTCOMES = ("backend_error", "lease_expired")
MAX_HISTORY_BYTES: Final = 16 * 1024 * 1024  # ~50,000 attempts; a longer history is not one we wrote
_HISTORY: TypeAdapter[list[Attempt]] = TypeAdapter(list[Attempt])


@dataclass(frozen=True)
class History:
    """A job's attempts so far; ``quarantined`` when its file was broken and moved aside."""

    attempts: list[Attempt]
    quarantined: Quarantined | None = None


def load_history(queue: FileQueue, job_id: str) -> History:
    """The attempts of ``job_id`` from ``attempts/<id>.json``.

    A file that is not a list of valid attempts (wrong types, not JSON, too big, not a regular file)
    is moved to ``quarantine/`` with a note and the history counts as empty: the job goes on (one that
    cannot be moved stays, and is replaced by the next history written). :class:`QueueFault` when the
    queue cannot be read or written.
    """
    path = queue.attempts_file(job_id)
    try:  # no context manager: most jobs have no history, and this runs for every one
        return History(_HISTORY.validate_json(read_bounded(path, MAX_HISTORY_BYTES)))
    except FileNotFoundError:
        return History([])
    except OSError as error:
        why = str(file_fault("read the attempt history", path, error))
    except UnreadableFile as exc:
        why = str(exc)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(step) for step in first["loc"]) or "top level"
        why = f"{where}: {first['msg']}"
    detail = f"attempt history unreadable ({why}); counted as empty"
    try:
        return History([], quarantine(queue, Path(path), "bad_attempts", detail))
    except FileFault:
        return History([])


def counted_failures(attempts: list[Attempt]) -> int:
    """Attempts that count towards ``max_attempts``: a backend that refused the job, a crashed holder.

    A backend that was down does not count: the job waited, it did not fail.
    """
    return sum(1 for attempt in attempts if attempt.outcome in COUNTED_OUTCOMES and not attempt.retryable)


def scored_status(score: int, threshold: int) -> tuple[Status, str]:
    if score >= threshold:
        return "passed", f"score {score} >= threshold {threshold}"
    return "rejected", f"score {score} < threshold {threshold}"


def describe_parse(parsed: ParsedResponse) -> list[str]:
    problems = list(parsed.problems)
    problems.extend(f"duplicated section: {key}" for key in parsed.duplicates)
    return problems


def job_meta(job: Job | None) -> JobMeta:
    return job.meta if job else JobMeta()

"""``syntx results`` and ``syntx show``: the results on disk — ``processed/``, ``error/`` and every day
folder of the archive — read as typed records."""

from __future__ import annotations

import heapq
import json
from dataclasses import dataclass
from datetime import UTC, datetime, time
from itertools import chain, count
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from shared.queue import (
    ARCHIVE_CLOCK_SLACK,
    ERROR,
    PROCESSED,
    FileQueue,
    JobResult,
    ResultFileError,
)
from shared.scoring import render_breakdown


def read_result(path: Path, max_bytes: int) -> JobResult | None:
    """The result in ``path``, or None if it cannot be read as one (gone, or not a trusted result)."""
    try:
        return JobResult.load(path, max_bytes=max_bytes)
    except (FileNotFoundError, ResultFileError):
        return None


@dataclass(frozen=True)
class Wanted:
    statuses: frozenset[str]
    wrapper: str | None
    since: datetime | None

    def __call__(self, result: JobResult) -> bool:
        return (
            (not self.statuses or result.status in self.statuses)
            and (self.wrapper is None or result.wrapper == self.wrapper)
            and (self.since is None or result.finished_at >= self.since)
        )


@dataclass(frozen=True)
class Found:
    path: Path
    result: JobResult


def find(queue: FileQueue, wanted: Wanted, limit: int, max_bytes: int) -> tuple[list[Found], int]:
    """The newest ``limit`` results that match, newest first, and how many files read were not results.

    Memory holds ``limit`` results whatever the number of files. ``processed/`` and ``error/`` are read
    whole; the archive day by day, newest first, and only while a day can still hold something newer than
    what was found (a result is archived after it finished, so a day folder holds nothing that finished
    after that day — give or take the clock difference between hosts).
    """
    newest = _Newest(limit)
    unreadable = sum(
        newest.offer(path, wanted, max_bytes)
        for path in chain(*(queue.result_files(folder) for folder in (PROCESSED, ERROR)))
    )
    unreadable += sum(newest.offer(path, wanted, max_bytes) for path in queue.flat_archived_results())
    for day, name in reversed(queue.archive_days()):
        latest_there = datetime.combine(day + ARCHIVE_CLOCK_SLACK, time.max, UTC)
        if newest.beats(latest_there) or (wanted.since is not None and latest_there < wanted.since):
            break
        unreadable += sum(newest.offer(path, wanted, max_bytes) for path in queue.archive_day_results(name))
    return newest.found(), unreadable


class _Newest:
    """The ``limit`` newest matching results offered so far (a heap on the finishing time)."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._heap: list[tuple[datetime, int, Found]] = []
        self._order = count()  # ties: no comparing of Found

    def offer(self, path: Path, wanted: Wanted, max_bytes: int) -> bool:
        """Consider the result in ``path``; True if the file is not a result."""
        result = read_result(path, max_bytes)
        if result is None:
            return True
        if wanted(result):
            item = (result.finished_at, next(self._order), Found(path, result))
            if len(self._heap) < self._limit:
                heapq.heappush(self._heap, item)
            elif item[0] > self._heap[0][0]:
                heapq.heapreplace(self._heap, item)
        return False

    def beats(self, moment: datetime) -> bool:
        """Full, and the oldest kept finished after ``moment``: nothing finished by then gets in."""
        return len(self._heap) >= self._limit and self._heap[0][0] > moment

    def found(self) -> list[Found]:
        return [item for _, _, item in sorted(self._heap, key=lambda entry: entry[0], reverse=True)]


def stamp(moment: datetime | None, zone: ZoneInfo) -> str:
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S %z") if moment else "-"


def row(item: Found, zone: ZoneInfo) -> list[str]:
    result = item.result
    score = str(result.score.total) if result.score else "-"
    return [
        result.job_id,
        result.status,
        score,
        result.wrapper or "-",
        stamp(result.finished_at, zone),
        result.reason,
    ]


def summary(item: Found) -> dict[str, Any]:
    result = item.result
    return {
        "job_id": result.job_id,
        "status": result.status,
        "score": result.score.total if result.score else None,
        "wrapper": result.wrapper,
        "format": result.format,
        "finished_at": result.finished_at.isoformat(),
        "reason": result.reason,
        "path": str(item.path),
    }


def details(path: Path, result: JobResult, zone: ZoneInfo) -> str:
    """Everything about one job: what it asked, what came back, how it scored and why, each attempt."""
    lines = [
        f"job       {result.job_id}",
        f"status    {result.status}: {result.reason}",
        f"file      {path}",
        "ran       "
        + "  ".join(
            f"{name} {value}"
            for name, value in (
                ("wrapper", result.wrapper),
                ("format", result.format),
                ("backend", result.backend),
                ("model", result.model),
                ("scorer", result.scorer),
                ("threshold", result.threshold),
            )
            if value is not None
        ),
        f"created   {stamp(result.created_at, zone)}",
        f"finished  {stamp(result.finished_at, zone)}  (llm {result.llm_seconds:.2f}s, "
        f"total {result.total_seconds:.2f}s)",
    ]
    meta = result.meta.model_dump(mode="json", exclude_none=True)
    if meta:
        lines.append("meta      " + ", ".join(f"{key}={value}" for key, value in meta.items()))
    answer = "answer (truncated):" if result.truncated else "answer:"
    lines += ["", "prompt:", _indented(result.prompt), "", answer, _indented(result.response)]
    if result.parse_problems:
        lines += ["", "parse problems:", *(f"  - {problem}" for problem in result.parse_problems)]
    lines += ["", "score:", _indented(render_breakdown(result.score) if result.score else None)]
    lines += ["", "attempts:", *_attempt_rows(result, zone)]
    return "\n".join(lines)


def _indented(text: str | None) -> str:
    if not text:
        return "  (none)"
    return "\n".join("  " + line for line in text.splitlines())


def _attempt_rows(result: JobResult, zone: ZoneInfo) -> list[str]:
    if not result.attempts:
        return ["  (none recorded)"]
    return [
        f"  {attempt.number}. {attempt.outcome:<13} {stamp(attempt.started_at, zone)}  "
        f"llm {attempt.llm_seconds:.2f}s  by {attempt.owner}"
        + (f"  error: {attempt.error}" if attempt.error else "")
        + ("  (will retry)" if attempt.retryable else "")
        for attempt in result.attempts
    ]


def as_json(item: Found) -> str:
    return json.dumps(
        {"path": str(item.path), **item.result.model_dump(mode="json")}, indent=2, ensure_ascii=False
    )

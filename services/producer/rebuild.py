"""Bringing the learner up to date from the result files, without holding them all in memory.

- **Cold rebuild** (no checkpoint): stream every result name in ``processed/``, ``error/`` and
  ``archive/`` (dated subfolders too), keep only the newest ``keep`` by job id (ids sort by creation time)
  in a bounded heap, then read those. Older results lie beyond the forgetting horizon and would weigh
  less than 0.1 %; memory is O(keep), not O(files).
- **Catch-up** (from a checkpoint): results of jobs that were still in flight when the checkpoint was
  written, i.e. with a job id from ``scan_from`` on, in ``processed/`` and ``error/``.

Both are plain functions for ``asyncio.to_thread``: the event loop never waits on the disk here.
"""

from __future__ import annotations

import heapq
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from services.producer.learning import Learner
from services.producer.observations import NotLearned, read_observation
from shared.queue import (
    ARCHIVE,
    ERROR,
    INCOMING,
    PROCESSED,
    PROCESSING,
    RESULT_SUFFIX,
    FileQueue,
    JobFileError,
    parse_job,
)

log = logging.getLogger(__name__)


@dataclass
class LearnReport:
    read: int = 0
    learned: list[str] = field(default_factory=list)
    untrusted: int = 0
    max_sequence: int = -1


def learn_paths(learner: Learner, paths: list[Path], max_bytes: int) -> LearnReport:
    """Read and learn ``paths`` (in order); results refused as untrusted are logged and counted."""
    report = LearnReport()
    for path in paths:
        report.read += 1
        outcome = read_observation(path, max_bytes)
        if isinstance(outcome, NotLearned):
            learner.refused[outcome.reason] += 1
            if outcome.untrusted:
                report.untrusted += 1
                log.warning("not learning from %s: %s", path, outcome.reason)
            continue
        report.max_sequence = max(report.max_sequence, outcome.sequence)
        if learner.observe(outcome):
            report.learned.append(outcome.job_id)
    return report


def result_names(queue: FileQueue, folder: str, *, recursive: bool = False) -> Iterator[Path]:
    """Result files of ``folder``, streamed (``recursive``: its dated subfolders too)."""
    stack = [queue.folder(folder)]
    while stack:
        directory = stack.pop()
        try:
            with os.scandir(directory) as entries:
                for entry in entries:
                    if entry.name.endswith(RESULT_SUFFIX) and entry.is_file(follow_symlinks=False):
                        yield Path(entry.path)
                    elif recursive and entry.is_dir(follow_symlinks=False):
                        stack.append(Path(entry.path))
        except (FileNotFoundError, NotADirectoryError):
            continue


def newest_results(queue: FileQueue, keep: int) -> list[Path]:
    """The ``keep`` results with the newest job ids, oldest first; memory O(keep)."""
    heap: list[tuple[str, str]] = []
    for folder, recursive in ((PROCESSED, False), (ERROR, False), (ARCHIVE, True)):
        for path in result_names(queue, folder, recursive=recursive):
            item = (path.stem, str(path))
            if len(heap) < keep:
                heapq.heappush(heap, item)
            elif item > heap[0]:
                heapq.heapreplace(heap, item)
    return [Path(name) for _, name in sorted(heap)]


def cold_rebuild(learner: Learner, queue: FileQueue, keep: int, max_bytes: int) -> LearnReport:
    return learn_paths(learner, newest_results(queue, keep), max_bytes)


def catch_up(learner: Learner, queue: FileQueue, scan_from: str, max_bytes: int) -> LearnReport:
    paths = sorted(
        path
        for folder in (PROCESSED, ERROR)
        for path in result_names(queue, folder)
        if path.stem >= scan_from and not learner.knows(path.stem)
    )
    return learn_paths(learner, paths, max_bytes)


@dataclass(frozen=True)
class InFlight:
    oldest_id: str | None
    max_sequence: int


def in_flight(queue: FileQueue, max_job_bytes: int) -> InFlight:
    """The oldest job id and the highest sequence number among the jobs not finished yet
    (``incoming/`` and ``processing/``; both are kept small by back pressure)."""
    oldest: str | None = None
    highest = -1
    for folder in (INCOMING, PROCESSING):
        for job_id in queue.job_ids(folder):
            oldest = job_id if oldest is None else min(oldest, job_id)
            highest = max(highest, _sequence_of(queue, folder, job_id, max_job_bytes))
    return InFlight(oldest, highest)


def _sequence_of(queue: FileQueue, folder: str, job_id: str, max_job_bytes: int) -> int:
    directory = queue.folder(folder)
    for path in directory.glob(f"{job_id}*.txt"):
        try:
            job = parse_job(job_id, path.read_bytes()[: max_job_bytes + 1], max_job_bytes)
        except (OSError, JobFileError):
            continue
        return job.meta.sequence if job.meta.sequence is not None else -1
    return -1

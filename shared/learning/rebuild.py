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

from shared.learning.learner import Learner
from shared.learning.observation import Observation
from shared.learning.results import NotLearned, read_observation
from shared.queue import (
    ARCHIVE,
    ERROR,
    INCOMING,
    JOB_SUFFIX,
    PROCESSED,
    PROCESSING,
    RESULT_SUFFIX,
    FileQueue,
    JobFileError,
    parse_job,
)

log = logging.getLogger(__name__)
IN_FLIGHT = (INCOMING, PROCESSING)


@dataclass
class LearnReport:
    read: int = 0
    learned: list[str] = field(default_factory=list)
    examples: list[Observation] = field(default_factory=list)  # learned ones that carry their prompt
    untrusted: int = 0
    max_sequence: int = -1
    score_sum: int = 0  # of the results learned
    score_squares: int = 0

    def add(self, other: LearnReport) -> None:
        """Count ``other``'s reading and learning in this report too."""
        self.read += other.read
        self.learned.extend(other.learned)
        self.examples.extend(other.examples)
        self.untrusted += other.untrusted
        self.max_sequence = max(self.max_sequence, other.max_sequence)
        self.score_sum += other.score_sum
        self.score_squares += other.score_squares

    @property
    def mean_score(self) -> float | None:
        return self.score_sum / len(self.learned) if self.learned else None

    @property
    def score_sd(self) -> float | None:
        """The spread of the scores learned (None below two)."""
        count = len(self.learned)
        if count < 2:
            return None
        return float(max(self.score_squares - self.score_sum**2 / count, 0.0) ** 0.5 / (count - 1) ** 0.5)


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
                log.warning("not learning from %s: %s", path, outcome.said)
            continue
        report.max_sequence = max(report.max_sequence, outcome.sequence)
        if learner.observe(outcome):
            report.learned.append(outcome.job_id)
            if outcome.prompt:
                report.examples.append(outcome)
            report.score_sum += outcome.score
            report.score_squares += outcome.score**2
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


def oldest_in_flight(queue: FileQueue) -> str | None:
    """The oldest job id in ``incoming/`` and ``processing/`` (names only; ids sort by creation time)."""
    return min((job_id for folder in IN_FLIGHT for job_id in queue.job_ids(folder)), default=None)


def highest_sequence_in_flight(queue: FileQueue, max_job_bytes: int) -> int:
    """The highest sequence number in the headers of the jobs not finished yet (-1: none); read at start,
    so numbering continues after a lost checkpoint."""
    highest = -1
    for folder in IN_FLIGHT:
        for path in queue.folder(folder).glob(f"*{JOB_SUFFIX}"):
            try:
                job = parse_job(path.stem, path.read_bytes()[: max_job_bytes + 1], max_job_bytes)
            except (OSError, JobFileError):
                continue
            if job.meta.sequence is not None:
                highest = max(highest, job.meta.sequence)
    return highest

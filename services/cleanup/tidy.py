"""The cleanup rules, each a small function over the queue: what to remove, what to quarantine."""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from datetime import time as dt_time
from pathlib import Path

from shared.config import CleanupSettings
from shared.queue import (
    ARCHIVE,
    ATTEMPTS,
    ERROR,
    INCOMING,
    LOGS_KIND,
    PROCESSED,
    PROCESSING,
    RESULT_SUFFIX,
    TMP,
    TMP_KIND,
    FileFault,
    FileQueue,
    JobResult,
    Quarantined,
    QuarantineReason,
    QueueFault,
    ResultFileError,
    ResultProblem,
    is_job_name,
    job_id_problem,
    quarantine,
    shown,
)
from shared.queue.faults import on_folder

log = logging.getLogger(__name__)

DAY_S = 86400.0
# A result is read for validity by the first pass that sees it: later passes skip results whose ctime is
# older than the previous pass's start by more than this (files being renamed in while that pass listed
# the folder are read twice rather than never).
CHECK_OVERLAP_S = 60.0


@dataclass
class Report:
    removed: Counter[str] = field(default_factory=Counter)
    quarantined: int = 0
    refiled: int = 0  # flat archive results of earlier versions moved into their day folder
    untrusted: Counter[ResultProblem] = field(default_factory=Counter)  # result files, by reason
    errors: list[str] = field(default_factory=list)
    refused: list[Quarantined] = field(default_factory=list)
    fault: QueueFault | None = None  # the queue could not be written: what was to be moved waits


class Tidier:
    def __init__(
        self,
        queue: FileQueue,
        logs_dir: Path,
        settings: CleanupSettings,
        max_result_bytes: int,
        check_overlap_s: float = CHECK_OVERLAP_S,
    ) -> None:
        self._queue = queue
        self._check_overlap_s = check_overlap_s
        self._logs_dir = logs_dir
        self._settings = settings
        self._max_result_bytes = max_result_bytes
        self._checked_before: float | None = None  # results older than this were read by an earlier pass

    def run(self, now: float | None = None) -> Report:
        """One pass; a million results cost a listing and a ``stat`` each, no read (run it in a thread).
        A folder that cannot be read or written ends its rule for this pass, not the pass."""
        report = Report()
        moment = time.time() if now is None else now
        settings = self._settings
        rules: list[Callable[[], None]] = [
            lambda: self._remove_older(
                self._queue.folder(TMP), settings.tmp_max_age_s, moment, TMP_KIND, report
            ),
            lambda: self._quarantine_strays(moment, report),
            lambda: self._quarantine_untrusted_results(report),
            lambda: self._remove_stale_attempts(report),
            lambda: self._file_flat_archive(report),
            lambda: self._remove_older(
                self._logs_dir, settings.log_retention_days * DAY_S, moment, LOGS_KIND, report
            ),
        ]
        if settings.error_retention_days is not None:
            max_age_s = settings.error_retention_days * DAY_S
            rules.append(
                lambda: self._remove_older(self._queue.folder(ERROR), max_age_s, moment, ERROR, report)
            )
        if settings.archive_retention_days is not None:
            archive_age_s = settings.archive_retention_days * DAY_S
            rules.append(lambda: self._expire_archive(archive_age_s, moment, report))
        for rule in rules:
            try:
                rule()
            except QueueFault as fault:
                report.fault = report.fault or fault
                report.errors.append(str(fault))
            except (OSError, FileFault) as exc:  # one file of this rule's: the others are the next pass's
                report.errors.append(shown(str(exc)))
        return report

    def _file_flat_archive(self, report: Report) -> None:
        """Results archived flat by earlier versions move into the day folder of their modification
        time, so that the archive's top level holds day folders only (read in place until then)."""
        for path in _files(self._queue.folder(ARCHIVE)):
            if path.name.startswith("."):
                continue
            try:
                self._queue.archive(path, datetime.fromtimestamp(path.stat().st_mtime, UTC))
                report.refiled += 1
            except FileNotFoundError:
                continue
            except (OSError, FileFault) as exc:
                report.errors.append(f"{shown(str(path))}: {exc}")

    def _expire_archive(self, max_age_s: float, now: float, report: Report) -> None:
        """Whole day folders go once their last moment is older than the retention (no stat per file)."""
        for day, name in self._queue.archive_days():
            day_end = datetime.combine(day + timedelta(days=1), dt_time(), tzinfo=UTC).timestamp()
            if now - day_end <= max_age_s:
                break  # day folders come oldest first: the rest are younger
            try:
                report.removed[ARCHIVE] += self._queue.remove_archive_day(name)
            except OSError as exc:
                report.errors.append(f"{self._queue.folder(ARCHIVE) / name}: {exc}")

    def _remove_older(self, folder: Path, max_age_s: float, now: float, kind: str, report: Report) -> None:
        for path in _files(folder):
            try:
                if now - path.stat().st_mtime > max_age_s:
                    path.unlink()
                    report.removed[kind] += 1
            except FileNotFoundError:
                continue
            except OSError as exc:
                report.errors.append(f"{shown(str(path))}: {shown(str(exc))}")

    def _quarantine_strays(self, now: float, report: Report) -> None:
        """Files in incoming/ that are no job: orphan metadata of the original layout, other types."""
        incoming = self._queue.folder(INCOMING)
        for path in _files(incoming):
            if is_job_name(path.name) or path.name.startswith("."):
                continue
            if path.suffix == ".json" and self._has_job(path.stem):
                continue
            try:
                if now - path.stat().st_mtime < self._settings.tmp_max_age_s:
                    continue  # may still be on its way (a claim or a copy in progress)
            except FileNotFoundError:
                continue
            why = (
                "metadata without its job file"
                if path.suffix == ".json"
                else "not a job file (jobs are .txt)"
            )
            self._quarantine(path, "stray", why, report)

    def _has_job(self, job_id: str) -> bool:
        """Waiting, or claimed (claims are named ``<id>.claim-<token>.txt``); never for a name that is
        no job id."""
        if job_id_problem(job_id) is not None:
            return False
        return self._queue.job_path(INCOMING, job_id).exists() or job_id in set(
            self._queue.job_ids(PROCESSING)
        )

    def _quarantine_untrusted_results(self, report: Report) -> None:
        """Files in the folders results land in that are not results this system wrote: not JSON, not a
        result, a score outside 0..100, an unknown status or scorer, a job id that is not the file name.
        Each is read once, by the first pass that sees it (``archive/`` only ever receives results that
        passed this reader)."""
        since = self._checked_before
        self._checked_before = self._queue.file_clock() - self._check_overlap_s
        for folder in (PROCESSED, ERROR):
            for path in _files_changed_since(self._queue.folder(folder), since):
                if not path.name.endswith(RESULT_SUFFIX) or path.name.startswith("."):
                    continue
                try:
                    JobResult.load(path, max_bytes=self._max_result_bytes)
                except FileNotFoundError:
                    continue
                except ResultFileError as exc:
                    why = f"{exc.detail} (reason: {exc.reason})"
                    if self._quarantine(path, "bad_result", why, report):
                        report.untrusted[exc.reason] += 1

    def _remove_stale_attempts(self, report: Report) -> None:
        claimed = set(self._queue.job_ids(PROCESSING))  # listed once per pass, not once per history
        for path in _files(self._queue.folder(ATTEMPTS)):
            job_id = path.stem
            if (problem := job_id_problem(job_id)) is not None:
                self._quarantine(path, "stray", f"not the attempt history of a job: {problem}", report)
                continue
            if job_id in claimed or self._queue.job_path(INCOMING, job_id).exists():
                continue
            if self._queue.result_path(job_id) is not None:
                path.unlink(missing_ok=True)
                report.removed[ATTEMPTS] += 1

    def _quarantine(self, path: Path, reason: QuarantineReason, why: str, report: Report) -> bool:
        """Move ``path`` to quarantine (counted); a file the filesystem will not move, or a queue that
        cannot be written, is an error of this pass (the file stays for the next)."""
        if report.fault is not None:
            return False  # the queue cannot be written: the rest waits for the next pass
        try:
            moved = quarantine(self._queue, path, reason, why)
        except FileFault as exc:
            report.errors.append(f"{shown(str(path))}: {exc}")
            return False
        except QueueFault as fault:
            report.fault = fault
            report.errors.append(f"{shown(str(path))}: {fault}")
            return False
        if moved is None:
            return False
        report.quarantined += 1
        report.refused.append(moved)
        return True


def _files_changed_since(folder: Path, since: float | None) -> Iterator[Path]:
    """Files in ``folder`` whose ctime is ``since`` or later (every file when ``since`` is None)."""
    try:
        with on_folder("list", folder), os.scandir(folder) as entries:
            for entry in entries:
                try:
                    if not entry.is_file(follow_symlinks=False):
                        continue
                    if since is None or entry.stat(follow_symlinks=False).st_ctime >= since:
                        yield Path(entry.path)
                except FileNotFoundError:
                    continue
    except FileNotFoundError:
        return


def _files(folder: Path) -> list[Path]:
    try:
        with on_folder("list", folder), os.scandir(folder) as entries:
            return [Path(entry.path) for entry in entries if entry.is_file(follow_symlinks=False)]
    except FileNotFoundError:
        return []

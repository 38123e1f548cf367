"""The cleanup rules, each a small function over the queue: what to remove, what to quarantine."""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from shared.config import CleanupSettings
from shared.queue import (
    ARCHIVE,
    ATTEMPTS,
    ERROR,
    INCOMING,
    PROCESSED,
    PROCESSING,
    QUARANTINE,
    QUARANTINE_NOTE_SUFFIX,
    TMP,
    FileQueue,
    JobResult,
    ResultFileError,
    ResultProblem,
    is_job_name,
)

log = logging.getLogger(__name__)

DAY_S = 86400.0


@dataclass
class Report:
    removed: Counter[str] = field(default_factory=Counter)
    quarantined: int = 0
    untrusted: Counter[ResultProblem] = field(default_factory=Counter)  # result files, by reason
    errors: list[str] = field(default_factory=list)


class Tidier:
    def __init__(
        self, queue: FileQueue, logs_dir: Path, settings: CleanupSettings, max_result_bytes: int
    ) -> None:
        self._queue = queue
        self._logs_dir = logs_dir
        self._settings = settings
        self._max_result_bytes = max_result_bytes

    def run(self, now: float | None = None) -> Report:
        report = Report()
        moment = time.time() if now is None else now
        self._remove_older(self._queue.folder(TMP), self._settings.tmp_max_age_s, moment, "tmp", report)
        self._quarantine_strays(moment, report)
        self._quarantine_untrusted_results(report)
        self._remove_stale_attempts(report)
        self._remove_older(self._logs_dir, self._settings.log_retention_days * DAY_S, moment, "logs", report)
        for folder, days in (
            (ERROR, self._settings.error_retention_days),
            (ARCHIVE, self._settings.archive_retention_days),
        ):
            if days is not None:
                self._remove_older(self._queue.folder(folder), days * DAY_S, moment, folder, report)
        return report

    def _remove_older(self, folder: Path, max_age_s: float, now: float, kind: str, report: Report) -> None:
        for path in _files(folder):
            try:
                if now - path.stat().st_mtime > max_age_s:
                    path.unlink()
                    report.removed[kind] += 1
            except FileNotFoundError:
                continue
            except OSError as exc:
                report.errors.append(f"{path}: {exc}")

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
            self._quarantine(path, why, report)

    def _has_job(self, job_id: str) -> bool:
        """Waiting, or claimed (claims are named ``<id>.claim-<token>.txt``)."""
        return self._queue.job_path(INCOMING, job_id).exists() or job_id in set(
            self._queue.job_ids(PROCESSING)
        )

    def _quarantine_untrusted_results(self, report: Report) -> None:
        """Files in the folders results land in that are not results this system wrote: not JSON, not a
        result, a score outside 0..100, an unknown status or scorer, a job id that is not the file name.
        (``archive/`` only ever receives results that passed this reader.)"""
        for folder in (PROCESSED, ERROR):
            for path in self._queue.result_files(folder):
                try:
                    JobResult.load(path, max_bytes=self._max_result_bytes)
                except FileNotFoundError:
                    continue
                except ResultFileError as exc:
                    if self._quarantine(path, f"{exc.detail} (reason: {exc.reason})", report):
                        report.untrusted[exc.reason] += 1

    def _remove_stale_attempts(self, report: Report) -> None:
        for path in _files(self._queue.folder(ATTEMPTS)):
            job_id = path.stem
            if not self._has_job(job_id) and self._queue.result_path(job_id) is not None:
                path.unlink(missing_ok=True)
                report.removed[ATTEMPTS] += 1

    def _quarantine(self, path: Path, why: str, report: Report) -> bool:
        target = _free_name(self._queue.folder(QUARANTINE), path.name)
        try:
            os.rename(path, target)
        except FileNotFoundError:
            return False
        note = f"{path.parent.name}/{path.name}: {why}\n"
        self._queue.write_atomic(target.with_name(target.name + QUARANTINE_NOTE_SUFFIX), note.encode("utf-8"))
        report.quarantined += 1
        log.warning("quarantined %s: %s", path, why)
        return True


def _free_name(folder: Path, name: str) -> Path:
    """``name`` in ``folder``, or ``<stem>.<n><suffix>`` if taken: quarantine never overwrites."""
    target, number = folder / name, 0
    while target.exists() or target.with_name(target.name + QUARANTINE_NOTE_SUFFIX).exists():
        number += 1
        stem, dot, suffix = name.rpartition(".")
        target = folder / (f"{stem}.{number}.{suffix}" if dot and stem else f"{name}.{number}")
    return target


def _files(folder: Path) -> list[Path]:
    try:
        with os.scandir(folder) as entries:
            return [Path(entry.path) for entry in entries if entry.is_file(follow_symlinks=False)]
    except FileNotFoundError:
        return []

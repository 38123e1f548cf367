"""The file queue: folders, atomic writes, sortable job ids, claim by rename, immutable results.

A job is one ``<job_id>.txt``; it lives in exactly one of ``incoming/`` and ``processing/`` until its
result ``<job_id>.json`` lands in ``processed/`` or ``error/``. Every write goes to ``.tmp/`` first and
is renamed into place, so no reader ever sees half a file. Attempt history survives releases in
``attempts/<job_id>.json``. Results done with move to ``archive/<YYYY-MM-DD>/`` (the UTC day they were
archived); :meth:`FileQueue.archive`, :meth:`FileQueue.archived_results` and
:meth:`FileQueue.archived_path` are the only code that knows that layout.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Final

from shared.queue.folders import (
    ALL_FOLDERS,
    ARCHIVE,
    ARCHIVE_CLOCK_SLACK,
    ATTEMPTS,
    CLAIM_NAME,
    COUNTED_FOLDERS,
    ERROR,
    INCOMING,
    JOB_SUFFIX,
    PROCESSED,
    RESULT_FOLDERS,
    RESULT_SUFFIX,
    TMP,
    ResultFolder,
    archive_day,
    archive_day_name,
    counts_as,
    is_job_name,
    job_created_day,
)
from shared.queue.jobfile import JobMeta, render_job

log = logging.getLogger(__name__)

# Looking a job up in the archive probes the day folders from its creation day on, one stat each;
# for a job older than this, listing the day folders that exist is cheaper.
ARCHIVE_PROBE_DAYS: Final = 62


def new_job_id(now: datetime | None = None) -> str:
    """``20251206T140000123456Z-3fa2c1``: sorts by creation time, unique across processes."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    return f"{moment:%Y%m%dT%H%M%S%f}Z-{secrets.token_hex(3)}"


class FileQueue:
    def __init__(self, root: Path) -> None:
        self.root = root

    def folder(self, name: str) -> Path:
        return self.root / name

    def ensure(self) -> None:
        for name in ALL_FOLDERS:
            self.folder(name).mkdir(parents=True, exist_ok=True)

    # -- writing ---------------------------------------------------------------------------------

    def write_atomic(
        self, target: Path, data: bytes, *, fsync: bool = False, exclusive: bool = False
    ) -> bool:
        """Write ``data`` to ``.tmp/`` and move it to ``target`` in one step.

        ``exclusive``: never replace an existing ``target`` (returns False instead); a hard link
        either creates the name or fails, so of two concurrent writers exactly one wins.
        """
        staging = self.folder(TMP) / f"{target.name}.{secrets.token_hex(4)}.part"
        with staging.open("wb") as handle:
            handle.write(data)
            if fsync:
                handle.flush()
                os.fsync(handle.fileno())
        if not exclusive:
            os.replace(staging, target)
            return True
        try:
            os.link(staging, target)
        except FileExistsError:
            return False
        finally:
            staging.unlink()
        return True

    def add_job(self, prompt: str, meta: JobMeta, job_id: str | None = None) -> str:
        job_id = job_id or new_job_id()
        self.write_atomic(self.job_path(INCOMING, job_id), render_job(prompt, meta).encode("utf-8"))
        return job_id

    def write_result(
        self, folder: ResultFolder, job_id: str, record: dict[str, Any] | bytes, *, fsync: bool = False
    ) -> bool:
        """Write a result once; returns False when one already exists (results are immutable).

        The name is created exclusively (a hard link), which settles two writers within one folder. Two
        writers into different folders can both pass the first check at the same moment; after the link
        :meth:`_settle` leaves exactly one result: ``processed/`` wins over ``error/``.
        """
        if self.result_path(job_id) is not None:
            return False
        data = (
            record if isinstance(record, bytes) else json.dumps(record, ensure_ascii=False, indent=1).encode()
        )
        target = self.folder(folder) / f"{job_id}{RESULT_SUFFIX}"
        if not self.write_atomic(target, data, fsync=fsync, exclusive=True):
            return False
        return self._settle(folder, job_id)

    def _settle(self, folder: ResultFolder, job_id: str) -> bool:
        """After our link, whichever of two racing writers looks second sees the other's result: the
        one in ``error/`` goes — ours (then False) or theirs — and the one in ``processed/`` (or, once
        the producer moved it, in the archive) stays. The writer into ``error/`` may have returned True
        just before its result went; the files are the truth, its events only notified."""
        name = f"{job_id}{RESULT_SUFFIX}"
        if folder == PROCESSED:
            try:
                (self.folder(ERROR) / name).unlink()
            except FileNotFoundError:
                return True
            log.warning(
                "job %s: a result landed in error/ at the same moment as ours; kept processed/", job_id
            )
            return True
        if (self.folder(PROCESSED) / name).exists() or self.archived_path(job_id) is not None:
            (self.folder(folder) / name).unlink(missing_ok=True)
            return False
        return True

    def file_clock(self) -> float:
        """Now by the clock that stamps the queue's files: the ctime of a new probe file in ``.tmp/``.

        On a local disk that is this host's clock; on a shared filesystem (NFS) the server sets the
        ctime, so every host judging leases against this sees the same clock whatever its own says.
        Falls back to the local clock when the probe cannot be written.
        """
        probe = self.folder(TMP) / f".clock.{secrets.token_hex(4)}"
        try:
            handle = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError:
            return time.time()
        try:
            return os.fstat(handle).st_ctime
        finally:
            os.close(handle)
            with contextlib.suppress(FileNotFoundError):
                probe.unlink()

    # -- paths and lookups -----------------------------------------------------------------------

    def job_path(self, folder: str, job_id: str) -> Path:
        return self.folder(folder) / f"{job_id}{JOB_SUFFIX}"

    def sidecar_path(self, folder: str, job_id: str) -> Path:
        """Metadata of the original layout: ``X.json`` beside ``X.txt``."""
        return self.folder(folder) / f"{job_id}{RESULT_SUFFIX}"

    def attempts_path(self, job_id: str) -> Path:
        return self.folder(ATTEMPTS) / f"{job_id}.json"

    def result_path(self, job_id: str) -> Path | None:
        """Where the result of ``job_id`` is: ``processed/``, ``error/`` or the archive; None if nowhere."""
        for folder in RESULT_FOLDERS:
            if folder == ARCHIVE:
                continue
            path = self.folder(folder) / f"{job_id}{RESULT_SUFFIX}"
            if path.exists():
                return path
        return self.archived_path(job_id)

    def archived_path(self, job_id: str, today: date | None = None) -> Path | None:
        """The archived result of ``job_id``, or None.

        A result is archived on or after the day its job was created (the day is in the job id), so only
        the day folders from then until today are probed — a few stats for a recent job, whatever the
        size of the archive; a day of clock difference between hosts is allowed either side. Ids without
        a creation time (jobs dropped in by hand) look in every day folder. A flat ``archive/<id>.json``
        of earlier versions is found too.
        """
        name = f"{job_id}{RESULT_SUFFIX}"
        flat = self.folder(ARCHIVE) / name
        if flat.exists():
            return flat
        for day in self._archive_days_for(job_id, today or datetime.now(UTC).date()):
            path = self.folder(ARCHIVE) / day / name
            if path.exists():
                return path
        return None

    def _archive_days_for(self, job_id: str, today: date) -> Iterator[str]:
        created = job_created_day(job_id)
        if created is None:
            yield from (name for _, name in self.archive_days())
            return
        first, last = created - ARCHIVE_CLOCK_SLACK, today + ARCHIVE_CLOCK_SLACK
        if (last - first).days > ARCHIVE_PROBE_DAYS:
            yield from (name for day, name in self.archive_days() if day >= first)
            return
        day = first
        while day <= last:
            yield archive_day_name(day)
            day += timedelta(days=1)

    def incoming_ids(self) -> list[str]:
        """Waiting jobs, oldest first (job ids sort by creation time)."""
        return sorted(name[: -len(JOB_SUFFIX)] for name in self._names(INCOMING) if is_job_name(name))

    def job_ids(self, folder: str) -> Iterator[str]:
        """Job ids of the job files in ``folder`` (in ``processing/``: of the claims in flight)."""
        for name in self._names(folder):
            if is_job_name(name):
                claim = CLAIM_NAME.match(name)
                yield claim["job"] if claim else name[: -len(JOB_SUFFIX)]

    def file_names(self, folder: str) -> Iterator[str]:
        return self._names(folder)

    def result_files(self, folder: str) -> Iterator[Path]:
        """The result files of ``processed/``, ``error/`` or, across its day folders, ``archive/``."""
        if folder == ARCHIVE:
            return self.archived_results()
        base = self.folder(folder)
        return (base / name for name in self._names(folder) if name.endswith(RESULT_SUFFIX))

    def count(self, folder: str) -> int:
        return sum(1 for name in self._names(folder) if counts_as(folder, name))

    def counts(self) -> dict[str, int]:
        return {name: self.count(name) for name in COUNTED_FOLDERS}

    def names(self, folder: str) -> set[str]:
        return {name for name in self._names(folder) if counts_as(folder, name)}

    def _names(self, folder: str) -> Iterator[str]:
        """File names in ``folder``; for ``archive/``: in the flat folder and every day folder."""
        if folder == ARCHIVE:
            yield from (path.name for path in self.archived_results())
            return
        yield from _file_names(self.folder(folder))

    # -- the archive -----------------------------------------------------------------------------

    def archive(self, path: Path, when: datetime | None = None) -> Path:
        """Move a result into the archive's folder for the day of ``when`` (default: now, UTC)."""
        day = self.folder(ARCHIVE) / archive_day_name(when or datetime.now(UTC))
        day.mkdir(parents=True, exist_ok=True)
        target = day / path.name
        os.rename(path, target)
        return target

    def archive_days(self) -> list[tuple[date, str]]:
        """The archive's day folders, oldest first, as (date, folder name)."""
        try:
            with os.scandir(self.folder(ARCHIVE)) as entries:
                days = [
                    (day, entry.name)
                    for entry in entries
                    if (day := archive_day(entry.name)) is not None and entry.is_dir(follow_symlinks=False)
                ]
        except FileNotFoundError:
            return []
        return sorted(days)

    def archived_results(self) -> Iterator[Path]:
        """Every archived result file: the flat ones of earlier versions, then day by day, oldest first."""
        yield from self.flat_archived_results()
        for _, day in self.archive_days():
            yield from self.archive_day_results(day)

    def flat_archived_results(self) -> Iterator[Path]:
        """Results archived flat (``archive/<id>.json``) by earlier versions, until cleanup files them."""
        base = self.folder(ARCHIVE)
        return (base / name for name in _file_names(base) if name.endswith(RESULT_SUFFIX))

    def archive_day_results(self, day: str) -> Iterator[Path]:
        """The result files of one day folder of the archive (a name from :meth:`archive_days`)."""
        folder = self.folder(ARCHIVE) / day
        return (folder / name for name in _file_names(folder) if name.endswith(RESULT_SUFFIX))

    def remove_archive_day(self, name: str) -> int:
        """Delete one day folder of the archive with everything in it; returns how many files went."""
        folder = self.folder(ARCHIVE) / name
        if archive_day(name) is None:
            raise ValueError(f"{name!r} is not an archive day folder")
        removed = 0
        for file_name in list(_file_names(folder)):
            try:
                (folder / file_name).unlink()
                removed += 1
            except FileNotFoundError:
                continue
        with contextlib.suppress(OSError):  # gone already, or something arrived meanwhile: next pass
            folder.rmdir()
        return removed

    # -- moving results ------------------------------------------------------------------------

    def move_result(self, path: Path, folder: str) -> Path:
        target = self.folder(folder) / path.name
        os.rename(path, target)
        return target

    # -- attempt history -------------------------------------------------------------------------

    def read_attempts(self, job_id: str) -> list[dict[str, Any]]:
        try:
            data = json.loads(self.attempts_path(job_id).read_text(encoding="utf-8"))
        except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
            return []
        return [entry for entry in data if isinstance(entry, dict)] if isinstance(data, list) else []

    def write_attempts(self, job_id: str, attempts: list[dict[str, Any]]) -> None:
        data = json.dumps(attempts, ensure_ascii=False, default=str).encode("utf-8")
        self.write_atomic(self.attempts_path(job_id), data)


def _file_names(folder: Path) -> Iterator[str]:
    try:
        with os.scandir(folder) as entries:
            yield from (entry.name for entry in entries if entry.is_file(follow_symlinks=False))
    except FileNotFoundError:
        return

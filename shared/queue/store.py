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
import errno
import json
import logging
import os
import secrets
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any, Final

from shared.names import folder_name_max, job_id_problem
from shared.queue.faults import FilePath, QueueFault, folder_of, on_folder, on_own, renamed
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
    PROCESSING,
    QUARANTINE,
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
# Files the queue makes: read and written by every service of the queue's user (umask applies).
NEW_FILE_MODE: Final = 0o666
# What a consumer writes besides .tmp/: the folders its probe checks before it claims again.
WRITTEN_FOLDERS: Final = (INCOMING, PROCESSING, PROCESSED, ERROR, ATTEMPTS, QUARANTINE)
PROBE_PREFIX: Final = ".probe."  # a dot-file: never a job, a result or a count
PROBE_MOVED: Final = ".moved"  # what the probe renames its file to within a folder
PROBE_DATA: Final = b"probe\n"  # a byte or more: an empty file needs no space, so would not show a full disk
# What a lookup's stat fails with when there is simply no such file (the errors Path.exists ignores).
_ABSENT: Final = frozenset({errno.ENOENT, errno.ENOTDIR, errno.EBADF, errno.ELOOP})
# Ids judged good for this queue and remembered: a job's id is judged once, not for each of the ~15
# paths a job needs; more than the jobs in flight at the highest concurrency, so a job stays in it.
VALID_IDS_KEPT: Final = 4096
# Day folder names remembered for lookups: the days a recent job is probed in, for a few weeks of jobs.
DAY_NAMES_KEPT: Final = 64
# Where a result is before it is archived: looked up first, one stat each.
_UNARCHIVED: Final = tuple(folder for folder in RESULT_FOLDERS if folder != ARCHIVE)


class InvalidJobId(ValueError):
    """A job id that breaks the name rule (:func:`shared.names.job_id_problem`): no path is built from it."""

    def __init__(self, job_id: str, problem: str) -> None:
        super().__init__(f"not a job id ({problem})")
        self.job_id = job_id
        self.problem = problem


def new_job_id(now: datetime | None = None) -> str:
    """``20251206T140000123456Z-3fa2c1``: sorts by creation time, unique across processes."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    return f"{moment:%Y%m%dT%H%M%S%f}Z-{secrets.token_hex(3)}"


class FileQueue:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._leftovers: set[FilePath] = set()  # staging files a failed write could not remove
        self._folders: dict[str, Path] = {}
        self._prefixes: dict[str, str] = {}  # folder name -> "<root>/<folder>/": lookups join strings
        self._name_max: int | None = None  # NAME_MAX of the root's filesystem, asked once it exists
        self._valid_ids: set[str] = set()  # ids that kept the name rule under that NAME_MAX

    def folder(self, name: str) -> Path:
        path = self._folders.get(name)
        if path is None:
            path = self._folders[name] = self.root / name
        return path

    def located(self, folder: str, file_name: str) -> str:
        """``<root>/<folder>/<file_name>`` as a string: what the per-job file operations pass to the system
        (a Path per file and job costs more than the system call it names)."""
        return self._prefix(folder) + file_name

    def _prefix(self, name: str) -> str:
        """``<root>/<name>/`` as a string: the per-job lookups build their paths from it, not from Paths."""
        prefix = self._prefixes.get(name)
        if prefix is None:
            prefix = self._prefixes[name] = os.path.join(self.folder(name), "")
        return prefix

    def ensure(self) -> None:
        for name in ALL_FOLDERS:
            self.folder(name).mkdir(parents=True, exist_ok=True)

    # -- writing ---------------------------------------------------------------------------------

    def write_atomic(
        self, target: FilePath, data: bytes, *, fsync: bool = False, exclusive: bool = False
    ) -> bool:
        """Write ``data`` to ``.tmp/`` and move it to ``target`` in one step.

        ``exclusive``: never replace an existing ``target`` (returns False instead); a hard link
        either creates the name or fails, so of two concurrent writers exactly one wins.
        Raises :class:`~shared.queue.faults.QueueFault` when the queue cannot be written,
        :class:`~shared.queue.faults.FileFault` when the filesystem refuses the name; the staging file
        never stays behind (see :meth:`sweep_staging`).
        """
        staging = self.located(TMP, f"{os.path.basename(target)}.{secrets.token_hex(4)}.part")
        with on_own("write a staging file", staging):
            self._write_new(staging, data, fsync)
        try:
            with on_own("file", target):
                if not exclusive:
                    os.replace(staging, target)
                    return True
                try:
                    os.link(staging, target)
                except FileExistsError:
                    return False
        finally:
            self.discard(staging)  # after a replace: gone already
        return True

    def _write_new(self, path: FilePath, data: bytes, fsync: bool) -> None:
        """Create ``path`` with ``data``; on any failure nothing of it stays (or it is remembered)."""
        handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, NEW_FILE_MODE)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(handle, view) :]
            if fsync:
                os.fsync(handle)
        except BaseException:
            os.close(handle)
            self.discard(path)
            raise
        try:
            os.close(handle)  # on a network filesystem a full disk may show only here
        except OSError:
            self.discard(path)
            raise

    def discard(self, staging: FilePath) -> None:
        """Remove a file the queue made and no longer wants (a staging file, a probe, a note whose file
        was not moved); one that cannot be removed now is remembered for :meth:`sweep_staging`."""
        try:
            os.unlink(staging)
        except FileNotFoundError:
            pass
        except OSError:
            self._leftovers.add(staging)

    def sweep_staging(self) -> int:
        """Remove the staging files a failed write left because they could not be removed at the time
        (the disk failing, ``.tmp/`` read-only); returns how many went. Called when the queue is writable
        again, so leftovers go then, not after ``cleanup.tmp_max_age_s``."""
        removed = 0
        for path in list(self._leftovers):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
            except OSError:
                continue
            self._leftovers.discard(path)
            removed += 1
        return removed

    def probe(self, folders: Iterable[str] = WRITTEN_FOLDERS) -> QueueFault | None:
        """Whether ``folders`` can be used now, tried the way the queue uses them: a small file is
        written to ``.tmp/`` (a full disk shows); in each folder it is linked, renamed, read, touched,
        listed and removed (an unwritable or failing folder shows). None when all worked, else what
        failed first. Folders that were removed are made again first."""
        operation, path = "make the queue's folders", self.root
        try:
            self.ensure()
            operation, path = "write a probe file", self.folder(TMP) / f"{PROBE_PREFIX}{secrets.token_hex(4)}"
            self._write_new(path, PROBE_DATA, fsync=False)
            probe = path
            try:
                for name in folders:
                    operation, path = "use the folder", self.folder(name) / probe.name
                    self._use_folder(probe, path)
                operation, path = "remove a probe file", probe
                os.unlink(probe)
            except OSError:
                self.discard(probe)
                raise
        except OSError as error:
            return QueueFault(operation, folder_of(path), error)
        return None

    def _use_folder(self, probe: Path, path: Path) -> None:
        """Link, rename, read, touch, list and remove a probe file in ``path``'s folder (strictly: a
        removal that fails fails the probe; what stays is removed later, see :meth:`sweep_staging`)."""
        moved = path.with_name(f"{path.name}{PROBE_MOVED}")
        os.link(probe, path)
        current = path
        try:
            os.rename(path, moved)
            current = moved
            handle = os.open(moved, os.O_RDONLY | os.O_CLOEXEC)
            try:
                os.read(handle, len(PROBE_DATA))
            finally:
                os.close(handle)
            os.utime(moved)
            with os.scandir(path.parent) as entries:
                next(entries, None)
            os.unlink(moved)
        except OSError:
            self.discard(current)
            raise

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
        :meth:`_settle` leaves exactly one result: ``processed/`` wins over ``error/``. Raises
        :class:`QueueFault` (nothing was filed) when the queue cannot be written.
        """
        target = self.located(folder, self.file_name(job_id, RESULT_SUFFIX))
        if self.result_path(job_id) is not None:
            return False
        data = (
            record if isinstance(record, bytes) else json.dumps(record, ensure_ascii=False, indent=1).encode()
        )
        if not self.write_atomic(target, data, fsync=fsync, exclusive=True):
            return False
        return self._settle(folder, job_id)

    def _settle(self, folder: ResultFolder, job_id: str) -> bool:
        """After our link, whichever of two racing writers looks second sees the other's result: the
        one in ``error/`` goes — ours (then False) or theirs — and the one in ``processed/`` (or, once
        the producer moved it, in the archive) stays. The writer into ``error/`` may have returned True
        just before its result went; the files are the truth, its events only notified. Never raises:
        our result is filed; a copy that cannot be removed now is said in the log."""
        name = self.file_name(job_id, RESULT_SUFFIX)
        try:
            if folder == PROCESSED:
                try:
                    os.unlink(self.located(ERROR, name))
                except FileNotFoundError:
                    return True
                log.warning(
                    "job %s: a result landed in error/ at the same moment as ours; kept processed/", job_id
                )
                return True
            if (self.folder(PROCESSED) / name).exists() or self.archived_path(job_id) is not None:
                (self.folder(folder) / name).unlink(missing_ok=True)
                return False
        except OSError as error:
            log.warning(
                "job %s: two results at once, and the second cannot be removed now: %s", job_id, error
            )
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
            self.discard(probe)

    # -- paths and lookups -----------------------------------------------------------------------

    def file_name(self, job_id: str, suffix: str) -> str:
        """``<job_id><suffix>``, if ``job_id`` keeps the name rule for this queue's filesystem; otherwise
        :class:`InvalidJobId` — every path the queue builds from an id comes through here."""
        if job_id not in self._valid_ids:
            self._judge(job_id)
        return f"{job_id}{suffix}"

    def _judge(self, job_id: str) -> None:
        """:class:`InvalidJobId` unless ``job_id`` keeps the name rule; a good one is remembered once this
        queue's ``NAME_MAX`` is known (the queue's root exists)."""
        problem = job_id_problem(job_id, self._folder_name_max())
        if problem is not None:
            raise InvalidJobId(job_id, problem)
        if self._name_max is not None:
            if len(self._valid_ids) >= VALID_IDS_KEPT:
                self._valid_ids.clear()
            self._valid_ids.add(job_id)

    def job_path(self, folder: str, job_id: str) -> Path:
        return Path(self.job_file(folder, job_id))

    def job_file(self, folder: str, job_id: str) -> str:
        """:meth:`job_path` as a string, for the per-job file operations."""
        return self.located(folder, self.file_name(job_id, JOB_SUFFIX))

    def sidecar_path(self, folder: str, job_id: str) -> Path:
        """Metadata of the original layout: ``X.json`` beside ``X.txt``."""
        return Path(self.sidecar_file(folder, job_id))

    def sidecar_file(self, folder: str, job_id: str) -> str:
        """:meth:`sidecar_path` as a string, for the per-job file operations."""
        return self.located(folder, self.file_name(job_id, RESULT_SUFFIX))

    def attempts_path(self, job_id: str) -> Path:
        return Path(self.attempts_file(job_id))

    def attempts_file(self, job_id: str) -> str:
        """:meth:`attempts_path` as a string, for the per-job file operations."""
        return self.located(ATTEMPTS, self.file_name(job_id, RESULT_SUFFIX))

    def result_in(self, folder: str, job_id: str) -> Path:
        """Where the result of ``job_id`` is (or would be) in ``processed/`` or ``error/``."""
        return self.folder(folder) / self.file_name(job_id, RESULT_SUFFIX)

    def _folder_name_max(self) -> int:
        """``NAME_MAX`` for names in this queue (one system call, then remembered once the root exists)."""
        if self._name_max is None:
            try:
                self._name_max = os.pathconf(self.root, "PC_NAME_MAX")
            except (OSError, ValueError):  # no root yet: ask its nearest parent, and again next time
                return folder_name_max(self.root)
        return self._name_max

    def result_path(self, job_id: str) -> Path | None:
        """Where the result of ``job_id`` is: ``processed/``, ``error/`` or the archive; None if nowhere."""
        name = self.file_name(job_id, RESULT_SUFFIX)
        for folder in _UNARCHIVED:
            if _holds(self.located(folder, name)):
                return self.folder(folder) / name
        return self.archived_path(job_id)

    def archived_path(self, job_id: str, today: date | None = None) -> Path | None:
        """The archived result of ``job_id``, or None.

        A result is archived on or after the day its job was created (the day is in the job id), so only
        the day folders from then until today are probed — a few stats for a recent job, whatever the
        size of the archive; a day of clock difference between hosts is allowed either side. Ids without
        a creation time (jobs dropped in by hand) look in every day folder. A flat ``archive/<id>.json``
        of earlier versions is found too.
        """
        name = self.file_name(job_id, RESULT_SUFFIX)
        archive = self._prefix(ARCHIVE)
        if _holds(archive + name):
            return self.folder(ARCHIVE) / name
        for day in self._archive_days_for(job_id, today or datetime.now(UTC).date()):
            if _holds(f"{archive}{day}/{name}"):
                return self.folder(ARCHIVE) / day / name
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
            yield _day_folder_name(day)
            day += timedelta(days=1)

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
        """Move a result into the archive's folder for the day of ``when`` (default: now, UTC).
        ``FileNotFoundError`` when it is gone; :class:`QueueFault` when the archive cannot be written."""
        day = self.folder(ARCHIVE) / archive_day_name(when or datetime.now(UTC))
        target = day / path.name
        with on_own("make an archive day folder", target):
            day.mkdir(parents=True, exist_ok=True)
        if not renamed("archive a result", path, target):
            raise FileNotFoundError(errno.ENOENT, "no such result", str(path))
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

    # -- attempt history -------------------------------------------------------------------------

    def write_attempts(self, job_id: str, attempts: list[dict[str, Any]]) -> None:
        """Replace the job's attempt history; :class:`QueueFault` when it cannot be written."""
        data = json.dumps(attempts, ensure_ascii=False, default=str).encode("utf-8")
        self.write_atomic(self.attempts_path(job_id), data)


def _holds(path: str) -> bool:
    """Whether a file ``path`` exists (one ``stat``, no path objects: this runs a dozen times per job); a
    folder that cannot be looked into is the queue's fault."""
    try:
        os.stat(path)
    except OSError as error:
        if error.errno in _ABSENT:
            return False
        with on_folder("look for a result", Path(path).parent):
            raise
    except ValueError:  # a NUL in the name: nothing by that name can exist
        return False
    return True


@lru_cache(maxsize=DAY_NAMES_KEPT)
def _day_folder_name(day: date) -> str:
    """:func:`archive_day_name` of ``day``, remembered: the lookup asks for the same few days per job."""
    return archive_day_name(day)


def _file_names(folder: Path) -> Iterator[str]:
    """Names of the files in ``folder`` (none if it is missing); :class:`QueueFault` if it cannot be read."""
    try:
        with on_folder("list", folder), os.scandir(folder) as entries:
            yield from (entry.name for entry in entries if entry.is_file(follow_symlinks=False))
    except FileNotFoundError:
        return

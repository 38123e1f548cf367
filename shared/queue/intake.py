"""What enters the queue is checked before it is read: the kind of file, its name, its size.

Files in ``incoming/`` are judged by ``lstat`` (a symlink is never followed): a regular file with a
printable UTF-8 ``.txt`` name whose stem is a job id (:func:`shared.names.job_id_problem`: short enough
for every name the queue makes from it) is a job; a symlink, FIFO, socket, device or directory, and any
other name, is moved to ``quarantine/`` with a ``.why.txt`` note — judged before any rename, so no claim
ever fails on a name. A quarantine name always fits the filesystem: escaped, and shortened with a hash
when it must be; the original name, escaped, is in the note.
Dot-files are never jobs and are left alone (copy tools stage under such names). A file is read
through :func:`read_bounded`: opened without following a symlink and without blocking on a FIFO, refused
when it has other names (hard links), its size checked before a byte is read, and never more than the
limit + 1 read.
Names are shown in logs and notes through :func:`shown`, which escapes whatever is not printable.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal, get_args

from shared.names import clipped, fitted, folder_name_max, id_max_bytes, job_id_problem, name_problem, shown
from shared.queue.faults import FileFault, FilePath, on_folder, renamed
from shared.queue.folders import CLAIM_NAME, JOB_SUFFIX, QUARANTINE, QUARANTINE_NOTE_SUFFIX, is_job_name
from shared.queue.store import FileQueue

log = logging.getLogger(__name__)

_NAME_SAFE: Final = " !#$&'()+,-.;=@[]^_`{}~"
# Room left in a quarantine name for the ".<n>" that keeps it apart from an earlier file of that name.
NUMBER_ROOM_BYTES: Final = 8
READ_CHUNK: Final = 64 * 1024  # what a bounded read asks for past the size the file said it had


QuarantineReason = Literal["not_regular_file", "bad_name", "bad_attempts", "hidden", "stray", "bad_result"]
QUARANTINE_REASONS: Final[tuple[str, ...]] = get_args(QuarantineReason)


class UnreadableFile(ValueError):
    """The file is not one that may be read as data (wrong type, too big); the message says why."""


@dataclass(frozen=True)
class Stray:
    """An entry of a job folder that is no job and never will be: it goes to quarantine."""

    path: Path
    reason: QuarantineReason
    detail: str


@dataclass(frozen=True)
class Quarantined:
    """A file moved to ``quarantine/``: what it was called (shown escaped), where it went, why."""

    shown: str
    target: str
    reason: QuarantineReason
    detail: str


@dataclass(frozen=True)
class Intake:
    jobs: list[str]  # job ids, oldest first
    strays: list[Stray]  # never jobs: to quarantine
    hidden: list[str]  # dot-files: never jobs, left alone by rule


def scan_jobs(folder: Path) -> Intake:
    """Sort a job folder (``incoming/``, ``processing/``) into job files (their names without ``.txt``),
    strays and dot-files; other entries (metadata of the original layout, files on their way) are skipped.
    :class:`~shared.queue.faults.QueueFault` when the folder cannot be read."""
    found = Intake([], [], [])
    name_max = folder_name_max(folder)
    try:
        with on_folder("list", folder), os.scandir(folder) as entries:
            for entry in entries:
                verdict = _judge(entry, name_max)
                if isinstance(verdict, Stray):
                    found.strays.append(verdict)
                elif verdict == _HIDDEN:
                    found.hidden.append(entry.name)
                elif verdict is not None:
                    found.jobs.append(verdict)
    except FileNotFoundError:
        pass
    found.jobs.sort()
    return found


_HIDDEN: Final = "."  # a verdict no job id can equal (a job id never starts with a dot)


def _judge(entry: os.DirEntry[str], name_max: int) -> str | Stray | None:
    """A job id, a stray, ``_HIDDEN`` for a dot-file, or None (not a job, maybe metadata: cleanup's)."""
    name = entry.name
    problem = name_problem(name)
    if problem is not None:
        return Stray(Path(entry.path), "bad_name", problem)
    if name.startswith("."):
        return _HIDDEN  # by rule: staging names of copy tools, editors' swap files
    try:
        regular = entry.is_file(follow_symlinks=False)
        kind = "" if regular else describe_kind(entry.stat(follow_symlinks=False).st_mode)
    except FileNotFoundError:
        return None
    if not regular:
        return Stray(Path(entry.path), "not_regular_file", f"not a regular file but {kind}")
    if not is_job_name(name):
        return None
    job_id = claimed_job_id(name)
    problem = job_id_problem(job_id, name_max)
    if problem is not None:
        return Stray(Path(entry.path), "bad_name", f"not a job id: {problem}")
    return name[: -len(JOB_SUFFIX)]


def claimed_job_id(name: str) -> str:
    """The job id in a job file's name: ``<id>.txt`` or a claim ``<id>.claim-<token>.txt``."""
    claim = CLAIM_NAME.match(name)
    return claim["job"] if claim else name[: -len(JOB_SUFFIX)]


def describe_kind(mode: int) -> str:
    kinds = (
        (stat.S_ISLNK, "a symbolic link"),
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    )
    return next((label for test, label in kinds if test(mode)), "not a regular file")


def read_bounded(path: FilePath, max_bytes: int) -> bytes:
    """The whole of a regular file of at most ``max_bytes``; raises :class:`UnreadableFile` otherwise.

    Never follows a symlink or reads a file that has other names (hard links), never blocks on a FIFO,
    never reads more than ``max_bytes + 1`` bytes (a file that grows while it is read is caught too).
    ``FileNotFoundError`` when it is gone.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnreadableFile("not a regular file but a symbolic link") from None
        raise
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UnreadableFile(f"not a regular file but {describe_kind(info.st_mode)}")
        if info.st_size > max_bytes:
            raise UnreadableFile(f"{info.st_size} bytes, over the limit of {max_bytes}")
        if info.st_nlink > 1:  # the queue writes every file under one name; another name may be anything
            raise UnreadableFile(f"a hard link to a file with {info.st_nlink} names")
        data = _read_at_most(fd, max_bytes + 1, info.st_size)
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise UnreadableFile(f"more than {max_bytes} bytes (it grew while being read)")
    return data


def _read_at_most(fd: int, limit: int, expected: int) -> bytes:
    """Up to ``limit`` bytes from ``fd`` with plain reads (no file object, no second ``fstat``), each
    asking for at least the ``expected`` size + 1: a file as long as it said comes in one read plus the
    one that finds its end."""
    data = bytearray()
    while len(data) < limit:
        chunk = os.read(fd, min(limit - len(data), max(expected + 1 - len(data), READ_CHUNK)))
        if not chunk:
            break
        data += chunk
    return bytes(data)


def quarantine(queue: FileQueue, path: Path, reason: QuarantineReason, detail: str) -> Quarantined | None:
    """Move ``path`` (any kind of entry; a symlink itself, not its target) to ``quarantine/`` under a
    safe name that fits the filesystem, with a note saying where it came from and why. None when it was
    gone already. The note is written first, so no file is quarantined without one (unless the
    filesystem refuses the note's name: then the log line says why).

    Raises :class:`~shared.queue.faults.QueueFault` when the queue cannot be written (nothing moved) and
    :class:`~shared.queue.faults.FileFault` when this file cannot be moved (it stays where it is).
    """
    folder = queue.folder(QUARANTINE)
    target = _free_name(folder, quarantine_name(path.name, folder_name_max(folder)))
    note = target.with_name(target.name + QUARANTINE_NOTE_SUFFIX)
    origin = f"{shown(path.parent.name)}/{shown(path.name)}"
    try:
        queue.write_atomic(note, f"{origin}: {detail}\n".encode())
    except FileFault as fault:  # the file goes all the same: the note's reason is in the log line
        log.warning("the note on %s cannot be written (%s); quarantining it without", clipped(origin), fault)
    try:
        moved = renamed("quarantine", path, target)
    except BaseException:
        queue.discard(note)
        raise
    if not moved:
        queue.discard(note)
        return None
    log.warning("quarantined %s as %s: %s", clipped(origin), target.name, detail)
    return Quarantined(shown(path.name), target.name, reason, detail)


def quarantine_strays(queue: FileQueue, strays: list[Stray]) -> Moved:
    """Quarantine each stray; one that cannot be moved (:class:`FileFault`) is left, and said, and the
    others go on. :class:`~shared.queue.faults.QueueFault` ends the pass (the queue cannot be written)."""
    done = Moved([], [])
    for stray in strays:
        try:
            moved = quarantine(queue, stray.path, stray.reason, stray.detail)
        except FileFault as exc:
            done.left.append(Stray(stray.path, stray.reason, f"{stray.detail}; cannot be moved: {exc}"))
            continue
        if moved is not None:
            done.quarantined.append(moved)
    return done


@dataclass(frozen=True)
class Moved:
    quarantined: list[Quarantined]
    left: list[Stray]  # could not be moved (the filesystem refused): left where they are


def quarantine_name(name: str, name_max: int) -> str:
    """A printable name for anything, short enough that it, its note and the note's staging name fit
    ``name_max``: bytes that are not printable are %-escaped, a long result cut with a hash of the whole."""
    limit = id_max_bytes(name_max) - NUMBER_ROOM_BYTES
    return fitted(_safe_name(name), limit, whole=os.fsencode(name))


def _safe_name(name: str) -> str:
    """A printable ASCII/UTF-8 name for anything: bytes that are not printable are %-escaped."""
    if name_problem(name) is None:
        return name.lstrip(".") or "unnamed"
    return urllib.parse.quote(os.fsencode(name), safe=_NAME_SAFE).lstrip(".") or "unnamed"


def _free_name(folder: Path, name: str) -> Path:
    """``name`` in ``folder``, or ``<stem>.<n><suffix>`` if taken: quarantine never overwrites."""
    target, number = folder / name, 0
    while os.path.lexists(target) or os.path.lexists(target.with_name(target.name + QUARANTINE_NOTE_SUFFIX)):
        number += 1
        stem, dot, suffix = name.rpartition(".")
        target = folder / (f"{stem}.{number}.{suffix}" if dot and stem else f"{name}.{number}")
    return target

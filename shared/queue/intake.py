"""What enters the queue is checked before it is read: the kind of file, its name, its size.

Files in ``incoming/`` are judged by ``lstat`` (a symlink is never followed): a regular file with a
printable UTF-8 ``.txt`` name is a job; a symlink, FIFO, socket, device or directory, and any name that
is not valid UTF-8 or holds control characters, is moved to ``quarantine/`` with a ``.why.txt`` note.
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
from typing import Final

from shared.messaging import FileRefused, QuarantineReason
from shared.names import name_problem, shown
from shared.queue.folders import JOB_SUFFIX, QUARANTINE, QUARANTINE_NOTE_SUFFIX, TMP, is_job_name

log = logging.getLogger(__name__)

_NAME_SAFE: Final = " !#$&'()+,-.;=@[]^_`{}~"
EVENT_TEXT_CHARS: Final = 1024  # FileRefused limits its texts to this


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


def refused_event(service: str, moved: Quarantined) -> FileRefused:
    """The event that tells the monitor about a quarantined file."""
    return FileRefused(
        service=service,
        reason=moved.reason,
        name=moved.shown[:EVENT_TEXT_CHARS],
        detail=moved.detail[:EVENT_TEXT_CHARS],
        quarantined_as=moved.target,
    )


@dataclass(frozen=True)
class Intake:
    jobs: list[str]  # job ids, oldest first
    strays: list[Stray]  # never jobs: to quarantine
    hidden: list[str]  # dot-files: never jobs, left alone by rule


def scan_jobs(folder: Path) -> Intake:
    """Sort a job folder (``incoming/``, ``processing/``) into job files (their names without ``.txt``),
    strays and dot-files; other entries (metadata of the original layout, files on their way) are skipped."""
    found = Intake([], [], [])
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                verdict = _judge(entry)
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


def _judge(entry: os.DirEntry[str]) -> str | Stray | None:
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
    return name[: -len(JOB_SUFFIX)] if is_job_name(name) else None


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


def read_bounded(path: Path, max_bytes: int) -> bytes:
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
    except BaseException:
        os.close(fd)
        raise
    with os.fdopen(fd, "rb") as handle:
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise UnreadableFile(f"more than {max_bytes} bytes (it grew while being read)")
    return data


def quarantine(root: Path, path: Path, reason: QuarantineReason, detail: str) -> Quarantined | None:
    """Move ``path`` (any kind of entry; a symlink itself, not its target) to ``quarantine/`` under a
    safe, free name, with a note saying where it came from and why. None when it was gone already."""
    folder = root / QUARANTINE
    target = _free_name(folder, _safe_name(path.name))
    try:
        os.rename(path, target)
    except FileNotFoundError:
        return None
    note = f"{path.parent.name}/{shown(path.name)}: {detail}\n"
    staging = root / TMP / f"{target.name}{QUARANTINE_NOTE_SUFFIX}.{os.getpid()}.part"
    staging.write_bytes(note.encode("utf-8"))
    os.replace(staging, target.with_name(target.name + QUARANTINE_NOTE_SUFFIX))
    moved = Quarantined(shown(path.name), target.name, reason, detail)
    log.warning("quarantined %s/%s as %s: %s", path.parent.name, moved.shown, target.name, detail)
    return moved


def quarantine_strays(root: Path, strays: list[Stray]) -> list[Quarantined]:
    moved = (quarantine(root, stray.path, stray.reason, stray.detail) for stray in strays)
    return [item for item in moved if item is not None]


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

"""Whose fault a filesystem error is: this file's, or the queue's.

Every filesystem call of the queue sorts its ``OSError`` into one of two kinds:

- **this file** (:class:`FileFault`, or ``FileNotFoundError`` for a file that vanished): its name is too
  long for the filesystem (``ENAMETOOLONG``), not in its encoding (``EILSEQ``), it is of the wrong kind
  (``EISDIR``, ``ENOTDIR``, ``ELOOP``). The file is quarantined or skipped, counted, and work goes on.
- **the queue** (:class:`QueueFault`): the disk is full (``ENOSPC``, ``EDQUOT``), a folder cannot be
  written (``EACCES``, ``EPERM``, ``EROFS``), the device fails (``EIO``) — and any errno not known to be
  a file's, because waiting and trying again loses nothing. The service pauses what writes the queue,
  says so once, and resumes by itself once a probe can write every folder (:mod:`shared.queue.gate`).
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final

from shared.names import shown

# A file's path as the queue's hot paths pass it: a plain string (no Path built per file and job) or a
# Path; made a Path only when a fault is said.
FilePath = str | Path

FILE_ERRNOS: Final = frozenset(
    {errno.ENAMETOOLONG, errno.EILSEQ, errno.ENOENT, errno.EISDIR, errno.ENOTDIR, errno.ELOOP}
)
QUEUE_ERRNOS: Final = frozenset(
    {errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS, errno.EIO}
)


def errno_name(error: OSError) -> str:
    """``ENOSPC`` for an error with that number; ``errno 0`` when it has none."""
    number = error.errno or 0
    return errno.errorcode.get(number, f"errno {number}")


def folder_of(path: FilePath) -> str:
    """The folder of the queue a file is in, as a log line names it: ``processed/``."""
    return f"{shown(Path(path).parent.name)}/"


class QueueFault(Exception):
    """The queue cannot be written: nothing is wrong with the job, the folder or the disk is.
    ``folder`` is where (``processed/``), ``operation`` what was tried."""

    def __init__(self, operation: str, folder: str, error: OSError) -> None:
        self.operation = operation
        self.folder = folder
        self.errno = error.errno or 0
        self.errno_name = errno_name(error)
        self.reason = error.strerror or str(error)
        super().__init__(f"{operation} in {self.folder}: {self.reason} ({self.errno_name})")


class FileFault(Exception):
    """This one file cannot be handled (its name or kind); the others can."""

    def __init__(self, operation: str, path: FilePath, error: OSError) -> None:
        self.operation = operation
        self.path = Path(path)
        self.errno_name = errno_name(error)
        self.reason = error.strerror or str(error)
        super().__init__(f"{operation}: {self.reason} ({self.errno_name})")


def fault(operation: str, path: FilePath, error: OSError, *, own: bool = False) -> QueueFault | FileFault:
    """The kind of fault ``error`` is, raised by ``operation`` on ``path``. For a file of the queue's own
    (``own``: a result, a note, a staging file) a missing file means a missing folder: the queue's."""
    if error.errno in FILE_ERRNOS and not (own and error.errno == errno.ENOENT):
        return FileFault(operation, path, error)
    return QueueFault(operation, folder_of(path), error)


def file_fault(operation: str, path: FilePath, error: OSError) -> FileFault:
    """The fault ``error`` is when it is this one file's; a fault of the queue's is raised. For the
    per-job calls that usually fail (no sidecar, no history), where a context manager costs more than the
    system call."""
    problem = fault(operation, path, error)
    if isinstance(problem, QueueFault):
        raise problem from error
    return problem


@contextmanager
def on_file(operation: str, path: FilePath) -> Iterator[None]:
    """Around a call on one file that may be gone: ``FileNotFoundError`` passes as it is (the caller skips
    the file), other errors come out as :class:`FileFault` or :class:`QueueFault`."""
    try:
        yield
    except FileNotFoundError:
        raise
    except OSError as error:
        raise fault(operation, path, error) from error


@contextmanager
def on_own(operation: str, path: FilePath) -> Iterator[None]:
    """Around a call that makes a file of the queue's own (a result, a note, a staging file): a missing
    folder is the queue's fault, a name the filesystem refuses is this file's."""
    try:
        yield
    except OSError as error:
        raise fault(operation, path, error, own=True) from error


@contextmanager
def on_folder(operation: str, folder: Path) -> Iterator[None]:
    """Around listing a folder of the queue: a missing folder passes as ``FileNotFoundError`` (it holds
    nothing), any other error is the queue's."""
    try:
        yield
    except FileNotFoundError:
        raise
    except OSError as error:
        raise QueueFault(operation, f"{shown(folder.name)}/", error) from error


def renamed(operation: str, source: FilePath, target: FilePath) -> bool:
    """Rename ``source`` to ``target``; False when ``source`` is gone. A missing ``target`` folder (the
    source still there) is the queue's fault; other errors are sorted as :func:`on_file` sorts them."""
    try:
        with on_file(operation, source):
            os.rename(source, target)
    except FileNotFoundError as error:
        if os.path.lexists(source):
            raise QueueFault(operation, folder_of(target), error) from error
        return False
    return True

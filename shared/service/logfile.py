"""A service's log file that may fail to be written (a full disk) without a traceback per line.

Python's file handler prints ``--- Logging error ---`` and a traceback to stderr for every record it
cannot write: thousands on a full disk. :class:`LogFile` says it once — when writing starts to fail,
with the cause — and once when it works again, with how many lines the file missed (stdout has them
all); in between it tries to reopen the file at every record, so it resumes by itself.

Several processes may write one file — the replicas of a service that ``docker compose --scale`` starts
share the logs volume and the service's name. Python's handler rotates as if alone: a second process
rotates again what the first just rotated (a backup pushed out early) and goes on writing into the file
that is now ``.1``. Here a rotation holds an exclusive lock on the logs folder and moves files only if
the file at the path is still the one this process writes; if another process rotated it first, this one
opens the new file instead. A process's lines between the other's rotation and its own next check (one
record at most: its file is then over the limit) land in ``.1``; none is lost.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import logging
import os
import stat
import sys
from collections.abc import Iterator
from logging.handlers import RotatingFileHandler


class LogFile(RotatingFileHandler):
    _regular = True  # the open file is a regular one: judged on every open (the base class opens in __init__)

    def __init__(self, path: str, *, max_bytes: int, backups: int) -> None:
        super().__init__(path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8")
        self._missed = 0  # lines not written since writing started to fail
        self._failing = False

    def emit(self, record: logging.LogRecord) -> None:
        missed = self._missed
        super().emit(record)  # a failure comes back through handleError
        if self._failing and self._missed == missed:
            self._failing = False
            self._say(f"writing {self.baseFilename} again; {self._missed} lines are only on stdout")
            self._missed = 0

    def handleError(self, record: logging.LogRecord) -> None:
        error = sys.exc_info()[1]
        self._missed += 1
        self._drop_stream()
        if not self._failing:
            self._failing = True
            self._say(f"cannot write {self.baseFilename} ({error}); lines go to stdout only until it can")

    def shouldRollover(self, record: logging.LogRecord) -> bool:
        """As the standard handler decides, less its two ``stat`` calls per record (it never rolls a
        file that is not a regular one, such as ``/dev/null``): the file is judged once, when opened."""
        stream = self.stream
        if stream is None:
            stream = self.stream = self._open()
        if not self._regular or self.maxBytes <= 0:
            return False
        line = f"{self.format(record)}\n"
        stream.seek(0, os.SEEK_END)
        return stream.tell() + len(line) >= self.maxBytes

    def doRollover(self) -> None:
        with _folder_locked(os.path.dirname(self.baseFilename)):
            if self._rotated_by_another():
                self._drop_stream()
                self.stream = self._open()
            else:
                super().doRollover()

    def _rotated_by_another(self) -> bool:
        """Whether the file at the path is no longer the one open here (another process rotated it)."""
        if self.stream is None:
            return False
        try:
            there = os.stat(self.baseFilename)
        except FileNotFoundError:
            return True
        here = os.fstat(self.stream.fileno())
        return (there.st_dev, there.st_ino) != (here.st_dev, here.st_ino)

    def _open(self) -> io.TextIOWrapper:
        stream = super()._open()
        self._regular = stat.S_ISREG(os.fstat(stream.fileno()).st_mode)
        return stream

    def _drop_stream(self) -> None:
        """Forget the file (and what its buffer could not write): the next record opens it again."""
        stream, self.stream = self.stream, None
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()

    def _say(self, text: str) -> None:
        with contextlib.suppress(OSError, ValueError):  # stderr gone too: nothing else to tell
            sys.stderr.write(f"logging: {text}\n")
            sys.stderr.flush()


@contextlib.contextmanager
def _folder_locked(folder: str) -> Iterator[None]:
    """An exclusive ``flock`` on ``folder`` (every process writing a log there takes the same one); held
    only while files are renamed, a few times per ``max_bytes`` written."""
    fd = os.open(folder or ".", os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock

"""A service's log file that may fail to be written (a full disk) without a traceback per line.

Python's file handler prints ``--- Logging error ---`` and a traceback to stderr for every record it
cannot write: thousands on a full disk. :class:`LogFile` says it once — when writing starts to fail,
with the cause — and once when it works again, with how many lines the file missed (stdout has them
all); in between it tries to reopen the file at every record, so it resumes by itself.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import stat
import sys
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

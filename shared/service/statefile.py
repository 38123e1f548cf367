"""A file a service keeps for itself (its last fired slots, its spend today, a status log) that a full
disk or a read-only folder must not turn into a crash.

A write that fails is said once — with the cause — and the service goes on with what it holds in
memory; the next write tries again, and one line says when writing works again. A failed replace
leaves no staging file behind.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)


class StateFile:
    def __init__(self, path: Path, what: str) -> None:
        self.path = path
        self._what = what  # "the last fired slots": what the log line calls it
        self._failing = False

    def replace(self, data: bytes) -> bool:
        """Write ``data`` as the whole file (staged beside it, then renamed); False when it cannot be."""
        staging = self.path.with_name(f".{self.path.name}.{os.getpid()}.part")  # replicas may share it
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            staging.write_bytes(data)
            os.replace(staging, self.path)
        except OSError as error:
            with contextlib.suppress(OSError):
                staging.unlink(missing_ok=True)
            return self._failed(error)
        return self._worked()

    def append(self, line: str) -> bool:
        """Add one line at the end; False when it cannot be."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(line + "\n")
        except OSError as error:
            return self._failed(error)
        return self._worked()

    def _failed(self, error: OSError) -> bool:
        if not self._failing:
            self._failing = True
            log.warning(
                "cannot write %s to %s (%s); kept in memory, written again when it can be",
                self._what,
                self.path,
                error.strerror or error,
            )
        return False

    def _worked(self) -> bool:
        if self._failing:
            self._failing = False
            log.info("writing %s to %s works again", self._what, self.path)
        return True

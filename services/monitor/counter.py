"""Exact queue counts from file notifications, with a periodic full recount (reconciliation).

The queue root is watched recursively, so results arriving in a new ``archive/<day>/`` folder are seen.

A scrape reads the kept sets; nothing rescans the folders per scrape.
"""

from __future__ import annotations

import heapq
import logging
import os
import time

from shared.queue import COUNTED_FOLDERS, INCOMING, FileQueue, counted_folder, counts_as
from shared.watch import Change

log = logging.getLogger(__name__)

OLDEST_CANDIDATES = 8


class QueueCounter:
    def __init__(self, queue: FileQueue) -> None:
        self._queue = queue
        self._names: dict[str, set[str]] = {folder: set() for folder in COUNTED_FOLDERS}
        self.drift_corrections = 0

    def reconcile(self) -> int:
        """Recount every folder from disk; returns how many entries the notifications had wrong."""
        drift = 0
        for folder in COUNTED_FOLDERS:
            actual = self._queue.names(folder)
            drift += len(actual ^ self._names[folder])
            self._names[folder] = actual
        if drift:
            self.drift_corrections += drift
            log.info("reconciliation corrected %d queue entries", drift)
        return drift

    def on_change(self, change: Change) -> None:
        kind, parent, name = change
        folder = counted_folder(parent)  # archive/<day>/ counts as archive
        if kind == "overflow":  # notifications were lost: recount everything
            self.reconcile()
            return
        names = self._names.get(folder)
        if names is None or not counts_as(folder, name):
            return
        if kind == "added":
            names.add(name)
        elif kind == "removed":
            names.discard(name)

    def counts(self) -> dict[str, int]:
        return {folder: len(names) for folder, names in self._names.items()}

    def count(self, folder: str) -> int:
        return len(self._names[folder])

    def oldest_incoming_age_s(self) -> float:
        """Age of the oldest waiting job by its file's modification time (0 when none waits)."""
        for name in heapq.nsmallest(OLDEST_CANDIDATES, self._names[INCOMING]):
            try:
                return max(0.0, time.time() - os.stat(self._queue.folder(INCOMING) / name).st_mtime)
            except FileNotFoundError:
                continue
        return 0.0

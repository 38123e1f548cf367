"""Exact queue counts from file notifications, with a cheap periodic recount (reconciliation).

Only numbers are kept — one per folder, and one per archive day folder — never the names of the files,
so memory does not grow with the number of results (a million results cost what ten cost). Of the
jobs waiting in ``incoming/`` only the oldest few names are kept, for the oldest one's age
(:mod:`services.monitor.oldest`): a flood of files into ``incoming/`` costs no memory either. A rename
reaches the counter as a removal from one folder and an addition to the other, so the counts stay exact
through moves.

A recount counts directory entries as they are read (``os.scandir``, no ``stat``, no list of names:
its memory is the same for ten entries and a million) and may run in a thread, which hands the event
loop a turn every :data:`ENTRIES_PER_TURN` entries (:mod:`services.monitor.turns`), so a scrape waits
for a millisecond of counting at most, however big the folder. Its
number for a folder replaces the kept one only if no notification for that folder arrived while it
counted: otherwise it cannot tell whether it saw those files, and the folder waits for the next recount
(notifications keep the count meanwhile) — unless the kept number is known to be wrong (never counted
yet, or notifications were lost): then each recount is the better number, until a quiet one confirms it
(so a flood that overflowed the kernel's queue is not counted twice for long).
Archive day folders are counted one by one, so the busy folder of today does not hold back the quiet
days before it.

A day folder that appears while watched is reported twice for files that land in it at once (watchdog
lists a new folder's files as well as reporting them): until its first quiet recount such a folder is
counted by name — a day's first files, not a million.

The queue root is watched recursively, so results arriving in a new ``archive/<day>/`` folder are seen.
A scrape reads the kept numbers; nothing rescans the folders per scrape.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from services.monitor.oldest import OldestNames
from services.monitor.turns import LoopTurns, no_turns
from shared.queue import (
    ARCHIVE,
    COUNTED_FOLDERS,
    ERROR,
    INCOMING,
    PROCESSED,
    FileQueue,
    archive_day,
    counts_as,
)
from shared.watch import Change

log = logging.getLogger(__name__)

# Oldest waiting names kept (~100 KB): consumers claim the oldest first, so the kept ones run out after
# this many claims and the folder is looked at again — rarely, even while a flood drains.
OLDEST_KEPT = 1000
# Entries a recount reads before the event loop gets a turn: under a millisecond of counting (0.6 µs an
# entry on tmpfs here), so a scrape arriving meanwhile waits that long at most; a turn costs about 15 µs
# when the loop has nothing else to do. A quarter of this shortened the wait's tail a little but made a
# recount of 666,000 entries 1.6× longer on the loaded machine (BENCHMARKS.md).
ENTRIES_PER_TURN = 1000
DAY_PLACE_PREFIX = f"{ARCHIVE}/"
FINISHED_INTO = (PROCESSED, ERROR)  # a result landing here is a job finished (archive/ is a move)


@dataclass
class Recount:
    """What one pass over the folders found: a number per place, and the oldest names in incoming/."""

    counts: dict[str, int] = field(default_factory=dict)
    oldest: OldestNames = field(default_factory=lambda: OldestNames(OLDEST_KEPT))


class QueueCounter:
    def __init__(self, queue: FileQueue, clock: Callable[[], float] = time.monotonic) -> None:
        self._queue = queue
        self._clock = clock
        self._counts: dict[str, int] = dict.fromkeys(COUNTED_FOLDERS, 0)  # place -> files
        self._oldest = OldestNames(OLDEST_KEPT)  # the oldest job file names in incoming/
        self._oldest_seen = time.time()  # modification time of the oldest waiting job found last
        self.last_result_at = -math.inf  # when a result last landed in processed/ or error/ (clock)
        self._changes: dict[str, int] = {}  # place -> notifications seen (to tell a quiet recount)
        self._new_days: dict[str, set[str]] = {}  # day folders that appeared while watched -> names
        self.drift_corrections = 0
        self.unsettled: set[str] = set()  # places whose last recount raced with a notification
        self._lost: set[str] = set(COUNTED_FOLDERS)  # places whose kept number is known wrong
        self.recount_wanted = asyncio.Event()  # notifications were lost: recount as soon as possible

    # -- notifications ---------------------------------------------------------------------------

    def on_change(self, change: Change) -> None:
        kind, parent, name = change
        if kind == "overflow":  # notifications were lost: every number is unsure until recounted
            self.unsettled.update(self._counts)
            self._lost.update(self._counts)
            self.recount_wanted.set()
            return
        place = _place(parent)
        if place is None or kind not in ("added", "removed"):
            return
        folder = ARCHIVE if place.startswith(DAY_PLACE_PREFIX) else place
        if not counts_as(folder, name):
            return
        step = 1 if kind == "added" else -1
        self._changes[place] = self._changes.get(place, 0) + 1
        if place not in self._counts and folder == ARCHIVE:
            self._new_days[place] = set()
        new_day = self._new_days.get(place)
        if new_day is not None:  # by name: a notification twice for one file counts once
            (new_day.add if step > 0 else new_day.discard)(name)
            self._counts[place] = len(new_day)
            return
        self._counts[place] = self._counts.get(place, 0) + step
        if place == INCOMING:
            self._note_waiting(name, arrived=step > 0)
        elif place in FINISHED_INTO and step > 0:
            self.last_result_at = self._clock()

    def _note_waiting(self, name: str, *, arrived: bool) -> None:
        if arrived:
            self._oldest.add(name)
            return
        self._oldest.discard(name)
        if self._oldest.exhausted:
            self.recount_wanted.set()

    # -- reading ---------------------------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        totals = dict.fromkeys(COUNTED_FOLDERS, 0)
        for place, count in self._counts.items():
            folder = ARCHIVE if place.startswith(DAY_PLACE_PREFIX) else place
            totals[folder] += max(0, count)
        return totals

    def count(self, folder: str) -> int:
        return self.counts()[folder]

    def oldest_incoming_age_s(self) -> float:
        """Age of the oldest waiting job by its file's modification time (0 when none waits). While the
        kept names have run out and the recount that finds the next ones is due, the last age found."""
        for name in self._oldest.in_order():
            try:
                modified = os.stat(self._queue.folder(INCOMING) / name).st_mtime
            except FileNotFoundError:  # gone, its notification not handled yet (or lost)
                self._note_waiting(name, arrived=False)
                continue
            self._oldest_seen = modified
            return max(0.0, time.time() - modified)
        if self._oldest.exhausted and self.count(INCOMING):
            return max(0.0, time.time() - self._oldest_seen)
        return 0.0

    # -- recounting ------------------------------------------------------------------------------

    def reconcile(self) -> int:
        """Recount every folder now (on the caller's thread); returns by how much the counts were off."""
        return self.settle(self.recount(), dict(self._changes))

    async def reconcile_in_thread(self) -> int:
        """Recount in a worker thread that gives the event loop a turn every :data:`ENTRIES_PER_TURN`
        entries; settle on the loop."""
        marks = dict(self._changes)
        self.recount_wanted.clear()
        found = await asyncio.to_thread(self.recount, LoopTurns(asyncio.get_running_loop()))
        return self.settle(found, marks)

    def recount(self, turn: Callable[[], None] = no_turns) -> Recount:
        """Count the files of every place on disk (safe in a thread: reads only the disk), calling
        ``turn`` every :data:`ENTRIES_PER_TURN` entries."""
        found = Recount()
        root = self._queue.root
        for folder in COUNTED_FOLDERS:
            waiting = found.oldest.add if folder == INCOMING else None
            found.counts[folder] = _count_files(root / folder, folder, waiting, turn)
        for _, day in self._queue.archive_days():
            place = f"{DAY_PLACE_PREFIX}{day}"
            found.counts[place] = _count_files(root / ARCHIVE / day, ARCHIVE, None, turn)
        return found

    def settle(self, found: Recount, marks: dict[str, int]) -> int:
        """Take the recounted number of every place that stayed quiet since ``marks``; returns the drift."""
        drift = 0
        if self._oldest.exhausted:  # the names the gauge needs, even if the count must wait
            self._oldest = found.oldest
        for place in set(found.counts) | set(self._counts):
            raced = self._changes.get(place, 0) != marks.get(place, 0)
            if raced:
                self.unsettled.add(place)
                if place not in self._lost and place in self._counts:
                    continue  # notifications keep it until a quiet recount
            actual = found.counts.get(place, 0)
            drift += abs(actual - self._counts.get(place, 0))
            if actual or place in COUNTED_FOLDERS:
                self._counts[place] = actual
            else:
                self._counts.pop(place, None)  # a day folder that is gone
            self._new_days.pop(place, None)
            if place == INCOMING:
                self._oldest = found.oldest
            if not raced:  # a known-wrong number is replaced by every recount until a quiet one
                self._lost.discard(place)
                self.unsettled.discard(place)
        if drift:
            self.drift_corrections += drift
            log.info("reconciliation corrected the queue counts by %d", drift)
        if self.unsettled:
            log.debug("recount raced with changes in %s; kept by notifications", sorted(self.unsettled))
        return drift


def _place(parent: str) -> str | None:
    """Where a file whose parent folder is named ``parent`` is counted; None for any other folder."""
    if archive_day(parent) is not None:
        return f"{DAY_PLACE_PREFIX}{parent}"
    return parent if parent in COUNTED_FOLDERS else None


def _count_files(
    path: Path, folder: str, names: Callable[[str], None] | None, turn: Callable[[], None]
) -> int:
    """Files in ``path`` that count in ``folder`` (entry types come with the listing: no stat); each
    one's name goes to ``names``; ``turn`` is called every :data:`ENTRIES_PER_TURN` entries."""
    count = 0
    try:
        with os.scandir(path) as entries:
            for read, entry in enumerate(entries, 1):
                if not read % ENTRIES_PER_TURN:
                    turn()
                if entry.is_file(follow_symlinks=False) and counts_as(folder, entry.name):
                    count += 1
                    if names is not None:
                        names(entry.name)
    except FileNotFoundError:
        return 0
    return count

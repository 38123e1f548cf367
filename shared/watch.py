"""Filesystem notifications handed to asyncio. The observer thread never runs our code beyond a
``call_soon_threadsafe``; consumers of events work on the event loop."""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from pathlib import Path

from watchdog.events import (
    FileCreatedEvent,
    FileDeletedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import DEFAULT_OBSERVER_TIMEOUT, BaseObserver
from watchdog.observers.polling import PollingObserver

# (kind, folder name, file name); kind: "added", "removed", "written", or "overflow" (events were lost:
# the kernel's inotify queue overflowed — rescan the folders).
Change = tuple[str, str, str]
OVERFLOW: Change = ("overflow", "", "")
ChangeSink = Callable[[Change], None]
PENDING_MAX = 20_000  # changes waiting for a busy event loop (~2 MB); beyond: OVERFLOW, the sink rescans
# What a watcher that only counts files needs to hear of: no opens, writes, closes or attribute changes,
# which are most of what a burst of new files makes the kernel report.
COMINGS_AND_GOINGS: list[type[FileSystemEvent]] = [FileCreatedEvent, FileDeletedEvent, FileMovedEvent]


def _observer(
    loop: asyncio.AbstractEventLoop,
    handler: _Forwarder,
    *,
    polling: bool,
    arrivals_only: bool,
    pair_moves: bool,
) -> BaseObserver:
    """Polling works everywhere; on Linux, inotify that reports lost events as ``OVERFLOW``; elsewhere the
    platform's own observer (no overflow report; ``arrivals_only`` narrows inotify only). Unpaired moves
    reach ``handler`` from inotify's reading thread directly."""
    if polling:
        return PollingObserver()
    if sys.platform != "linux":
        return Observer()
    from shared.inotify import AlarmedEmitter  # imports watchdog's inotify, which loads only on Linux

    def overflowed() -> None:
        loop.call_soon_threadsafe(handler.sink, OVERFLOW)

    return BaseObserver(
        AlarmedEmitter,
        timeout=DEFAULT_OBSERVER_TIMEOUT,
        on_overflow=overflowed,
        arrivals_only=arrivals_only,
        unpaired=None if pair_moves else handler.send,
    )


class _Forwarder(FileSystemEventHandler):
    """Hands changes to the event loop in batches: the loop is woken once per batch, not once per change,
    so a burst of new files does not pile up one callback (and one wake-up) per file. At most
    :data:`PENDING_MAX` changes wait for the loop; more are dropped and the sink is told ``OVERFLOW``
    (recount), as when the kernel drops events — memory stays bounded whatever the burst."""

    def __init__(self, loop: asyncio.AbstractEventLoop, sink: ChangeSink) -> None:
        self._loop = loop
        self.sink = sink
        self._lock = threading.Lock()
        self._pending: list[Change] = []
        self._lost = False  # changes were dropped since the last delivery
        self._woken = False  # a delivery is scheduled on the loop

    def send(self, kind: str, path: str | bytes) -> None:
        folder, name = os.path.split(os.fsdecode(path))  # not pathlib: this runs per file of a burst
        change = (kind, os.path.basename(folder), name)
        with self._lock:
            if len(self._pending) < PENDING_MAX:
                self._pending.append(change)
            else:
                self._pending.clear()
                self._lost = True
            wake, self._woken = not self._woken, True
        if wake:
            self._loop.call_soon_threadsafe(self._deliver)

    def _deliver(self) -> None:
        with self._lock:
            batch, self._pending = self._pending, []
            lost, self._lost = self._lost, False
            self._woken = False
        if lost:
            self.sink(OVERFLOW)
        for change in batch:
            self.sink(change)

    def on_created(self, event: FileSystemEvent) -> None:
        if not event.is_directory:
            self.send("added", event.src_path)

    def on_deleted(self, event: FileSystemEvent) -> None:
        if not event.is_directory:
            self.send("removed", event.src_path)

    def on_closed(self, event: FileSystemEvent) -> None:
        if not event.is_directory:
            self.send("written", event.src_path)

    def on_moved(self, event: FileSystemEvent) -> None:
        if not event.is_directory:
            self.send("removed", event.src_path)
            self.send("added", event.dest_path)


@asynccontextmanager
async def watching(
    folders: Iterable[Path],
    sink: ChangeSink,
    *,
    polling: bool = False,
    recursive: bool = False,
    arrivals_only: bool = False,
    pair_moves: bool = True,
    comings_and_goings: bool = False,
) -> AsyncIterator[None]:
    """Deliver ``(kind, folder, name)`` for files added to or removed from ``folders`` while inside.

    Watch a common parent with ``recursive=True`` to see moves between its folders as one event each:
    separately watched folders report a move out only after watchdog's pairing timeout.
    ``arrivals_only``: report only files that appear (no removals, no writes) — and without that delay.
    ``pair_moves=False``: report each half of a move as it comes (inotify), without pairing — the same
    changes, but a burst of renames costs time in proportion to its size, and on Linux they come straight
    from the thread reading inotify, at half the CPU a change (see ``shared.inotify``).
    ``comings_and_goings``: report files added and removed, never "written" — the kernel is asked for
    nothing else, so a burst of new files costs a third of the events.
    """
    loop = asyncio.get_running_loop()
    handler = _Forwarder(loop, sink)
    observer = _observer(loop, handler, polling=polling, arrivals_only=arrivals_only, pair_moves=pair_moves)
    only = COMINGS_AND_GOINGS if comings_and_goings else None
    for folder in folders:
        observer.schedule(handler, str(folder), recursive=recursive, event_filter=only)
    observer.start()
    try:
        yield
    finally:
        observer.stop()
        await asyncio.to_thread(observer.join)


@asynccontextmanager
async def arrivals(
    folder: Path, ring: Callable[[], None], *, polling: bool, retry_s: float
) -> AsyncIterator[None]:
    """Call ``ring()`` on the event loop when files arrive in ``folder`` (or arrivals may have been
    missed: rescan), while inside — for a listener that scans the folder and needs only the wake-up.

    On Linux with inotify: :class:`shared.doorbell.Doorbell`, which reads the kernel's events in bulk
    on the event loop (a folder removed is watched for again every ``retry_s``); polling and other
    platforms: :func:`watching`, arrivals only.
    """
    if polling or sys.platform != "linux":

        def arrived(change: Change) -> None:
            if change[0] in ("added", "overflow"):
                ring()

        async with watching([folder], arrived, polling=polling, arrivals_only=True):
            yield
        return
    from shared.doorbell import Doorbell  # imports watchdog's inotify, which loads only on Linux

    with Doorbell(str(folder), ring, retry_s=retry_s):
        yield

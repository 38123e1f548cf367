"""Filesystem notifications handed to asyncio. The observer thread never runs our code beyond a
``call_soon_threadsafe``; consumers of events work on the event loop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import DEFAULT_OBSERVER_TIMEOUT, BaseObserver
from watchdog.observers.inotify import InotifyEmitter
from watchdog.observers.inotify_c import InotifyConstants, Mask
from watchdog.observers.polling import PollingObserver

log = logging.getLogger(__name__)

# (kind, folder name, file name); kind: "added", "removed", "written", or "overflow" (events were lost:
# the kernel's inotify queue overflowed — rescan the folders).
Change = tuple[str, str, str]
OVERFLOW: Change = ("overflow", "", "")
WATCHDOG_INOTIFY_LOGGER = "watchdog.observers.inotify_c"
ChangeSink = Callable[[Change], None]


class _ArrivalEmitter(InotifyEmitter):
    """inotify for files arriving only (created, moved in). A move *out* of a watched folder is an
    unpaired IN_MOVED_FROM, which watchdog holds back half a second waiting for its pair — and every
    later event with it; a consumer's own claims would delay its notice of new jobs that long."""

    def get_event_mask_from_filter(self) -> Mask:
        return Mask(
            InotifyConstants.IN_CREATE | InotifyConstants.IN_MOVED_TO | InotifyConstants.IN_DELETE_SELF
        )


def _observer(polling: bool, arrivals_only: bool) -> BaseObserver:
    if polling:
        return PollingObserver()
    if arrivals_only:
        return BaseObserver(emitter_class=_ArrivalEmitter, timeout=DEFAULT_OBSERVER_TIMEOUT)
    return Observer()


class _OverflowAlarm(logging.Filter):
    """watchdog handles an inotify queue overflow internally and only logs it; we turn that log
    record into an ``overflow`` change so watchers rescan instead of missing files."""

    def __init__(self, loop: asyncio.AbstractEventLoop, sink: ChangeSink) -> None:
        super().__init__()
        self._loop = loop
        self._sink = sink

    def filter(self, record: logging.LogRecord) -> bool:
        if "overflow" in record.getMessage().lower():
            self._loop.call_soon_threadsafe(self._sink, OVERFLOW)
        return True


class _Forwarder(FileSystemEventHandler):
    def __init__(self, loop: asyncio.AbstractEventLoop, sink: ChangeSink) -> None:
        self._loop = loop
        self._sink = sink

    def _send(self, kind: str, path: str | bytes) -> None:
        target = Path(path.decode() if isinstance(path, bytes) else path)
        self._loop.call_soon_threadsafe(self._sink, (kind, target.parent.name, target.name))

    def on_created(self, event: FileSystemEvent) -> None:
        if not event.is_directory:
            self._send("added", event.src_path)

    def on_deleted(self, event: FileSystemEvent) -> None:
        if not event.is_directory:
            self._send("removed", event.src_path)

    def on_closed(self, event: FileSystemEvent) -> None:
        if not event.is_directory:
            self._send("written", event.src_path)

    def on_moved(self, event: FileSystemEvent) -> None:
        if not event.is_directory:
            self._send("removed", event.src_path)
            self._send("added", event.dest_path)


@asynccontextmanager
async def watching(
    folders: Iterable[Path],
    sink: ChangeSink,
    *,
    polling: bool = False,
    recursive: bool = False,
    arrivals_only: bool = False,
) -> AsyncIterator[None]:
    """Deliver ``(kind, folder, name)`` for files added to or removed from ``folders`` while inside.

    Watch a common parent with ``recursive=True`` to see moves between its folders as one event each:
    separately watched folders report a move out only after watchdog's pairing timeout.
    ``arrivals_only``: report only files that appear (no removals, no writes) — and without that delay.
    """
    loop = asyncio.get_running_loop()
    observer = _observer(polling, arrivals_only)
    handler = _Forwarder(loop, sink)
    alarm = _OverflowAlarm(loop, sink)
    inotify_log = logging.getLogger(WATCHDOG_INOTIFY_LOGGER)
    inotify_log.addFilter(alarm)
    for folder in folders:
        observer.schedule(handler, str(folder), recursive=recursive)
    observer.start()
    try:
        yield
    finally:
        inotify_log.removeFilter(alarm)
        observer.stop()
        await asyncio.to_thread(observer.join)

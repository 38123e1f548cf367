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
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

log = logging.getLogger(__name__)

# (kind, folder name, file name); kind: "added", "removed", "written", or "overflow" (events were lost:
# the kernel's inotify queue overflowed — rescan the folders).
Change = tuple[str, str, str]
OVERFLOW: Change = ("overflow", "", "")
WATCHDOG_INOTIFY_LOGGER = "watchdog.observers.inotify_c"
ChangeSink = Callable[[Change], None]


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
    folders: Iterable[Path], sink: ChangeSink, *, polling: bool = False, recursive: bool = False
) -> AsyncIterator[None]:
    """Deliver ``(kind, folder, name)`` for files added to or removed from ``folders`` while inside.

    Watch a common parent with ``recursive=True`` to see moves between its folders as one event each:
    separately watched folders report a move out only after watchdog's pairing timeout.
    """
    loop = asyncio.get_running_loop()
    observer: BaseObserver = PollingObserver() if polling else Observer()
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

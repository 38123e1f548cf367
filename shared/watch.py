"""Filesystem notifications handed to asyncio. The observer thread never runs our code beyond a
``call_soon_threadsafe``; consumers of events work on the event loop."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import DEFAULT_OBSERVER_TIMEOUT, BaseObserver
from watchdog.observers.polling import PollingObserver

# (kind, folder name, file name); kind: "added", "removed", "written", or "overflow" (events were lost:
# the kernel's inotify queue overflowed — rescan the folders).
Change = tuple[str, str, str]
OVERFLOW: Change = ("overflow", "", "")
ChangeSink = Callable[[Change], None]


def _observer(
    loop: asyncio.AbstractEventLoop, sink: ChangeSink, *, polling: bool, arrivals_only: bool, pair_moves: bool
) -> BaseObserver:
    """Polling works everywhere; on Linux, inotify that reports lost events as ``OVERFLOW``; elsewhere the
    platform's own observer (no overflow report; ``arrivals_only`` narrows inotify only)."""
    if polling:
        return PollingObserver()
    if sys.platform != "linux":
        return Observer()
    from shared.inotify import AlarmedEmitter  # imports watchdog's inotify, which loads only on Linux

    def overflowed() -> None:
        loop.call_soon_threadsafe(sink, OVERFLOW)

    return BaseObserver(
        AlarmedEmitter,
        timeout=DEFAULT_OBSERVER_TIMEOUT,
        on_overflow=overflowed,
        arrivals_only=arrivals_only,
        pair_moves=pair_moves,
    )


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
    pair_moves: bool = True,
) -> AsyncIterator[None]:
    """Deliver ``(kind, folder, name)`` for files added to or removed from ``folders`` while inside.

    Watch a common parent with ``recursive=True`` to see moves between its folders as one event each:
    separately watched folders report a move out only after watchdog's pairing timeout.
    ``arrivals_only``: report only files that appear (no removals, no writes) — and without that delay.
    ``pair_moves=False``: report each half of a move as it comes (inotify), without pairing — the same
    changes, but a burst of renames costs time in proportion to its size (see ``shared.inotify``).
    """
    loop = asyncio.get_running_loop()
    observer = _observer(loop, sink, polling=polling, arrivals_only=arrivals_only, pair_moves=pair_moves)
    handler = _Forwarder(loop, sink)
    for folder in folders:
        observer.schedule(handler, str(folder), recursive=recursive)
    observer.start()
    try:
        yield
    finally:
        observer.stop()
        await asyncio.to_thread(observer.join)

"""inotify emitters for the queue's watchers (Linux only: import this module only there).

watchdog's inotify watch group offers ``on_queue_overflow``, called when the kernel dropped events;
these emitters turn it into a callback so the watchers rescan instead of missing files. They can also
listen for arrivals only (created, moved in): a move *out* of a watched folder is an unpaired
IN_MOVED_FROM, which watchdog holds back half a second waiting for its pair — and every later event
with it; a consumer's own claims would delay its notice of new jobs that long. No event filter of
watchdog's asks for IN_MOVED_TO without IN_MOVED_FROM, hence the mask here.

Moves can also be reported unpaired (``unpaired``): IN_MOVED_FROM at once as a removal, IN_MOVED_TO as
an addition. watchdog pairs them by searching its queue of pending events for each move, so a burst of
thousands of renames costs time growing with the square of the burst; a watcher that only counts files
needs no pairs. Unpaired changes go straight from the thread that reads the kernel's events to the
watcher, past watchdog's event objects and its emitter and observer threads: 8–9 µs of CPU a change
instead of 16–17. (A directory moved within the watched tree is then watched again below its new name
from scratch; the queue's folders never move.)

A recursive watch finds the folders below its root without listing their files: watchdog walks the tree
with ``os.walk``, which keeps the names of every file of a folder in a list at once (70 MB for a day
folder of 666,000 results, at start and again after every overflow). Here each folder is read entry by
entry, and a folder whose link count says it has no subfolders is not read at all.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from watchdog.observers.inotify import InotifyEmitter, InotifyWatchGroup
from watchdog.observers.inotify_c import InotifyConstants, Mask
from watchdog.observers.inotify_move_event_grouper import InotifyMoveEventGrouper, PathedInotifyEvent

if TYPE_CHECKING:
    from watchdog.events import FileSystemEvent
    from watchdog.observers.api import EventQueue, ObservedWatch
    from watchdog.utils import Seconds

ARRIVALS = Mask(InotifyConstants.IN_CREATE | InotifyConstants.IN_MOVED_TO | InotifyConstants.IN_DELETE_SELF)
OverflowAlarm = Callable[[], None]
PathChange = Callable[[str, bytes], None]  # ("added" / "removed" / "written", the file's path)
# A folder's link count on Linux filesystems that keep one per subfolder (ext4, xfs, tmpfs): its own name
# and its "." — no subfolder's "..". Those that keep none (btrfs, overlayfs' merged folders) say 1.
LINKS_OF_A_LEAF = 2


def _ignore() -> None:
    return None


class _Unpaired(InotifyMoveEventGrouper):
    """Hands each file's coming or going straight to ``changes``, in order, on watchdog's thread that
    reads the kernel's events — no event objects, no emitter and observer threads in between (together
    they cost more than half of a notification's way); never pairs a move (no search of pending
    events). A folder's own events are not reported: the watch group has followed them already."""

    def __init__(self, changes: PathChange) -> None:
        super().__init__()
        self._changes = changes

    def put_event(self, event: PathedInotifyEvent) -> None:
        happened = event.ev
        if happened.is_directory:
            return
        if happened.is_create or happened.is_moved_to:
            self._changes("added", event.path)
        elif happened.is_delete or happened.is_moved_from:
            self._changes("removed", event.path)
        elif happened.is_close_write:
            self._changes("written", event.path)

    def get_queued_moved_from_event(self, cookie: int) -> PathedInotifyEvent | None:
        return None


@dataclass
class _AlarmedWatchGroup(InotifyWatchGroup):
    on_overflow: OverflowAlarm = field(default=_ignore)
    unpaired: PathChange | None = None  # report each file's coming and going here, moves unpaired

    def __post_init__(self) -> None:
        if self.unpaired is not None:
            self._move_event_grouper = _Unpaired(self.unpaired)
        super().__post_init__()

    def on_queue_overflow(self) -> None:
        super().on_queue_overflow()
        self.on_overflow()

    def _add_all_callbacks(self, path: bytes) -> None:
        # As InotifyWatchGroup's, with the folders below found by streaming instead of by os.walk.
        is_dir = os.path.isdir(path)
        self._add_callback(path)
        if is_dir and self.is_recursive:
            for folder in folders_below(path, follow_symlinks=self.follow_symlink):
                self._add_callback(folder)


def folders_below(top: bytes, *, follow_symlinks: bool) -> Iterator[bytes]:
    """Every folder below ``top``, each before those below it; folders are read entry by entry (memory
    does not grow with a folder's size) and one whose link count says it has none below is not read."""
    unread = [top]
    while unread:
        folder = unread.pop()
        try:
            if os.stat(folder).st_nlink == LINKS_OF_A_LEAF:
                continue
            with os.scandir(folder) as entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=follow_symlinks):
                        yield entry.path
                        unread.append(entry.path)
        except OSError:  # gone or unreadable meanwhile, as os.walk skips it
            continue


class AlarmedEmitter(InotifyEmitter):
    """watchdog's inotify emitter, calling ``on_overflow`` (on watchdog's reader thread) after the kernel
    reported lost events; with ``arrivals_only`` it asks the kernel for arrivals only; with ``unpaired``
    it hands each file's coming and going (a move as a removal and an addition) to that, at once."""

    def __init__(
        self,
        event_queue: EventQueue,
        watch: ObservedWatch,
        *,
        timeout: Seconds,
        event_filter: list[type[FileSystemEvent]] | None = None,
        on_overflow: OverflowAlarm,
        arrivals_only: bool = False,
        unpaired: PathChange | None = None,
    ) -> None:
        super().__init__(event_queue, watch, timeout=timeout, event_filter=event_filter)
        self._on_overflow = on_overflow
        self._arrivals_only = arrivals_only
        self._unpaired = unpaired

    def on_thread_start(self) -> None:
        # As InotifyEmitter.on_thread_start, with the watch group that reports overflows.
        self._inotify = _AlarmedWatchGroup(
            self._inotify_fd,
            os.fsencode(self.watch.path),
            is_recursive=self.watch.is_recursive,
            event_mask=self.get_event_mask_from_filter(),
            follow_symlink=self.watch.follow_symlink,
            on_overflow=self._on_overflow,
            unpaired=self._unpaired,
        )

    def get_event_mask_from_filter(self) -> Mask:
        return ARRIVALS if self._arrivals_only else super().get_event_mask_from_filter()

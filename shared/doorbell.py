"""A doorbell on one folder: rings on the event loop when files arrive (Linux only: import it only there).

A consumer watching ``incoming/`` needs to know *that* something arrived, never what: it scans the
folder anyway. watchdog hands every event to Python on a thread of its own — parsed, wrapped in an
object, queued, passed to a second thread — and that thread competes with the event loop for the GIL:
~30 % of a watching consumer's CPU samples with a 50 ms backend at concurrency 64. Here the kernel's
events are read on the event loop itself (``add_reader`` on a non-blocking inotify descriptor), up to
:data:`READ_BYTES` a read (~1,300 job arrivals; the loop calls again while more wait), and only their
fixed headers are looked at: for a lost watch (the folder removed), armed again every ``retry_s`` until
the folder is back, and for events the kernel dropped — among them perhaps the one saying the watch
ended — after which the folder is watched again at once. Anything else going wrong in those callbacks (a
read failing with ``EIO``, the listener's ``ring`` raising) stops the doorbell and comes out of its
``with`` block in the task that entered it, as a failed task would: the loop would otherwise call the
reader again and again, logging the same error, while the listener waits for rings that never come.

The descriptor is made and watched with watchdog's own ctypes bindings (``inotify_c``).
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import struct
from collections.abc import Callable
from types import TracebackType

from watchdog.observers.inotify_c import InotifyConstants, inotify_add_watch, inotify_init

from shared.inotify import ARRIVALS

log = logging.getLogger(__name__)

READ_BYTES = 64 * 1024  # events read at once; a job's arrival is 16 bytes of header + its padded name
_HEADER = struct.Struct("iIII")  # wd, mask, cookie, len (struct inotify_event, then len bytes of name)


class Doorbell:
    """``ring()`` is called on the event loop after files arrived in ``folder`` — once per read of the
    kernel's events, however many arrived — and after the kernel dropped events (its queue overflowed):
    the listener rescans. With the folder gone the watch is gone; it is armed again every ``retry_s``
    seconds, ringing once armed (files may have arrived meanwhile)."""

    def __init__(self, folder: str, ring: Callable[[], None], *, retry_s: float) -> None:
        self._folder = os.fsencode(folder)
        self._ring = ring
        self._retry_s = retry_s
        self._loop = asyncio.get_running_loop()
        self._fd = -1
        self._armed = False
        self._retry: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[object] | None = None
        self._broken: BaseException | None = None

    def __enter__(self) -> Doorbell:
        fd = inotify_init()
        if fd < 0:
            raise _os_error("inotify_init", ctypes.get_errno())
        self._fd = fd
        try:
            os.set_blocking(fd, False)
            os.set_inheritable(fd, False)
            self._arm(at_start=True)
            self._loop.add_reader(fd, self._guarded, self._read)
        except BaseException:
            os.close(fd)
            raise
        self._task = asyncio.current_task()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._quiet()
        os.close(self._fd)
        if self._broken is not None:
            if self._task is not None and self._task.cancelling():
                self._task.uncancel()  # the cancel was the doorbell's own: what broke it comes out instead
            raise self._broken

    def _quiet(self) -> None:
        if self._retry is not None:
            self._retry.cancel()
        self._loop.remove_reader(self._fd)

    def _guarded(self, callback: Callable[[], None]) -> None:
        """Run one of the doorbell's loop callbacks; a failure stops the doorbell and cancels the task
        inside its ``with`` block, whose exit raises the failure."""
        try:
            callback()
        except Exception as exc:
            log.error("%s: the doorbell stopped: %s", os.fsdecode(self._folder), exc)
            self._broken = exc
            self._quiet()
            if self._task is not None:
                self._task.cancel()

    @property
    def armed(self) -> bool:
        return self._armed

    def _arm(self, *, at_start: bool = False) -> None:
        """Watch the folder; at start a failure is raised (the caller's mistake or a missing folder);
        later it is tried again in ``retry_s``."""
        self._retry = None
        if inotify_add_watch(self._fd, self._folder, ARRIVALS) < 0:
            errno = ctypes.get_errno()
            if at_start:
                raise _os_error("inotify_add_watch", errno, self._folder)
            log.debug("%s: still not there (%s)", os.fsdecode(self._folder), os.strerror(errno))
            self._retry = self._loop.call_later(self._retry_s, self._guarded, self._arm)
            return
        back = not self._armed and not at_start
        self._armed = True
        if back:
            log.info("%s is back; watching it again", os.fsdecode(self._folder))
            self._ring()

    def _read(self) -> None:
        """One read of what the kernel holds (the loop calls again while more is there): a ring."""
        try:
            events = os.read(self._fd, READ_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        seen = _kinds(events)
        if seen & InotifyConstants.IN_Q_OVERFLOW:
            self._overflowed()
        elif seen & InotifyConstants.IN_IGNORED:
            self._lost()
        self._ring()

    def _overflowed(self) -> None:
        """The kernel dropped events — which may have said the watch ended (the folder removed and made
        again): watching the folder again keeps the watch (same folder) or makes one (a new one)."""
        log.warning("%s: the kernel dropped file notifications; rescanning", os.fsdecode(self._folder))
        if self._armed and inotify_add_watch(self._fd, self._folder, ARRIVALS) < 0:
            self._lost()

    def _lost(self) -> None:
        if not self._armed:
            return
        self._armed = False
        log.warning("%s was removed; watching for it every %.0f s", os.fsdecode(self._folder), self._retry_s)
        self._retry = self._loop.call_later(self._retry_s, self._guarded, self._arm)


def _kinds(events: bytes) -> int:
    """The event kinds in ``events`` (whole ``struct inotify_event`` records), or-ed together."""
    kinds = 0
    offset = 0
    while offset < len(events):
        _wd, mask, _cookie, length = _HEADER.unpack_from(events, offset)
        kinds |= mask
        offset += _HEADER.size + length
    return kinds


def _os_error(call: str, errno: int, path: bytes | None = None) -> OSError:
    where = f": {os.fsdecode(path)}" if path is not None else ""
    return OSError(errno, f"{call}{where}: {os.strerror(errno)}")

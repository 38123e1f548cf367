"""The doorbell on a real folder with the real kernel's inotify (Linux only)."""

from __future__ import annotations

import asyncio
import errno
import os
import sys
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.skipif(sys.platform != "linux", reason="inotify is Linux's"),
    pytest.mark.timeout(60),
]

RETRY_S = 0.05
DROPPED = "the kernel dropped file notifications"


class Rings:
    """Counts the rings; ``next()`` waits for the next one."""

    def __init__(self) -> None:
        self.count = 0
        self._rung = asyncio.Event()

    def __call__(self) -> None:
        self.count += 1
        self._rung.set()

    async def next(self) -> None:
        await asyncio.wait_for(self._rung.wait(), timeout=10)
        self._rung.clear()


def _made(folder: Path, count: int, prefix: str = "job") -> None:
    """``count`` new files, made while the event loop waits (the kernel queues their events)."""
    for number in range(count):
        (folder / f"{prefix}-{number:06d}.txt").touch()


def _queued_events_limit() -> int:
    """Events the kernel queues for one inotify descriptor before it drops them."""
    return int(Path("/proc/sys/fs/inotify/max_queued_events").read_text())


async def test_a_burst_of_arrivals_rings_once(tmp_path: Path) -> None:
    from shared.doorbell import Doorbell

    rings = Rings()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    folder = tmp_path / "incoming"
    folder.mkdir()
    with Doorbell(str(folder), rings, retry_s=RETRY_S):
        _made(folder, 500)
        _made(elsewhere, 10, prefix="moved")
        for path in elsewhere.iterdir():
            path.rename(folder / path.name)
        await rings.next()
        assert rings.count == 1  # 510 arrivals, read in one go
        (folder / "one-more.txt").touch()
        await rings.next()
    assert rings.count == 2


async def test_it_rings_after_the_kernel_dropped_events(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from shared.doorbell import Doorbell

    limit = _queued_events_limit()
    if limit > 100_000:
        pytest.skip(f"max_queued_events is {limit}: too many files to make here")
    rings = Rings()
    with Doorbell(str(tmp_path), rings, retry_s=RETRY_S):
        _made(tmp_path, limit + 10)  # the kernel's queue overflows: IN_Q_OVERFLOW, arrivals lost
        while DROPPED not in caplog.text:  # a ring for each read of what the kernel kept, then its report
            await rings.next()
        (tmp_path / "after.txt").touch()  # and it goes on ringing
        await rings.next()


async def test_a_folder_made_again_while_notifications_were_dropped_is_watched(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The kernel's queue is full when the folder is removed: the event saying the watch ended is
    dropped too. The doorbell watches the folder again after any loss, so the new folder rings."""
    from shared.doorbell import Doorbell

    limit = _queued_events_limit()
    if limit > 100_000:
        pytest.skip(f"max_queued_events is {limit}: too many files to make here")
    rings = Rings()
    folder = tmp_path / "incoming"
    folder.mkdir()
    with Doorbell(str(folder), rings, retry_s=300.0) as bell:  # no retry within the test
        _made(folder, limit + 10)
        for path in folder.iterdir():
            path.unlink()
        folder.rmdir()
        folder.mkdir()
        while DROPPED not in caplog.text:
            await rings.next()
        assert bell.armed
        (folder / "new.txt").touch()
        await rings.next()


async def test_a_folder_removed_and_made_again_is_watched_again(tmp_path: Path) -> None:
    from shared.doorbell import Doorbell

    rings = Rings()
    folder = tmp_path / "incoming"
    folder.mkdir()
    with Doorbell(str(folder), rings, retry_s=RETRY_S) as bell:
        folder.rmdir()
        await rings.next()  # the watch ended: a ring, the listener rescans (and finds no folder)
        assert not bell.armed
        folder.mkdir()
        (folder / "while-unwatched.txt").touch()
        await rings.next()  # watched again: a ring for what came meanwhile
        assert bell.armed
        (folder / "later.txt").touch()
        await rings.next()


async def test_a_missing_folder_is_an_error_naming_it(tmp_path: Path) -> None:
    from shared.doorbell import Doorbell

    missing = tmp_path / "nowhere"
    with pytest.raises(OSError) as raised, Doorbell(str(missing), Rings(), retry_s=RETRY_S):
        pass
    assert raised.value.errno == errno.ENOENT
    assert str(missing) in str(raised.value)


async def test_leaving_closes_the_descriptor(tmp_path: Path) -> None:
    from shared.doorbell import Doorbell

    before = set(os.listdir("/proc/self/fd"))
    with Doorbell(str(tmp_path), Rings(), retry_s=RETRY_S):
        assert len(set(os.listdir("/proc/self/fd")) - before) == 1
    assert set(os.listdir("/proc/self/fd")) - before == set()


async def test_a_read_that_fails_stops_the_doorbell_and_comes_out_of_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from shared.doorbell import Doorbell

    def failing_read(fd: int, size: int) -> bytes:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    rings = Rings()
    with pytest.raises(OSError) as raised, Doorbell(str(tmp_path), rings, retry_s=RETRY_S):
        monkeypatch.setattr(os, "read", failing_read)  # the loop's own wake-ups use recv, not read
        (tmp_path / "job.txt").touch()
        await asyncio.wait_for(asyncio.Event().wait(), timeout=10)  # cancelled by the doorbell
    assert raised.value.errno == errno.EIO
    assert rings.count == 0
    assert caplog.text.count("the doorbell stopped") == 1  # once, not once per turn of the loop
    current = asyncio.current_task()
    assert current is not None and current.cancelling() == 0  # the task goes on, not half-cancelled


async def test_a_ring_that_raises_comes_out_of_the_doorbell(tmp_path: Path) -> None:
    from shared.doorbell import Doorbell

    def ring() -> None:
        raise RuntimeError("the listener is broken")

    with (
        pytest.raises(RuntimeError, match="the listener is broken"),
        Doorbell(str(tmp_path), ring, retry_s=RETRY_S),
    ):
        (tmp_path / "job.txt").touch()
        await asyncio.wait_for(asyncio.Event().wait(), timeout=10)

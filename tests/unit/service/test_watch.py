"""Filesystem notifications handed to the event loop: in batches, bounded, only what was asked for."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest
from watchdog.events import FileCreatedEvent

from shared.watch import OVERFLOW, Change, _Forwarder, arrivals, watching


async def test_changes_a_busy_loop_cannot_take_are_bounded_and_end_in_an_overflow(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("shared.watch.PENDING_MAX", 10)
    got: list[Change] = []
    last = asyncio.Event()

    def sink(change: Change) -> None:
        got.append(change)
        if change[2] == "24.txt":
            last.set()

    forwarder = _Forwarder(asyncio.get_running_loop(), sink)

    def burst() -> None:  # watchdog's thread, while the loop is busy (it waits for the thread)
        for index in range(25):
            forwarder.on_created(FileCreatedEvent(f"/queue/incoming/{index}.txt"))

    thread = threading.Thread(target=burst)
    thread.start()
    thread.join()
    await asyncio.wait_for(last.wait(), timeout=5)
    assert got[0] == OVERFLOW  # the dropped ones are recounted, not lost
    assert got[1:] == [("added", "incoming", f"{index}.txt") for index in (22, 23, 24)]


async def test_comings_and_goings_report_no_writes(tmp_path: Path) -> None:
    got: list[Change] = []
    gone = asyncio.Event()

    def sink(change: Change) -> None:
        got.append(change)
        if change[0] == "removed":
            gone.set()

    async with watching([tmp_path], sink, comings_and_goings=True):
        job = tmp_path / "a.txt"
        job.write_bytes(b"prompt")
        with job.open("ab") as handle:
            handle.write(b" more")
        job.unlink()
        await asyncio.wait_for(gone.wait(), timeout=10)
    assert got == [("added", tmp_path.name, "a.txt"), ("removed", tmp_path.name, "a.txt")]


async def test_unpaired_changes_are_each_half_of_a_move_in_order_and_no_folder_of_its_own(
    tmp_path: Path,
) -> None:
    got: list[Change] = []
    gone = asyncio.Event()

    def sink(change: Change) -> None:
        got.append(change)
        if change == ("removed", "b", "x.txt"):
            gone.set()

    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
    async with watching([tmp_path], sink, recursive=True, pair_moves=False):
        (tmp_path / "c").mkdir()
        (tmp_path / "a" / "x.txt").write_bytes(b"prompt")
        (tmp_path / "a" / "x.txt").rename(tmp_path / "b" / "x.txt")
        (tmp_path / "b" / "x.txt").unlink()
        await asyncio.wait_for(gone.wait(), timeout=10)
    assert got == [
        ("added", "a", "x.txt"),
        ("written", "a", "x.txt"),
        ("removed", "a", "x.txt"),
        ("added", "b", "x.txt"),
        ("removed", "b", "x.txt"),
    ]


@pytest.mark.parametrize("polling", [False, True], ids=["doorbell", "polling"])
async def test_arrivals_ring_for_a_file_moved_in_or_made(tmp_path: Path, polling: bool) -> None:
    """``arrivals`` on this system (the doorbell) and where inotify sees nothing (watchdog polling)."""
    rung = asyncio.Event()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    folder = tmp_path / "incoming"
    folder.mkdir()
    async with arrivals(folder, rung.set, polling=polling, retry_s=1.0):
        (elsewhere / "moved.txt").write_text("x")
        (elsewhere / "moved.txt").rename(folder / "moved.txt")
        await asyncio.wait_for(rung.wait(), timeout=10)
        rung.clear()
        (folder / "made.txt").write_text("x")
        await asyncio.wait_for(rung.wait(), timeout=10)

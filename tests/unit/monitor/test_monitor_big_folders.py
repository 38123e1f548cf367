"""The monitor over a big folder: a recount hands the event loop turns and keeps no names; a recursive
watch finds the folders below its root without listing their files."""

from __future__ import annotations

import asyncio
import os
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from services.monitor.counter import ENTRIES_PER_TURN, QueueCounter
from services.monitor.turns import LoopTurns
from shared.inotify import folders_below
from shared.queue import ARCHIVE, PROCESSED, FileQueue
from shared.watch import Change, watching

BIG = 20_000  # files in the big folder: their names alone are ~2 MB, far above what either may hold
HELD_AT_MOST = 512 * 1024  # what a recount or a watch may allocate at its peak whatever the folder's size


def fill(folder: Path, files: int) -> None:
    seed = folder / "seed.json"
    seed.write_bytes(b"{}")
    for index in range(files - 1):
        os.link(seed, folder / f"20261130T120000{index:06d}Z-{index:06x}.json")


@pytest.fixture
def big_day(queue: FileQueue) -> Path:
    day = queue.folder(ARCHIVE) / "2026-11-30"
    day.mkdir()
    fill(day, BIG)
    return day


async def test_a_thread_taking_its_turn_waits_until_the_loop_ran_what_was_ready() -> None:
    loop = asyncio.get_running_loop()
    turn = LoopTurns(loop)
    ran: list[str] = []

    def worker() -> list[str]:
        loop.call_soon_threadsafe(ran.append, "a scrape that arrived")
        turn()
        return list(ran)

    assert await asyncio.to_thread(worker) == ["a scrape that arrived"]


def test_a_turn_on_a_closed_loop_does_not_wait() -> None:
    loop = asyncio.new_event_loop()
    loop.close()
    LoopTurns(loop)()  # returns: nobody is left to wait for


def test_a_recount_hands_over_a_turn_every_so_many_entries(queue: FileQueue, big_day: Path) -> None:
    fill(queue.folder(PROCESSED), 2 * ENTRIES_PER_TURN + 1)
    turns: list[None] = []
    found = QueueCounter(queue).recount(lambda: turns.append(None))
    assert found.counts[PROCESSED] == 2 * ENTRIES_PER_TURN + 1
    assert found.counts[f"{ARCHIVE}/{big_day.name}"] == BIG
    assert len(turns) == 2 + BIG // ENTRIES_PER_TURN


async def test_a_recount_in_a_thread_keeps_no_names_of_a_big_folder(queue: FileQueue, big_day: Path) -> None:
    counter = QueueCounter(queue)
    tracemalloc.start()
    try:
        await counter.reconcile_in_thread()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert counter.count(ARCHIVE) == BIG
    assert peak < HELD_AT_MOST


async def test_a_recursive_watch_lists_no_big_folder_and_watches_every_folder_below(
    queue: FileQueue, big_day: Path
) -> None:
    got: list[Change] = []
    arrived = asyncio.Event()

    def sink(change: Change) -> None:
        got.append(change)
        if len(got) == 2:
            arrived.set()

    tracemalloc.start()
    try:
        async with watching([queue.root], sink, recursive=True, pair_moves=False, comings_and_goings=True):
            peak = tracemalloc.get_traced_memory()[1]
            (big_day / "new.json").write_bytes(b"{}")
            (queue.folder(PROCESSED) / "other.json").write_bytes(b"{}")
            await asyncio.wait_for(arrived.wait(), timeout=10)
    finally:
        tracemalloc.stop()
    assert sorted(got) == [("added", big_day.name, "new.json"), ("added", PROCESSED, "other.json")]
    assert peak < HELD_AT_MOST


def test_folders_below_come_parents_first_and_a_leaf_is_not_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "archive" / "2026-11-30").mkdir(parents=True)
    (tmp_path / "processed").mkdir()
    fill(tmp_path / "processed", 10)
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "archive" / "linked").symlink_to(tmp_path / "elsewhere")
    if os.stat(tmp_path / "processed").st_nlink != 2:
        pytest.skip("this filesystem keeps no link count per subfolder: every folder is read")
    read: list[bytes] = []
    scandir = os.scandir

    def recorded(path: bytes) -> Any:
        read.append(path)
        return scandir(path)

    monkeypatch.setattr("shared.inotify.os.scandir", recorded)
    below = [os.fsdecode(path) for path in folders_below(os.fsencode(tmp_path), follow_symlinks=False)]
    assert sorted(below) == sorted(
        str(tmp_path / name) for name in ("archive", "archive/2026-11-30", "processed", "elsewhere")
    )
    assert below.index(str(tmp_path / "archive")) < below.index(str(tmp_path / "archive" / "2026-11-30"))
    assert [os.fsdecode(path) for path in read] == [str(tmp_path), str(tmp_path / "archive")]

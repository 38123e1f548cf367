"""The monitor and cleanup over a million result files, against the name-keeping counter of before.

``python -m benchmarks.million [--files 1000000] [--renames 10000] [--scrapes 2000]`` fills a
temporary queue once (most results in ``archive/<day>/`` folders as hard links of a few files, 15 % in
``error/`` and ``processed/`` as real results, a few jobs waiting), then runs the monitor's counting in
a fresh child process per counter — the counts-only one of today and the name-keeping one of before
(the baseline) — so each child's RSS is its own. Each child: watch the queue, count it (time to exact
counts after start), render ``/metrics`` ``--scrapes`` times (p50/p99), rename ``--renames`` results
from ``processed/`` into today's archive folder and time until the counts are exact again, and report
its peak RSS. Then one cleanup pass in a thread (the first reads every result in ``processed/`` and
``error/``, as every pass did before; the second only what changed since) while a timer on the event
loop records its worst stall.
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import json
import logging
import math
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks import busy_day
from services.cleanup.tidy import Tidier
from services.monitor.app import Monitor
from services.monitor.counter import QueueCounter
from shared.config import DEFAULT_CONFIG, load_settings
from shared.queue import (
    ARCHIVE,
    COUNTED_FOLDERS,
    ERROR,
    INCOMING,
    PROCESSED,
    FileQueue,
    JobResult,
    Status,
    archive_day_name,
    counted_folder,
    counts_as,
)
from shared.scoring import ScoreResult
from shared.watch import Change, watching

log = logging.getLogger("benchmarks.million")
DAYS = 30
SHARE_ERROR = 0.10
SHARE_PROCESSED = 0.05
WAITING = 20
STALL_TICK_S = 0.005
LINKS_PER_SEED = 60_000  # ext4 allows 65,000 links to one file
PLACEHOLDER = b"JOB-ID-PLACEHOLDER"


# -- filling the queue ---------------------------------------------------------------------------------


def fill(queue: FileQueue, files: int, renames: int) -> None:
    """``files`` results: the archived ones as hard links of a few files (only counted, never read), those
    in ``processed/`` and ``error/`` each its own valid result; at least ``renames`` in ``processed/``."""
    queue.ensure()
    today = datetime.now(UTC)
    processed = max(renames, int(files * SHARE_PROCESSED))
    error = int(files * SHARE_ERROR)
    archived = max(0, files - processed - error)
    day_folders = [
        str(queue.folder(ARCHIVE) / archive_day_name(today - timedelta(days=d + 1))) for d in range(DAYS)
    ]
    for folder in day_folders:
        os.makedirs(folder, exist_ok=True)
    seeds = _seeds(queue, files)
    stamp = today - timedelta(days=DAYS + 1)
    link = os.link
    for index in range(archived):
        link(seeds[index // LINKS_PER_SEED], f"{day_folders[index % DAYS]}/{_id(stamp, index)}.json")
    for place, count, offset in ((PROCESSED, processed, archived), (ERROR, error, archived + processed)):
        # Cleanup reads these (and refuses a result whose job id is not its file name): real results.
        template = _result_template(place)
        base = queue.folder(place)
        for index in range(offset, offset + count):
            job_id = _id(stamp, index)
            (base / f"{job_id}.json").write_bytes(template.replace(PLACEHOLDER, job_id.encode()))
    for index in range(WAITING):
        (queue.folder(INCOMING) / f"{_id(today, index)}.txt").write_bytes(b"Erklaere Katzen.\n")
    for seed in seeds:
        os.unlink(seed)


def _result_template(place: str) -> bytes:
    """A valid result's bytes for ``place`` with :data:`PLACEHOLDER` as its job id."""
    score = ScoreResult(
        scorer="syntx-2", format="sigma", total=91, completeness=100, structure=100, fields=[]
    )
    status: Status = "passed" if place == PROCESSED else "failed"
    result = JobResult(
        job_id=PLACEHOLDER.decode(),
        status=status,
        reason="benchmark",
        score=score if status == "passed" else None,
        scorer="syntx-2" if status == "passed" else None,
    )
    return result.encoded()


def _seeds(queue: FileQueue, files: int) -> list[str]:
    """Enough copies of one result that no file exceeds the filesystem's link limit."""
    data = json.dumps({"status": "passed", "score": 91}).encode()
    seeds = []
    for number in range(files // LINKS_PER_SEED + 2):
        seed = queue.folder(".tmp") / f"seed-{number}.json"
        seed.write_bytes(data)
        seeds.append(str(seed))
    return seeds


def _id(stamp: datetime, index: int) -> str:
    return f"{stamp + timedelta(microseconds=index):%Y%m%dT%H%M%S%f}Z-{index % 0xFFFFFF:06x}"


# -- the counter of before: a set of names per folder (the baseline) ------------------------------------


class NameSetCounter:
    """What the monitor kept before: every counted file's name, per folder."""

    def __init__(self, queue: FileQueue) -> None:
        self._queue = queue
        self._names: dict[str, set[str]] = {folder: set() for folder in COUNTED_FOLDERS}
        self.unsettled: set[str] = set()
        self.last_result_at = -math.inf  # the monitor's progress asks; no result lands in this benchmark

    def reconcile(self) -> int:
        for folder in COUNTED_FOLDERS:
            self._names[folder] = self._queue.names(folder)
        return 0

    async def reconcile_in_thread(self) -> int:
        return await asyncio.to_thread(self.reconcile)

    def on_change(self, change: Change) -> None:
        kind, parent, name = change
        names = self._names.get(counted_folder(parent))
        if names is None or not counts_as(counted_folder(parent), name):
            return
        if kind == "added":
            names.add(name)
        elif kind == "removed":
            names.discard(name)

    def counts(self) -> dict[str, int]:
        return {folder: len(names) for folder, names in self._names.items()}

    def count(self, folder: str) -> int:
        return len(self._names[folder])

    def oldest_incoming_age_s(self) -> float:
        for name in heapq.nsmallest(8, self._names[INCOMING]):
            try:
                return max(0.0, time.time() - os.stat(self._queue.folder(INCOMING) / name).st_mtime)
            except FileNotFoundError:
                continue
        return 0.0


# -- one monitor in a child process ---------------------------------------------------------------------


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def _monitor_child(root: Path, kind: str, renames: int, scrapes: int) -> dict[str, Any]:
    settings = load_settings([DEFAULT_CONFIG], data_dir=root.parent, monitor={"port": 0})
    monitor = Monitor(settings)
    monitor.queue = FileQueue(root)
    counter: Any = QueueCounter(monitor.queue) if kind == "counts" else NameSetCounter(monitor.queue)
    monitor.counter = counter
    truth = monitor.queue.counts()
    reached = asyncio.Event()
    expected: dict[str, int] = {}

    def on_change(change: Change) -> None:
        counter.on_change(change)
        if expected and counter.counts() == expected:
            reached.set()

    started = time.perf_counter()
    async with watching([root], on_change, recursive=True, pair_moves=kind == "names"):
        await counter.reconcile_in_thread()
        exact_after_start = time.perf_counter() - started
        exact = counter.counts() == truth
        timings, own = [], []
        for _ in range(scrapes):
            begun, begun_cpu = time.perf_counter(), time.thread_time()
            monitor.metrics_reply()
            timings.append(time.perf_counter() - begun)
            own.append(time.thread_time() - begun_cpu)
        names = sorted(os.listdir(monitor.queue.folder(PROCESSED)))[:renames]
        today = monitor.queue.folder(ARCHIVE) / archive_day_name(datetime.now(UTC))
        today.mkdir(exist_ok=True)
        await asyncio.sleep(0.2)  # the new day folder is watched before results land in it
        expected.update(truth, processed=truth[PROCESSED] - len(names), archive=truth[ARCHIVE] + len(names))
        source = monitor.queue.folder(PROCESSED)
        await asyncio.to_thread(_move_all, source, today, names)
        burst_done = time.perf_counter()
        await asyncio.wait_for(reached.wait(), timeout=120)
        exact_after_burst = time.perf_counter() - burst_done
    return {
        "exact_after_start_s": exact_after_start,
        "exact": exact,
        "scrape_p50_ms": _percentile(timings, 0.5) * 1000,
        "scrape_p99_ms": _percentile(timings, 0.99) * 1000,
        "scrape_cpu_p99_ms": _percentile(own, 0.99) * 1000,
        "exact_after_burst_s": exact_after_burst,
        "peak_rss_mb": _rss_mb(),
    }


def _move_all(source: Path, target: Path, names: list[str]) -> None:
    for name in names:
        os.rename(source / name, target / name)


def _run_child(root: Path, kind: str, renames: int, scrapes: int) -> dict[str, Any]:
    command = [sys.executable, "-m", "benchmarks.million", "--child", kind, "--root", str(root)]
    command += ["--renames", str(renames), "--scrapes", str(scrapes)]
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    figures: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return figures


def _undo_burst(queue: FileQueue) -> None:
    today = queue.folder(ARCHIVE) / archive_day_name(datetime.now(UTC))
    for name in os.listdir(today):
        os.rename(today / name, queue.folder(PROCESSED) / name)
    today.rmdir()


# -- cleanup -----------------------------------------------------------------------------------------


async def _cleanup_pass(tidier: Tidier) -> tuple[float, float]:
    """One pass in a thread; returns (seconds, worst event loop stall in seconds)."""
    worst = 0.0
    done = False

    async def ticker() -> None:
        nonlocal worst
        while not done:
            before = time.perf_counter()
            await asyncio.sleep(STALL_TICK_S)
            worst = max(worst, time.perf_counter() - before - STALL_TICK_S)

    timer = asyncio.create_task(ticker())
    started = time.perf_counter()
    await asyncio.to_thread(tidier.run)
    took = time.perf_counter() - started
    done = True
    await timer
    return took, worst


async def _cleanup(root: Path) -> dict[str, float]:
    settings = load_settings([DEFAULT_CONFIG], data_dir=root.parent)
    tidier = Tidier(FileQueue(root), root.parent / "logs", settings.cleanup, settings.queue.max_result_bytes)
    first, first_stall = await _cleanup_pass(tidier)
    second, second_stall = await _cleanup_pass(tidier)
    return {
        "first_s": first,
        "first_stall_ms": first_stall * 1000,
        "next_s": second,
        "next_stall_ms": second_stall * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1_000_000)
    parser.add_argument("--renames", type=int, default=10_000)
    parser.add_argument("--scrapes", type=int, default=2000)
    parser.add_argument(
        "--layout",
        choices=("days", "day"),
        default="days",
        help="days: the archive in 30 day folders; day: two thirds in one (benchmarks.busy_day)",
    )
    parser.add_argument("--reconcile-s", type=float, default=0.5, help="--layout day: the recount period")
    parser.add_argument("--before", help="--layout day: a git revision whose monitor runs first")
    parser.add_argument("--dir", help="--layout day: where the files are made (e.g. /dev/shm)")
    parser.add_argument("--child", choices=("counts", "names"), help=argparse.SUPPRESS)
    parser.add_argument("--root", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        figures = asyncio.run(_monitor_child(args.root, args.child, args.renames, args.scrapes))
        sys.stdout.write(json.dumps(figures) + "\n")
        return
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.layout == "day":
        options = busy_day.Options(
            args.files, args.renames, args.scrapes, args.reconcile_s, args.before, args.dir
        )
        busy_day.run(options)
        return
    with tempfile.TemporaryDirectory() as scratch:
        queue = FileQueue(Path(scratch) / "queue")
        started = time.perf_counter()
        fill(queue, args.files, args.renames)
        log.info(
            "%d result files made in %.1f s: %s", args.files, time.perf_counter() - started, queue.counts()
        )
        before = _run_child(queue.root, "names", args.renames, args.scrapes)
        _undo_burst(queue)
        after = _run_child(queue.root, "counts", args.renames, args.scrapes)
        cleanup = asyncio.run(_cleanup(queue.root))
    log.info("%-24s %14s %14s %8s %8s", "monitor", "names (before)", "counts", "ratio", "target")
    targets = {
        "exact_after_start_s": 5.0,
        "scrape_p99_ms": 5.0,
        "peak_rss_mb": 80.0,
        "exact_after_burst_s": 0.5,
    }
    for name in (
        "exact_after_start_s",
        "scrape_p50_ms",
        "scrape_p99_ms",
        "scrape_cpu_p99_ms",
        "exact_after_burst_s",
        "peak_rss_mb",
    ):
        old, new = before[name], after[name]
        target = f"<= {targets[name]:g}" if name in targets else ""
        log.info("%-24s %14.3f %14.3f %7.2fx %8s", name, old, new, new / old if old else 0.0, target)
    log.info("counts exact after start: before %s, now %s", before["exact"], after["exact"])
    log.info("scrape_cpu: the scrape's own CPU time (wall time includes waiting for a share of the CPU)")
    log.info("load average during the run: %s", " ".join(f"{load:.1f}" for load in os.getloadavg()))
    log.info(
        "cleanup pass (thread): first %.1f s (reads every result, as every pass did before; worst loop "
        "stall %.1f ms), next %.1f s (worst loop stall %.1f ms); target <= 60 s",
        cleanup["first_s"],
        cleanup["first_stall_ms"],
        cleanup["next_s"],
        cleanup["next_stall_ms"],
    )


if __name__ == "__main__":
    main()

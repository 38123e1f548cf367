"""The archive's day folders against the flat layout of earlier versions, in one process.

``python -m benchmarks.archive [--files 100000] [--days 100]`` fills a temporary queue with archived
results spread over ``--days`` day folders, and a second one with the same files flat in ``archive/``
and looks results up the way earlier versions did (one stat per result folder: the baseline), then
times what every reader does: look a job's result up (present and missing — a consumer's check before
writing a result), list every archived result, count them, and expire a day.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from shared.queue import ARCHIVE, ERROR, PROCESSED, FileQueue, new_job_id

log = logging.getLogger("benchmarks.archive")
LOOKUPS = 2000


def _fill(queue: FileQueue, files: int, days: int, dated: bool, today: datetime) -> list[str]:
    queue.ensure()
    ids = []
    for index in range(files):
        archived = today - timedelta(days=days - 1 - index * days // files)
        job_id = new_job_id(archived - timedelta(hours=1, microseconds=index))
        folder = queue.folder(ARCHIVE) / archived.strftime("%Y-%m-%d") if dated else queue.folder(ARCHIVE)
        folder.mkdir(exist_ok=True)
        (folder / f"{job_id}.json").write_bytes(b"{}")
        ids.append(job_id)
    return ids


def _per_call_us(action: Callable[[], object], repeat: int) -> float:
    started = time.perf_counter()
    for _ in range(repeat):
        action()
    return (time.perf_counter() - started) / repeat * 1e6


def _flat_result_path(queue: FileQueue, job_id: str) -> Path | None:
    """How earlier versions looked a result up: processed/, error/, archive/, one stat each."""
    for folder in (PROCESSED, ERROR, ARCHIVE):
        path = queue.folder(folder) / f"{job_id}.json"
        if path.exists():
            return path
    return None


def _measure(
    queue: FileQueue, ids: list[str], today: datetime, lookup: Callable[[str], Path | None]
) -> dict[str, float]:
    recent_missing = [new_job_id(today - timedelta(minutes=5)) for _ in range(LOOKUPS)]
    recent_present = ids[-LOOKUPS:]
    missing_iter, present_iter = iter(recent_missing * 2), iter(recent_present * 2)
    started = time.perf_counter()
    listed = sum(1 for _ in queue.archived_results())
    listing_s = time.perf_counter() - started
    assert listed == len(ids), (listed, len(ids))
    return {
        "lookup missing (µs)": _per_call_us(lambda: lookup(next(missing_iter)), LOOKUPS),
        "lookup present (µs)": _per_call_us(lambda: lookup(next(present_iter)), LOOKUPS),
        "lookup hand-named id (µs)": _per_call_us(lambda: lookup("my-own-job"), 200),
        "list all (s)": listing_s,
        "count (s)": _timed(lambda: queue.count(ARCHIVE)),
    }


def _timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=100)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    today = datetime.now(UTC)
    with tempfile.TemporaryDirectory() as scratch:
        flat = FileQueue(Path(scratch) / "flat")
        dated = FileQueue(Path(scratch) / "dated")
        flat_ids = _fill(flat, args.files, args.days, False, today)
        baseline = _measure(flat, flat_ids, today, lambda job_id: _flat_result_path(flat, job_id))
        figures = _measure(dated, _fill(dated, args.files, args.days, True, today), today, dated.result_path)
        removal = _timed(lambda: [dated.remove_archive_day(name) for _, name in dated.archive_days()[:1]])
    log.info("%d archived results over %d days", args.files, args.days)
    log.info("%-28s %14s %14s %8s", "", "flat (before)", "day folders", "ratio")
    for name, before in baseline.items():
        after = figures[name]
        log.info("%-28s %14.3f %14.3f %7.2fx", name, before, after, after / before if before else 0.0)
    log.info("removing one expired day folder (%d files): %.3f s", args.files // args.days, removal)


if __name__ == "__main__":
    main()

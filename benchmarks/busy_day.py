"""The monitor at its worst layout: a million results, two thirds of them in one archive day folder.

``python -m benchmarks.million --layout day [--files 1000000] [--renames 10000] [--scrapes 2000]
[--before REV] [--dir DIR]`` lays the queue out as a busy day leaves it (a third in ``processed/``, two
thirds in today's ``archive/<day>/``, as hard links of a few files), starts a nats-server, then the monitor
as its own process (``python -m services.monitor``, the shipped configuration) and measures it from
outside, as Prometheus would. Each monitor runs twice, each time as a new process:

- with the shipped configuration (its next recount 30 s away): exact after start, from starting the
  process to the first ``/metrics`` whose counts are all exact; ``--scrapes`` requests of ``/metrics``
  one after the other, each on a new connection (wall time, request sent to body read) — at rest, what
  the machine allows at the moment; then ``--renames`` results renamed (by this process) from
  ``processed/`` into the busy day folder and ``/metrics`` read every :data:`POLL_S` until its counts
  are exact, from the last rename;
- recounting every ``--reconcile-s`` (so a recount of the million nearly always runs): the same scrapes
  and renames, now while it counts;
- peak RSS: the higher ``VmHWM`` of the two.

``--before REV`` measures the monitor of git revision ``REV`` first, on the same files, in the same run.
"""

from __future__ import annotations

import http.client
import logging
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from benchmarks.procs import Children, extracted, free_port, peak_rss_mb, start_nats
from shared.config import CONFIG_ENV, DEFAULT_CONFIG, PROJECT_ROOT
from shared.queue import ARCHIVE, COUNTED_FOLDERS, PROCESSED, FileQueue, archive_day_name

log = logging.getLogger("benchmarks.busy_day")

LINKS_PER_SEED = 60_000  # ext4 allows 65,000 links to one file
SERIES = re.compile(rb'^syntx_queue_jobs\{folder="([^"]+)"\} (\S+)$', re.M)
POLL_S = 0.01  # how often /metrics is read while waiting for exact counts (the figures' resolution)
START_WITHIN_S = 120.0
EXACT_WITHIN_S = 60.0
NOTABLE = ("overflow", "corrected")  # what the monitor's log says when notifications were lost
TARGETS = {
    "exact_after_start_s": 5.0,
    "scrape_p99_ms": 5.0,
    "peak_rss_mb": 80.0,
    "exact_after_renames_s": 0.5,
}


@dataclass
class Figures:
    exact_after_start_s: float
    rest_scrape_p50_ms: float  # no recount running: what the machine allows at the moment
    rest_scrape_p99_ms: float
    scrape_p50_ms: float  # recounts of the million back to back
    scrape_p99_ms: float
    scrape_max_ms: float
    exact_after_renames_s: float  # the shipped configuration (a recount every 30 s)
    counting_exact_after_renames_s: float  # while recounts of the million run back to back
    peak_rss_mb: float


@dataclass(frozen=True)
class Options:
    files: int
    renames: int
    scrapes: int
    reconcile_s: float
    before: str | None
    dir: str | None


@dataclass(frozen=True)
class Layout:
    queue: FileQueue
    day: str  # the busy day folder's name
    truth: dict[str, int]  # what every count must read

    @property
    def busy(self) -> Path:
        return self.queue.folder(ARCHIVE) / self.day


def fill(root: Path, files: int) -> Layout:
    """A third of ``files`` in ``processed/``, the rest in today's day folder; hard links of a few files."""
    queue = FileQueue(root)
    queue.ensure()
    day = archive_day_name(datetime.now(UTC))
    (queue.folder(ARCHIVE) / day).mkdir()
    processed = files - files * 2 // 3
    seeds = []
    for number in range(files // LINKS_PER_SEED + 1):
        seed = queue.folder(".tmp") / f"seed-{number}.json"
        seed.write_bytes(b'{"status": "passed", "score": 91}')
        seeds.append(str(seed))
    stamp = datetime.now(UTC) - timedelta(days=1)
    places = (str(queue.folder(PROCESSED)), str(queue.folder(ARCHIVE) / day))
    for index in range(files):
        name = f"{stamp + timedelta(microseconds=index):%Y%m%dT%H%M%S%f}Z-{index % 0xFFFFFF:06x}.json"
        os.link(seeds[index // LINKS_PER_SEED], f"{places[index >= processed]}/{name}")
    for made in seeds:
        os.unlink(made)
    truth = dict.fromkeys(COUNTED_FOLDERS, 0) | {PROCESSED: processed, ARCHIVE: files - processed}
    return Layout(queue, day, truth)


def scrape(port: int) -> tuple[float, dict[str, int]]:
    """One ``/metrics`` on a new connection: (seconds, the queue counts it shows)."""
    begun = time.perf_counter()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", "/metrics")
        body = connection.getresponse().read()
    finally:
        connection.close()
    took = time.perf_counter() - begun
    return took, {folder.decode(): int(float(value)) for folder, value in SERIES.findall(body)}


def shows(port: int, truth: dict[str, int]) -> bool:
    try:
        return scrape(port)[1] == truth
    except OSError:
        return False


def wait_exact(port: int, truth: dict[str, int], within_s: float) -> float:
    """Seconds until ``/metrics`` shows ``truth`` (from this call)."""
    begun = time.perf_counter()
    while not shows(port, truth):
        if time.perf_counter() - begun > within_s:
            raise RuntimeError(f"the monitor's counts were not exact within {within_s:.0f} s")
        time.sleep(POLL_S)  # a sampling period of the scrape, not a wait for an event
    return time.perf_counter() - begun


def start_monitor(
    children: Children, tree: Path, nats_url: str, layout: Layout, reconcile_s: float | None
) -> tuple[subprocess.Popen[bytes], int]:
    """``python -m services.monitor`` of ``tree`` on the layout's queue; returns it and its port."""
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("SYNTX_")}
    env.update(
        {
            CONFIG_ENV: str(tree / DEFAULT_CONFIG.relative_to(PROJECT_ROOT)),
            "SYNTX_DATA_DIR": str(layout.queue.root.parent),
            "SYNTX_NATS__URL": nats_url,
            "SYNTX_MONITOR__HOST": "127.0.0.1",
            "SYNTX_MONITOR__PORT": str(port),
            "PYTHONPATH": str(tree),
        }
    )
    if reconcile_s is not None:
        env["SYNTX_MONITOR__RECONCILE_S"] = str(reconcile_s)
    return children.spawn([sys.executable, "-m", "services.monitor"], log_of(layout), env=env, cwd=tree), port


def log_of(layout: Layout) -> Path:
    return layout.queue.root.parent / "monitor.out"


def move(names: list[str], source: Path, target: Path) -> None:
    for name in names:
        os.rename(source / name, target / name)


@dataclass
class Phase:
    exact_after_start_s: float
    scrapes: list[float]
    exact_after_renames_s: float
    peak_rss_mb: float


def phase(
    children: Children, tree: Path, nats_url: str, layout: Layout, options: Options, reconcile_s: float | None
) -> Phase:
    """One monitor process: exact after start, ``--scrapes`` scrapes, then ``--renames`` renames into the
    busy day folder (undone after) and how soon its counts are exact again; its peak RSS."""
    log_of(layout).write_bytes(b"")
    started = time.perf_counter()
    monitor, port = start_monitor(children, tree, nats_url, layout, reconcile_s)
    processed = layout.queue.folder(PROCESSED)
    names = sorted(os.listdir(processed))[: options.renames]
    moved = layout.truth | {
        PROCESSED: layout.truth[PROCESSED] - len(names),
        ARCHIVE: layout.truth[ARCHIVE] + len(names),
    }
    try:
        wait_exact(port, layout.truth, START_WITHIN_S)
        exact_after_start = time.perf_counter() - started
        timings = [scrape(port)[0] for _ in range(options.scrapes)]
        move(names, processed, layout.busy)
        exact_after_renames = wait_exact(port, moved, EXACT_WITHIN_S)
        peak = peak_rss_mb(monitor.pid) or 0.0
    finally:
        children.stop(monitor)
        said = log_of(layout).read_text(errors="replace")
        log.info("the monitor's log: %s", ", ".join(f"{said.count(word)}× {word!r}" for word in NOTABLE))
    move(names, layout.busy, processed)
    return Phase(exact_after_start, timings, exact_after_renames, peak)


def measure(children: Children, tree: Path, nats_url: str, layout: Layout, options: Options) -> Figures:
    shipped = phase(children, tree, nats_url, layout, options, None)
    counting = phase(children, tree, nats_url, layout, options, options.reconcile_s)
    return Figures(
        exact_after_start_s=shipped.exact_after_start_s,
        rest_scrape_p50_ms=percentile(shipped.scrapes, 0.5) * 1000,
        rest_scrape_p99_ms=percentile(shipped.scrapes, 0.99) * 1000,
        scrape_p50_ms=percentile(counting.scrapes, 0.5) * 1000,
        scrape_p99_ms=percentile(counting.scrapes, 0.99) * 1000,
        scrape_max_ms=max(counting.scrapes) * 1000,
        exact_after_renames_s=shipped.exact_after_renames_s,
        counting_exact_after_renames_s=counting.exact_after_renames_s,
        peak_rss_mb=max(shipped.peak_rss_mb, counting.peak_rss_mb),
    )


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def loads() -> str:
    return " ".join(f"{load:.1f}" for load in os.getloadavg())


def run(options: Options) -> None:
    children = Children()
    with tempfile.TemporaryDirectory(prefix="syntx-busy-day-", dir=options.dir) as scratch:
        workdir = Path(scratch)
        trees = {"this tree": PROJECT_ROOT}
        if options.before:
            (workdir / "before").mkdir()
            trees = {options.before: extracted(options.before, workdir / "before"), **trees}
        started = time.perf_counter()
        layout = fill(workdir / "data" / "queue", options.files)
        log.info(
            "%d result files made in %.1f s: %s", options.files, time.perf_counter() - started, layout.truth
        )
        try:
            nats_url = start_nats(children, workdir)
            results = {}
            for label, tree in trees.items():
                log.info("load average before %s: %s", label, loads())
                results[label] = measure(children, tree, nats_url, layout, options)
                log.info("%s: %s (load average %s)", label, results[label], loads())
        finally:
            children.close()
    report(results)


def report(results: dict[str, Figures]) -> None:
    labels = list(results)
    log.info("%-32s %s %8s", "monitor", " ".join(f"{label:>14.14s}" for label in labels), "target")
    for name in Figures.__dataclass_fields__:
        figures = " ".join(f"{getattr(results[label], name):14.3f}" for label in labels)
        target = f"<= {TARGETS[name]:g}" if name in TARGETS else ""
        log.info("%-32s %s %8s", name, figures, target)
    log.info("load average after the run: %s", loads())

"""The monitor under a flood of files into ``incoming/``: its memory, and how soon its count is exact.

``python -m benchmarks.flood [--files 100000,300000] [--before REV]`` starts a nats-server, then for
each number of files a fresh data directory and the monitor as its own process (``python -m
services.monitor``, the shipped configuration), drops that many job files straight into ``incoming/``
(as fast as this process can create them, each with a one-line prompt) and reads ``/metrics`` every
quarter second meanwhile. It prints the monitor's resident memory before, at its peak (``VmHWM``) and
after, the most its ``incoming`` count was above the files really there, and the seconds from the last
file written to the count being exact. ``--before REV`` runs the same first with the monitor of git
revision ``REV`` (extracted into a temporary directory), so both are measured in one run.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from benchmarks.procs import Children, extracted, peak_rss_mb, start_monitor, start_nats
from shared.config import PROJECT_ROOT

log = logging.getLogger("benchmarks.flood")

INCOMING_SERIES = re.compile(rb'^syntx_queue_jobs\{folder="incoming"\} (\S+)$', re.M)
POLL_S = 0.25
EXACT_WITHIN_S = 300.0
PROMPT = b"Erklaere, wie Katzen schnurren.\n"


@dataclass
class Figures:
    files: int
    rss_at_rest_mb: float
    peak_rss_mb: float
    rss_after_mb: float
    most_over: int
    exact_after_s: float | None


class Writer:
    """Creates ``files`` job files in ``folder`` on a thread; :attr:`written` says how far it got."""

    def __init__(self, folder: Path, files: int) -> None:
        self._folder = folder
        self._files = files
        self.written = 0
        self.done = threading.Event()

    def run(self) -> None:
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        for index in range(self._files):
            path = self._folder / f"{stamp}{index:06d}Z-{index % 0xFFFFFF:06x}.txt"
            path.write_bytes(PROMPT)
            self.written = index + 1
        self.done.set()


def incoming_count(port: int) -> int | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
            match = INCOMING_SERIES.search(reply.read())
    except OSError:
        return None
    return int(float(match.group(1))) if match else None


def rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text(encoding="ascii")
    match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
    return int(match.group(1)) / 1024 if match else 0.0


def flood(children: Children, tree: Path, nats_url: str, workdir: Path, files: int) -> Figures:
    data = workdir / f"data-{files}"
    (data / "queue" / "incoming").mkdir(parents=True)
    monitor, port = start_monitor(children, tree, nats_url, data)
    at_rest = rss_mb(monitor.pid)
    writer = Writer(data / "queue" / "incoming", files)
    threading.Thread(target=writer.run, daemon=True).start()
    most_over, finished_at, exact_after = 0, None, None
    deadline = time.monotonic() + EXACT_WITHIN_S
    while time.monotonic() < deadline:
        count = incoming_count(port)
        written = writer.written  # read after the count: a file written meanwhile cannot look counted
        if count is not None:
            most_over = max(most_over, count - written)
        if finished_at is None and writer.done.is_set():
            finished_at = time.monotonic()
        if finished_at is not None and count == files:
            exact_after = time.monotonic() - finished_at
            break
        time.sleep(POLL_S)  # a sampling period, not a wait for an event
    figures = Figures(
        files=files,
        rss_at_rest_mb=at_rest,
        peak_rss_mb=peak_rss_mb(monitor.pid) or 0.0,
        rss_after_mb=rss_mb(monitor.pid),
        most_over=most_over,
        exact_after_s=exact_after,
    )
    children.stop(monitor)
    return figures


def report(label: str, figures: Figures) -> None:
    exact = "never" if figures.exact_after_s is None else f"{figures.exact_after_s:.1f} s"
    over = f"{figures.most_over} ({figures.most_over / figures.files:.0%})"
    log.info(
        "%-10s %9d %9.0f %9.0f %9.0f %14s %12s",
        label,
        figures.files,
        figures.rss_at_rest_mb,
        figures.peak_rss_mb,
        figures.rss_after_mb,
        over,
        exact,
    )


def run(sizes: list[int], before: str | None) -> None:
    children = Children()
    with tempfile.TemporaryDirectory(prefix="syntx-flood-") as scratch:
        workdir = Path(scratch)
        trees = {"this tree": PROJECT_ROOT}
        if before:
            base = workdir / "before"
            base.mkdir()
            trees = {before: extracted(before, base), **trees}
        try:
            nats_url = start_nats(children, workdir)
            results = [
                (label, flood(children, tree, nats_url, workdir / f"{index}", files))
                for index, (label, tree) in enumerate(trees.items())
                for files in sizes
            ]
        finally:
            children.close()
    log.info(
        "%-10s %9s %9s %9s %9s %14s %12s",
        "monitor",
        "files",
        "rest MB",
        "peak MB",
        "after MB",
        "most over",
        "exact after",
    )
    for label, figures in results:
        report(label, figures)
    log.info("load average after the run: %s", " ".join(f"{load:.1f}" for load in os.getloadavg()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", default="100000,300000", help="comma-separated numbers of files")
    parser.add_argument("--before", help="a git revision whose monitor runs first, as the baseline")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    run([int(size) for size in args.files.split(",")], args.before)


if __name__ == "__main__":
    main()

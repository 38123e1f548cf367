"""``syntx status`` while a flood of ``{"reconcile": true}`` requests makes the monitor recount.

``python -m benchmarks.status_load [--archived 100000] [--requests 300] [--before REV]`` fills a
temporary queue with ``--archived`` result files (``benchmarks.million``'s layout: most archived, some in
``processed/`` and ``error/``), starts a nats-server and the monitor as its own process, sends
``--requests`` reconcile requests at once and then one plain ``syntx.status`` request, and prints how
long the plain one took and how long until every reconcile request was answered. ``--before
REV`` measures the monitor of git revision ``REV`` first, in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import tempfile
import time
from pathlib import Path

import nats

from benchmarks.million import fill
from benchmarks.procs import Children, extracted, start_monitor, start_nats
from shared.config import PROJECT_ROOT
from shared.messaging import subjects
from shared.queue import FileQueue

log = logging.getLogger("benchmarks.status_load")

REQUEST_WAIT_S = 600.0
RECONCILE = b'{"reconcile": true}'


async def under_load(nats_url: str, requests: int) -> tuple[float, float]:
    """(seconds for the plain status, seconds until every reconcile request was answered)."""
    nc = await nats.connect(nats_url)
    try:
        started = time.monotonic()
        asking = [
            asyncio.ensure_future(nc.request(subjects.STATUS, RECONCILE, timeout=REQUEST_WAIT_S))
            for _ in range(requests)
        ]
        await nc.flush()  # every reconcile request is on its way before the plain one
        plain_sent = time.monotonic()
        await nc.request(subjects.STATUS, b"", timeout=REQUEST_WAIT_S)
        plain = time.monotonic() - plain_sent
        await asyncio.gather(*asking)
        return plain, time.monotonic() - started
    finally:
        await nc.close()


def measure(
    children: Children, tree: Path, nats_url: str, queue: FileQueue, requests: int
) -> tuple[float, float]:
    monitor, _port = start_monitor(children, tree, nats_url, queue.root.parent)
    try:
        return asyncio.run(under_load(nats_url, requests))
    finally:
        children.stop(monitor)


def run(archived: int, requests: int, before: str | None) -> None:
    children = Children()
    with tempfile.TemporaryDirectory(prefix="syntx-status-load-") as scratch:
        workdir = Path(scratch)
        queue = FileQueue(workdir / "data" / "queue")
        fill(queue, archived, 0)
        log.info("%d result files: %s", archived, queue.counts())
        trees = {"this tree": PROJECT_ROOT}
        if before:
            (workdir / "before").mkdir()
            trees = {before: extracted(before, workdir / "before"), **trees}
        try:
            nats_url = start_nats(children, workdir)
            figures = {
                label: measure(children, tree, nats_url, queue, requests) for label, tree in trees.items()
            }
        finally:
            children.close()
    log.info("%-10s %24s %36s", "monitor", "plain syntx.status", f"all {requests} reconcile requests")
    for label, (plain, everything) in figures.items():
        log.info("%-10s %22.2f s %34.2f s", label, plain, everything)
    log.info("load average after the run: %s", " ".join(f"{load:.1f}" for load in os.getloadavg()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archived", type=int, default=100_000, help="result files in the queue")
    parser.add_argument("--requests", type=int, default=300, help="reconcile requests sent at once")
    parser.add_argument("--before", help="a git revision whose monitor is measured first, as the baseline")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    run(args.archived, args.requests, args.before)


if __name__ == "__main__":
    main()

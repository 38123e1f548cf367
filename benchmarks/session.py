"""The consumer under test — one process, or several instances of it on one queue: start them, wait until
each is ready, tick, wait for results, stop them."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nats.aio.client import Client
from nats.aio.msg import Msg

from benchmarks.procs import (
    CONSUMER,
    Children,
    ConsumerSpec,
    cpu_seconds,
    output_name,
    peak_rss_mb,
    start_consumer,
)
from benchmarks.workload import result_count
from shared.config import PROJECT_ROOT
from shared.messaging import subjects
from shared.queue import ERROR, PROCESSED, FileQueue

log = logging.getLogger(__name__)

READY_TIMEOUT_S = 30.0


@dataclass
class Bench:
    """What every scenario shares: the temp dir, the child processes, NATS and the instant LLM stub."""

    workdir: Path
    children: Children
    nats_url: str
    nc: Client
    instant_port: int
    stop: threading.Event = field(default_factory=threading.Event)
    slow_port: int | None = None
    profile: Path | None = None
    before: Path | None = None  # another revision's tree (``--before``): its consumer runs beside ours
    original: Path | None = None  # a checkout of the original system (``--original``)

    def url(self, port: int) -> str:
        return f"http://127.0.0.1:{port}"


@dataclass
class Running:
    processes: list[subprocess.Popen[bytes]]  # the first instance first
    queue: FileQueue
    data_dir: Path

    @property
    def process(self) -> subprocess.Popen[bytes]:
        return self.processes[0]

    @property
    def root(self) -> Path:
        return self.queue.root

    def peak_rss_mb(self) -> float | None:
        """The largest peak resident set of the instances."""
        peaks = [peak for process in self.processes if (peak := peak_rss_mb(process.pid)) is not None]
        return max(peaks, default=None)

    def cpu_seconds(self) -> float:
        """CPU time the instances have used so far, summed."""
        return sum(cpu_seconds(process.pid) or 0.0 for process in self.processes)

    def died(self) -> subprocess.Popen[bytes] | None:
        return next((process for process in self.processes if process.poll() is not None), None)


def fresh_queue(bench: Bench, label: str) -> FileQueue:
    data_dir = bench.workdir / label
    if data_dir.exists():
        shutil.rmtree(data_dir)
    queue = FileQueue(data_dir / "queue")
    queue.ensure()
    return queue


@asynccontextmanager
async def consumer(
    bench: Bench,
    queue: FileQueue,
    *,
    port: int,
    concurrency: int,
    watch: bool,
    queue_settings: dict[str, Any] | None = None,
    tree: Path = PROJECT_ROOT,
    instances: int = 1,
) -> AsyncIterator[Running]:
    """``instances`` processes of the consumer on ``queue``'s data dir (``concurrency`` each), all ready
    (each said hello on NATS) when this yields; ``tree``: whose code they run."""
    data_dir = queue.root.parent
    spec = ConsumerSpec(
        data_dir, bench.nats_url, bench.url(port), concurrency, watch, queue=queue_settings or {}, tree=tree
    )
    ready: set[str] = set()  # the instances heard from

    async def on_heartbeat(msg: Msg) -> None:
        with contextlib.suppress(ValueError, AttributeError):
            beat = json.loads(msg.data)
            if beat.get("service") == subjects.consumer_schedule(CONSUMER) and not beat.get("stopping"):
                ready.add(str(beat.get("instance")))

    sub = await bench.nc.subscribe(subjects.SERVICE_HEARTBEAT, cb=on_heartbeat)
    await bench.nc.flush()
    processes = [start_consumer(bench.children, spec, index) for index in range(instances)]
    running = Running(processes, queue, data_dir)
    try:
        await _wait_ready(running, ready)
        yield running
    finally:
        await sub.unsubscribe()
        for process in processes:
            code = bench.children.stop(process)
            if code not in (0, -15):
                log.warning("consumer exited with %s; see the *.out files in %s", code, data_dir)


async def _wait_ready(running: Running, ready: set[str]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while len(ready) < len(running.processes):
        if running.died() is not None:
            raise RuntimeError(f"consumer exited at start: {_output(running)}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"consumer not ready after {READY_TIMEOUT_S:.0f} s: {_output(running)}")
        await asyncio.sleep(0.02)


def _output(running: Running) -> str:
    """The end of the output of the instance that died (else the first one's)."""
    died = running.died()
    index = running.processes.index(died) if died is not None else 0
    return _tail(running.data_dir / output_name(index))


def _tail(path: Path, chars: int = 800) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")[-chars:]
    except OSError:
        return "(no output)"


async def tick(bench: Bench, batch: int) -> None:
    """What ``nats pub syntx.tick.consumer.syntex_system '{"batch": N}'`` does."""
    subject = subjects.tick(subjects.consumer_schedule(CONSUMER))
    await bench.nc.publish(subject, json.dumps({"batch": batch}).encode())
    await bench.nc.flush()


async def wait_results(running: Running, count: int, timeout_s: float) -> None:
    """Until ``count`` results are in ``processed/`` + ``error/``; polled four times a second."""
    deadline = time.monotonic() + timeout_s
    while (done := result_count(running.root)) < count:
        if running.died() is not None:
            raise RuntimeError(f"consumer died: {_output(running)}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {done} of {count} results after {timeout_s:.0f} s")
        await asyncio.sleep(0.25)


def clear_results(queue: FileQueue) -> None:
    for folder in (PROCESSED, ERROR):
        shutil.rmtree(queue.folder(folder))
        queue.folder(folder).mkdir()


@asynccontextmanager
async def py_spy(pid: int, output: Path) -> AsyncIterator[None]:
    """``py-spy record`` attached to ``pid`` while inside (100 Hz, whole stacks, raw collapsed format)."""
    exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    args = [exe, "record", "--pid", str(pid), "--rate", "100"]
    args += ["--format", "raw", "--output", str(output)]
    process = await asyncio.create_subprocess_exec(
        *args, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )
    await asyncio.sleep(1.0)  # py-spy needs a moment to attach
    try:
        yield
    finally:
        process.send_signal(signal.SIGINT)  # SIGINT: py-spy writes its file and exits
        await process.wait()
        log.info("py-spy profile of the consumer written to %s", output)

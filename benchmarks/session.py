"""One consumer process under test: start it, wait until it is ready, tick it, wait for results, stop it."""

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

from benchmarks.procs import CONSUMER, Children, ConsumerSpec, cpu_seconds, peak_rss_mb, start_consumer
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
    process: subprocess.Popen[bytes]
    queue: FileQueue
    data_dir: Path

    @property
    def root(self) -> Path:
        return self.queue.root

    def peak_rss_mb(self) -> float | None:
        return peak_rss_mb(self.process.pid)

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.process.pid) or 0.0


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
) -> AsyncIterator[Running]:
    """A consumer process on ``queue``'s data dir, ready (it said hello on NATS) when this yields;
    ``tree``: whose code it runs."""
    data_dir = queue.root.parent
    spec = ConsumerSpec(
        data_dir, bench.nats_url, bench.url(port), concurrency, watch, queue=queue_settings or {}, tree=tree
    )
    ready = asyncio.Event()

    async def on_heartbeat(msg: Msg) -> None:
        with contextlib.suppress(ValueError, AttributeError):
            beat = json.loads(msg.data)
            if beat.get("service") == subjects.consumer_schedule(CONSUMER) and not beat.get("stopping"):
                ready.set()

    sub = await bench.nc.subscribe(subjects.SERVICE_HEARTBEAT, cb=on_heartbeat)
    await bench.nc.flush()
    process = start_consumer(bench.children, spec)
    try:
        await _wait_ready(process, ready, data_dir)
        yield Running(process, queue, data_dir)
    finally:
        await sub.unsubscribe()
        code = bench.children.stop(process)
        if code not in (0, -15):
            log.warning("consumer exited with %s; see %s", code, data_dir / "consumer.out")


async def _wait_ready(process: subprocess.Popen[bytes], ready: asyncio.Event, data_dir: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while not ready.is_set():
        if process.poll() is not None:
            raise RuntimeError(f"consumer exited at start: {_tail(data_dir / 'consumer.out')}")
        if time.monotonic() > deadline:
            output = _tail(data_dir / "consumer.out")
            raise RuntimeError(f"consumer not ready after {READY_TIMEOUT_S:.0f} s: {output}")
        await asyncio.sleep(0.02)


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
        if running.process.poll() is not None:
            raise RuntimeError(f"consumer died: {_tail(running.data_dir / 'consumer.out')}")
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

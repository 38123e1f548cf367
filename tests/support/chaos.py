"""Helpers of the chaos tests: ``syntx up`` as a child process, the queue watched while it runs, producer
ticks, and the tally of every job over the folders at the end."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import sys
import time
from bisect import bisect_right
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import nats.errors
from nats.aio.client import Client

from shared.config import CONFIG_ENV, DEFAULT_CONFIG, SUPERVISED_AS_ENV
from shared.messaging import Bus, Event, ProducerGeneration, Tick, subjects
from shared.queue import (
    ARCHIVE,
    ERROR,
    INCOMING,
    PROCESSED,
    PROCESSING,
    RESULT_SUFFIX,
    FileQueue,
    is_job_name,
)
from shared.service_table import INSTANCE_MARK
from shared.watch import OVERFLOW, Change
from tests.support.harness import free_port

BIN = Path(sys.executable).parent
SEED = int(os.environ.get("CHAOS_SEED", "20261130"))  # CHAOS_SEED=<n> runs another schedule
FIGURES = "chaos"  # the name the tables are recorded under; tests/conftest.py prints them
NATS = "nats-server"
# The last tick's batch: the producer asks for all of it, 75 % or 50 % (back pressure), never as many as
# for a tick of a larger batch, so its run is told apart from a late run of an earlier tick.
FINAL_BATCH = 7
# A line of syntx up's output that says a service took a tick up: a consumer's tick, a producer run,
# a cleanup pass.
TICK_TAKEN = re.compile(r"tick \S+: processing|generation \d+:|cleanup: removed")
SERVICES = (
    "scheduler",
    "producer",
    "consumer.syntex_system",
    "consumer.syntex_system2",
    "consumer.sigma",
    "consumer.sigma-2",
    "monitor",
    "cleanup",
)
CONSUMER = "{watch: true, concurrency: 2, batch: 10, shutdown_grace_s: 5, rescan_s: 2,"
CONSUMER += " backend: {kind: offline, offline_delay_s: 0.2}}"
LEASE_S = 4


def chaos_config(seed: int) -> str:
    """The configuration over the shipped one: two consumer processes per wrapper watching incoming/ (two
    consumers of one wrapper for syntex_system, one consumer with two instances for sigma),
    every schedule ticking within seconds but the producer's (ticked by the test), short leases, fast
    reconnects and restarts."""
    return f"""
schedules:
  producer:                {{cron: "@every 10s", enabled: false}}  # ticked by the test
  consumer.syntex_system:  {{cron: "@every 5s"}}
  consumer.syntex_system2: {{cron: "@every 5s"}}
  consumer.sigma:          {{cron: "@every 5s"}}
  monitor:                 {{cron: "@every 10s"}}
  cleanup:                 {{cron: "@every 2s"}}
consumers:
  syntex_system:  {CONSUMER}
  syntex_system2: {{wrapper: syntex_system, {CONSUMER[1:]}
  sigma:          {{instances: 2, {CONSUMER[1:]}
queue: {{lease_s: {LEASE_S}}}
producer: {{batch: 20, seed: {seed}}}
nats:
  reconnect: {{base_s: 0.25, max_s: 0.25}}
  resubscribe: {{base_s: 0.5, max_s: 0.5}}
  publish_backoff: {{base_s: 0.25, max_s: 0.5}}
  drain_timeout_s: 3
up:
  restart: {{base_s: 0.25, max_s: 2}}
  stable_after_s: 10
  stop_margin_s: 5
"""


# -- syntx up as a child process ------------------------------------------------------------------


@dataclass
class Up:
    """``syntx up`` with its output collected line by line (waitable, each line with the moment it was
    read) and its children found in /proc."""

    process: asyncio.subprocess.Process
    lines: list[str] = field(default_factory=list)
    read_at: list[float] = field(default_factory=list)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def pump(self) -> None:
        assert self.process.stdout is not None
        while line := await self.process.stdout.readline():
            async with self.changed:
                self.lines.append(line.decode(errors="replace"))
                self.read_at.append(time.monotonic())
                self.changed.notify_all()

    def output(self) -> str:
        return "".join(self.lines)

    def count(self, marker: str) -> int:
        return sum(marker in line for line in self.lines)

    def first_after(self, moment: float, pattern: re.Pattern[str]) -> float | None:
        """Seconds from ``moment`` to the first line read after it that matches ``pattern``, or None."""
        start = bisect_right(self.read_at, moment)
        for at, line in zip(self.read_at[start:], self.lines[start:], strict=True):
            if pattern.search(line):
                return at - moment
        return None

    async def wait_for(self, marker: str, times: int, within_s: float) -> None:
        found, checked = 0, 0

        def enough() -> bool:  # looks at each line once
            nonlocal found, checked
            found += sum(marker in line for line in self.lines[checked:])
            checked = len(self.lines)
            return found >= times

        try:
            async with asyncio.timeout(within_s), self.changed:
                await self.changed.wait_for(enough)
        except TimeoutError:
            raise AssertionError(f"no {marker!r} x{times}:\n{self.output()[-3000:]}") from None

    def children(self) -> dict[str, int]:
        """Name -> pid of every running child, named as `syntx up` names them (a service's second process
        ``consumer.sigma-2``; the embedded server ``nats-server``)."""
        found: dict[str, int] = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                if parent != self.process.pid:
                    continue
                argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
                environ = (entry / "environ").read_bytes().decode(errors="replace").split("\0")
            except (OSError, IndexError, ValueError):
                continue  # gone meanwhile
            name = _supervised_as(environ) or _service_name(argv)
            if name is not None:
                found[name] = int(entry.name)
        return found

    def instances(self, service: str) -> dict[str, int]:
        """The running processes of ``service``: name -> pid."""
        return {
            name: pid
            for name, pid in self.children().items()
            if name == service or name.startswith(f"{service}{INSTANCE_MARK}")
        }


def _service_name(argv: list[str]) -> str | None:
    """``python -m services.consumer --wrapper syntex_system2`` -> ``consumer.syntex_system2``; nats-server;
    else None."""
    if argv and NATS in Path(argv[0]).name:
        return NATS
    if "-m" not in argv[:-1]:
        return None
    name = argv[argv.index("-m") + 1].removeprefix("services.")
    if "--wrapper" in argv[:-1]:
        name = f"{name}.{argv[argv.index('--wrapper') + 1]}"
    return name


def _supervised_as(environ: list[str]) -> str | None:
    """The name `syntx up` gave a child (``consumer.sigma-2``), from its environment."""
    prefix = f"{SUPERVISED_AS_ENV}="
    return next((item.removeprefix(prefix) for item in environ if item.startswith(prefix)), None)


def environment(config: str, config_file: Path, data_dir: Path) -> dict[str, str]:
    """This process's environment without SYNTX_* variables: the shipped configuration with ``config``
    (written to ``config_file``) over it, ``data_dir``, free ports."""
    config_file.write_text(config, encoding="utf-8")
    env = {key: value for key, value in os.environ.items() if not key.startswith("SYNTX_")}
    env.update(
        {
            CONFIG_ENV: f"{DEFAULT_CONFIG}:{config_file}",
            "SYNTX_DATA_DIR": str(data_dir),
            "SYNTX_NATS__EMBEDDED_PORT": str(free_port()),
            "SYNTX_MONITOR__HOST": "127.0.0.1",
            "SYNTX_MONITOR__PORT": str(free_port()),
        }
    )
    return env


@asynccontextmanager
async def syntx_up(env: dict[str, str]) -> AsyncIterator[Up]:
    process = await asyncio.create_subprocess_exec(
        str(BIN / "syntx"), "up", env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    up = Up(process)
    pump = asyncio.create_task(up.pump(), name="syntx up output")
    try:
        yield up
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        await pump


# -- what the queue shows while it runs ---------------------------------------------------------


@dataclass
class Arrivals:
    """Job files moved into ``incoming/`` and results filed, from file notifications of the queue root
    (each result with the moment it was seen; lost notifications with the moment they were reported)."""

    jobs: set[str]
    results: set[str] = field(default_factory=set)
    filed_at: list[float] = field(default_factory=list)
    overflows: list[float] = field(default_factory=list)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    _notify: asyncio.Task[None] | None = None

    @property
    def overflowed(self) -> bool:
        return bool(self.overflows)

    def on_change(self, change: Change) -> None:
        kind, folder, name = change
        if change == OVERFLOW:
            self.overflows.append(time.monotonic())
        elif kind == "added" and folder == INCOMING and is_job_name(name):
            self.jobs.add(name.removesuffix(".txt"))
        elif kind == "added" and folder in (PROCESSED, ERROR) and name.endswith(RESULT_SUFFIX):
            self.results.add(name.removesuffix(RESULT_SUFFIX))
            self.filed_at.append(time.monotonic())
        elif kind != "removed" or folder not in (INCOMING, PROCESSING):
            return
        if self._notify is None or self._notify.done():
            self._notify = asyncio.get_running_loop().create_task(self._notify_all())

    def results_at_least(self, count: int) -> Callable[[], bool]:
        return lambda: len(self.results) >= count

    def filed_between(self, start: float, end: float) -> int:
        return bisect_right(self.filed_at, end) - bisect_right(self.filed_at, start)

    def next_filed_after(self, moment: float) -> float | None:
        """Seconds from ``moment`` to the first result filed after it, or None."""
        later = bisect_right(self.filed_at, moment)
        return self.filed_at[later] - moment if later < len(self.filed_at) else None

    async def _notify_all(self) -> None:
        async with self.changed:
            self.changed.notify_all()

    async def wait_for(self, predicate: Callable[[], bool], within_s: float, what: str) -> None:
        """Until ``predicate`` holds, re-checked on every change of the queue (and at least every second,
        for a change made while the check ran)."""
        deadline = time.monotonic() + within_s
        while not predicate():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"not within {within_s:g}s: {what}")
            async with self.changed:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.changed.wait(), timeout=min(remaining, 1.0))


def drained(queue: FileQueue) -> bool:
    return queue.count(INCOMING) == 0 and queue.count(PROCESSING) == 0


# -- producer ticks -----------------------------------------------------------------------------


class Ticker:
    """Producer ticks, stored in JetStream like ``syntx trigger producer``; a tick that cannot be stored
    while the nats-server is down is skipped (the next one follows)."""

    def __init__(self, bus: Bus, nc: Client) -> None:
        self._bus = bus
        self.nc = nc  # the test's own connection, beside the bus (tests.support.harness.behind_the_bus)
        self.sent = 0
        self.unstored = 0
        self.generations: list[ProducerGeneration] = []
        self.generated = asyncio.Condition()

    async def on_generation(self, event: Event) -> None:
        if isinstance(event, ProducerGeneration):
            async with self.generated:
                self.generations.append(event)
                self.generated.notify_all()

    async def tick(self, batch: int) -> bool:
        try:
            await self._bus.publish(subjects.tick("producer"), Tick(schedule="producer", batch=batch))
        except (TimeoutError, nats.errors.Error):
            self.unstored += 1
            return False
        self.sent += 1
        return True

    async def settled(self, within_s: float) -> None:
        """Until every tick stored so far is delivered and acknowledged: JetStream delivers at least once,
        so a tick whose acknowledgement was lost with a killed nats-server comes again (after the
        consumer's ack wait) — a producer run the final turn must not be followed by. Re-checked every
        half second; JetStream has no event for it."""
        js = self.nc.jetstream()
        durable = subjects.durable_name("producer")
        async with asyncio.timeout(within_s):
            while True:
                with contextlib.suppress(TimeoutError, nats.errors.Error):  # a restarted server settling
                    info = await js.consumer_info(subjects.TICK_STREAM, durable)
                    if info.num_pending == 0 and info.num_ack_pending == 0:
                        return
                await asyncio.sleep(0.5)

    async def final_run(self, within_s: float, after: int = 0) -> ProducerGeneration:
        """The producer's run of the FINAL_BATCH tick (the first among its runs from ``after`` on): the
        last run there is (no tick follows)."""

        def final() -> ProducerGeneration | None:
            later = self.generations[after:]
            return next((g for g in later if 0 < g.requested <= FINAL_BATCH), None)

        async with asyncio.timeout(within_s), self.generated:
            await self.generated.wait_for(lambda: final() is not None)
        run = final()
        assert run is not None
        return run


async def turn(ticker: Ticker, arrivals: Arrivals, queue: FileQueue, within_s: float) -> ProducerGeneration:
    """The loop still turns: once every tick stored so far is taken and the queue is drained, one more
    tick (sent again while it cannot be stored) makes the producer produce, and its jobs are scored."""
    await ticker.settled(within_s=within_s)
    await arrivals.wait_for(lambda: drained(queue), within_s=within_s, what="the queue drained")
    before, runs = set(arrivals.jobs), len(ticker.generations)
    deadline = time.monotonic() + within_s
    while not await ticker.tick(batch=FINAL_BATCH):
        assert time.monotonic() < deadline, f"no producer tick could be stored within {within_s:g}s"
    run = await ticker.final_run(within_s=within_s, after=runs)
    await arrivals.wait_for(
        lambda: (
            len(new := arrivals.jobs - before) >= run.produced and new <= arrivals.results and drained(queue)
        ),
        within_s=within_s,
        what=f"the producer's {run.produced} new jobs scored",
    )
    return run


# -- the invariants -----------------------------------------------------------------------------


def _status(path: Path, job_id: str) -> str:
    try:
        record = json.loads(path.read_bytes())
    except (UnicodeDecodeError, json.JSONDecodeError):
        return "unreadable"
    if not isinstance(record, dict) or record.get("job_id") != job_id:
        return "unreadable"
    return str(record.get("status"))


@dataclass(frozen=True)
class Tally:
    jobs_in: set[str]
    results: Counter[str]  # job id -> result files in processed/, error/ and archive/ (day folders)
    by_folder: Counter[str]
    waiting: set[str]
    claimed: set[str]
    statuses: Counter[str]  # of the results; "unreadable": not JSON, or naming another job
    withdrawn: frozenset[str] = frozenset()  # job files taken out of incoming/ on purpose

    @classmethod
    def of(cls, queue: FileQueue, jobs_in: set[str], withdrawn: frozenset[str] = frozenset()) -> Tally:
        results: Counter[str] = Counter()
        by_folder: Counter[str] = Counter()
        statuses: Counter[str] = Counter()
        for folder in (PROCESSED, ERROR, ARCHIVE):
            for path in queue.result_files(folder):
                job_id = path.name.removesuffix(RESULT_SUFFIX)
                results[job_id] += 1
                by_folder[folder] += 1
                statuses[_status(path, job_id)] += 1
        waiting, claimed = set(queue.job_ids(INCOMING)), set(queue.job_ids(PROCESSING))
        return cls(set(jobs_in), results, by_folder, waiting, claimed, statuses, withdrawn)

    @property
    def out(self) -> set[str]:
        return {job for job, count in self.results.items() if count == 1} - self.stuck

    @property
    def stuck(self) -> set[str]:
        return self.waiting | self.claimed

    @property
    def lost(self) -> set[str]:
        return self.jobs_in - set(self.results) - self.stuck - self.withdrawn

    @property
    def duplicated(self) -> set[str]:
        twice = {job for job, count in self.results.items() if count > 1}
        return twice | (self.stuck & (set(self.results) | self.withdrawn))

    @property
    def unanswered(self) -> set[str]:
        """Withdrawn jobs without a result. A withdrawn job with one was answered by a consumer whose claim
        had been taken over (it was slow, not dead): its file back in ``incoming/`` was a leftover the
        next claim drops."""
        return set(self.withdrawn - set(self.results))

    @property
    def unknown(self) -> set[str]:
        """Results of jobs that never went in: would mean the count of jobs in is wrong."""
        return set(self.results) - self.jobs_in


LOG_FINDINGS = {  # what the services said, counted over the output of syntx up
    "claims taken over": "lease expired",
    "leftover claims removed": "removing its leftover claim",
    "answered twice": "dropping ours",
    "services restarted": "; restarting in",
    "crashed": "crashed",
    "tracebacks": "Traceback",
}


def said(up: Up, findings: dict[str, str]) -> str:
    return ", ".join(f"{what} {up.count(marker)}" for what, marker in findings.items())

"""Chaos (marked ``chaos``; seeded, a few minutes at most): the whole loop under ``syntx up`` — embedded
nats-server, scheduler, producer, two consumer processes per wrapper, monitor, cleanup — while random
services are SIGKILLed on a seeded schedule and the nats-server is killed twice (``syntx up`` restarts
both). At least ``JOBS_IN`` jobs go in: ``JOBS_AT_START`` written into ``incoming/`` before the start, the
rest by the producer, ticked every ``TICK_EVERY_S`` like an operator's ``syntx trigger producer``.

Jobs in: the jobs written at the start and every job file the producer moved into ``incoming/`` (seen
through file notifications of the queue). At the end — no more ticks, no more kills, ``incoming/`` and
``processing/`` drained, one more producer tick whose jobs must be scored (the loop still turns),
``syntx up`` stopped with Ctrl-C — every job that went in has exactly one result in ``processed/``,
``error/`` or a day folder of ``archive/``; none is left in ``incoming/`` or ``processing/``.
The LLM is the offline responder (no real LLM can run here).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import nats.errors
import pytest

from shared.config import CONFIG_ENV, DEFAULT_CONFIG, NatsSettings
from shared.messaging import Event, ProducerGeneration, Tick, subjects
from shared.messaging import bus as bus_module
from shared.queue import (
    ARCHIVE,
    ERROR,
    INCOMING,
    PROCESSED,
    PROCESSING,
    QUARANTINE,
    RESULT_SUFFIX,
    TMP,
    FileQueue,
    is_job_name,
)
from shared.watch import OVERFLOW, Change, watching
from tests.consumers import add_jobs
from tests.harness import free_port

pytestmark = pytest.mark.chaos

BIN = Path(sys.executable).parent
SEED = int(os.environ.get("CHAOS_SEED", "20261130"))  # CHAOS_SEED=<n> runs another schedule
FIGURES = "chaos"  # the name the table is recorded under; tests/conftest.py prints it
JOBS_AT_START = 600
JOBS_IN = 1000  # the producer is ticked until at least this many jobs went in
TICK_EVERY_S = 0.5  # the pace of producer ticks while jobs go in
KILL_EVERY_S = (0.6, 1.8)  # a random service is SIGKILLed after a seeded pause in this range
NATS_KILLS_AT = (250, 700)  # the nats-server is killed once this many jobs have a result
CHAOS_BATCH = 20
# The last tick's batch: the producer asks for all of it, 75 % or 50 % (back pressure), never as many as
# for a tick of CHAOS_BATCH, so its run is told apart from a late run of an earlier tick.
FINAL_BATCH = 7
NATS = "nats-server"
SERVICES = (
    "scheduler",
    "producer",
    "consumer.syntex_system",
    "consumer.syntex_system2",
    "consumer.sigma",
    "consumer.sigma2",
    "monitor",
    "cleanup",
)
CONSUMER = "{watch: true, concurrency: 2, batch: 10, shutdown_grace_s: 5, rescan_s: 2,"
CONSUMER += " backend: {kind: offline, offline_delay_s: 0.2}}"
CONFIG = f"""
schedules:
  producer:                {{cron: "@every 10s", enabled: false}}  # ticked by the test
  consumer.syntex_system:  {{cron: "@every 5s"}}
  consumer.syntex_system2: {{cron: "@every 5s"}}
  consumer.sigma:          {{cron: "@every 5s"}}
  consumer.sigma2:         {{cron: "@every 5s"}}
  monitor:                 {{cron: "@every 10s"}}
  cleanup:                 {{cron: "@every 2s"}}
consumers:
  syntex_system:  {CONSUMER}
  syntex_system2: {{wrapper: syntex_system, {CONSUMER[1:]}
  sigma:          {CONSUMER}
  sigma2:         {{wrapper: sigma, {CONSUMER[1:]}
queue: {{lease_s: 4}}
producer: {{batch: 20, seed: {SEED}}}
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
    """``syntx up`` with its output collected line by line (waitable) and its children found in /proc."""

    process: asyncio.subprocess.Process
    lines: list[str] = field(default_factory=list)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def pump(self) -> None:
        assert self.process.stdout is not None
        while line := await self.process.stdout.readline():
            async with self.changed:
                self.lines.append(line.decode(errors="replace"))
                self.changed.notify_all()

    def output(self) -> str:
        return "".join(self.lines)

    def count(self, marker: str) -> int:
        return sum(marker in line for line in self.lines)

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
        """Service name -> pid of every running child (the embedded server as ``nats-server``)."""
        found: dict[str, int] = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
            except (OSError, IndexError, ValueError):
                continue  # gone meanwhile
            name = _service_name(argv) if parent == self.process.pid else None
            if name is not None:
                found[name] = int(entry.name)
        return found


def _service_name(argv: list[str]) -> str | None:
    """``python -m services.consumer --wrapper sigma2`` -> ``consumer.sigma2``; nats-server; else None."""
    if argv and NATS in Path(argv[0]).name:
        return NATS
    if "-m" not in argv[:-1]:
        return None
    name = argv[argv.index("-m") + 1].removeprefix("services.")
    if "--wrapper" in argv[:-1]:
        name = f"{name}.{argv[argv.index('--wrapper') + 1]}"
    return name


def _environment(tmp_path: Path) -> dict[str, str]:
    extra = tmp_path / "chaos.yaml"
    extra.write_text(CONFIG, encoding="utf-8")
    env = {key: value for key, value in os.environ.items() if not key.startswith("SYNTX_")}
    env.update(
        {
            CONFIG_ENV: f"{DEFAULT_CONFIG}:{extra}",
            "SYNTX_DATA_DIR": str(tmp_path / "data"),
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
    """Job files moved into ``incoming/`` and results filed, from file notifications of the queue root."""

    jobs: set[str]
    results: set[str] = field(default_factory=set)
    overflowed: bool = False
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    _notify: asyncio.Task[None] | None = None

    def on_change(self, change: Change) -> None:
        kind, folder, name = change
        if change == OVERFLOW:
            self.overflowed = True
        elif kind == "added" and folder == INCOMING and is_job_name(name):
            self.jobs.add(name.removesuffix(".txt"))
        elif kind == "added" and folder in (PROCESSED, ERROR) and name.endswith(RESULT_SUFFIX):
            self.results.add(name.removesuffix(RESULT_SUFFIX))
        elif kind != "removed" or folder not in (INCOMING, PROCESSING):
            return
        if self._notify is None or self._notify.done():
            self._notify = asyncio.get_running_loop().create_task(self._notify_all())

    def results_at_least(self, count: int) -> Callable[[], bool]:
        return lambda: len(self.results) >= count

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


def _drained(queue: FileQueue) -> bool:
    return queue.count(INCOMING) == 0 and queue.count(PROCESSING) == 0


# -- the chaos itself ---------------------------------------------------------------------------


@dataclass
class Chaos:
    """SIGKILLs on a seeded schedule: services in seeded rounds (each once per round), nats twice."""

    up: Up
    rng: random.Random
    over: asyncio.Event = field(default_factory=asyncio.Event)
    kills: Counter[str] = field(default_factory=Counter)
    missed: Counter[str] = field(default_factory=Counter)  # its turn came while it was restarting
    nats_kills: int = 0

    async def kill_services(self) -> None:
        while not self.over.is_set():
            turn = list(SERVICES)
            self.rng.shuffle(turn)
            for service in turn:
                pause = self.rng.uniform(*KILL_EVERY_S)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.over.wait(), timeout=pause)
                if self.over.is_set():
                    return
                self._kill(service, self.kills, self.missed)

    async def kill_nats(self, arrivals: Arrivals) -> None:
        for results in NATS_KILLS_AT:
            reached = arrivals.results_at_least(results)
            await arrivals.wait_for(reached, within_s=150, what=f"{results} results")
            killed: Counter[str] = Counter()
            self._kill(NATS, killed, killed)
            assert killed[NATS] == 1, "syntx up has no nats-server child"
            self.nats_kills += 1
            await self.up.wait_for("embedded nats-server ready again", self.nats_kills, within_s=30)

    def _kill(self, service: str, killed: Counter[str], missed: Counter[str]) -> None:
        pid = self.up.children().get(service)
        try:
            if pid is None:
                raise ProcessLookupError
            os.kill(pid, signal.SIGKILL)
            killed[service] += 1
        except ProcessLookupError:
            missed[service] += 1


class Ticker:
    """Producer ticks, stored in JetStream like ``syntx trigger producer``; a tick that cannot be stored
    while the nats-server is down is skipped (the next one follows)."""

    def __init__(self, bus: bus_module.Bus) -> None:
        self._bus = bus
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
        js = self._bus.client.jetstream()
        durable = subjects.durable_name("producer")
        async with asyncio.timeout(within_s):
            while True:
                with contextlib.suppress(TimeoutError, nats.errors.Error):  # a restarted server settling
                    info = await js.consumer_info(subjects.TICK_STREAM, durable)
                    if info.num_pending == 0 and info.num_ack_pending == 0:
                        return
                await asyncio.sleep(0.5)

    async def final_run(self, within_s: float) -> ProducerGeneration:
        """The producer's run of the FINAL_BATCH tick: the last run there is (no tick follows)."""

        def final() -> ProducerGeneration | None:
            return next((g for g in self.generations if 0 < g.requested <= FINAL_BATCH), None)

        async with asyncio.timeout(within_s), self.generated:
            await self.generated.wait_for(lambda: final() is not None)
        run = final()
        assert run is not None
        return run

    async def until(self, enough: Callable[[], bool]) -> None:
        while not enough():
            await self.tick(batch=CHAOS_BATCH)
            await asyncio.sleep(TICK_EVERY_S)  # the pace of ticks, not a wait for an event


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

    @classmethod
    def of(cls, queue: FileQueue, jobs_in: set[str]) -> Tally:
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
        return cls(set(jobs_in), results, by_folder, waiting, claimed, statuses)

    @property
    def out(self) -> set[str]:
        return {job for job, count in self.results.items() if count == 1} - self.stuck

    @property
    def stuck(self) -> set[str]:
        return self.waiting | self.claimed

    @property
    def lost(self) -> set[str]:
        return self.jobs_in - set(self.results) - self.stuck

    @property
    def duplicated(self) -> set[str]:
        twice = {job for job, count in self.results.items() if count > 1}
        return twice | (self.stuck & set(self.results))

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


def _figures(run: Run, tally: Tally, queue: FileQueue) -> str:
    folders = ", ".join(f"{folder} {tally.by_folder[folder]}" for folder in (PROCESSED, ERROR, ARCHIVE))
    statuses = ", ".join(f"{status} {n}" for status, n in sorted(tally.statuses.items()))
    kills = ", ".join(f"{name} {run.chaos.kills[name]}" for name in SERVICES)
    said = ", ".join(f"{what} {run.up.count(marker)}" for what, marker in LOG_FINDINGS.items())
    waiting, claimed = len(tally.waiting), len(tally.claimed)
    times = run.timings
    return "\n".join(
        [
            f"seed         {run.seed}",
            f"jobs in      {len(tally.jobs_in)} ({JOBS_AT_START} at the start, "
            f"{len(tally.jobs_in) - JOBS_AT_START} by the producer)",
            f"jobs out     {len(tally.out)} ({folders}; {statuses})",
            f"lost         {len(tally.lost)}",
            f"duplicated   {len(tally.duplicated)}",
            f"stuck        {len(tally.stuck)} (incoming {waiting}, processing {claimed})",
            f"unknown      {len(tally.unknown)} results of jobs that never went in",
            f"SIGKILLs     {sum(run.chaos.kills.values())} of services ({kills}); "
            f"{run.chaos.nats_kills} of the nats-server",
            f"             {sum(run.chaos.missed.values())} turns found the service restarting",
            f"logs         {said}",
            f"ticks        {run.ticker.sent} producer ticks stored, {run.ticker.unstored} not",
            f"leftovers    quarantine {queue.count(QUARANTINE)}, staging {queue.count(TMP)}",
            f"duration     {times['chaos']:.1f}s chaos, {times['drain']:.1f}s drain, "
            f"{times['final']:.1f}s final turn, {times['total']:.1f}s in all",
        ]
    )


@dataclass
class Run:
    seed: int
    up: Up
    chaos: Chaos
    ticker: Ticker
    timings: dict[str, float] = field(default_factory=dict)


async def _chaos_phase(run: Run, arrivals: Arrivals) -> None:
    """Producer ticks until JOBS_IN jobs went in and the nats-server was killed twice; kills all along."""
    async with asyncio.TaskGroup() as group:
        group.create_task(run.chaos.kill_services(), name="kill services")
        nats_killed = group.create_task(run.chaos.kill_nats(arrivals), name="kill nats")
        await run.ticker.until(lambda: len(arrivals.jobs) >= JOBS_IN and nats_killed.done())
        run.chaos.over.set()


async def _final_turn(run: Run, arrivals: Arrivals, queue: FileQueue) -> ProducerGeneration:
    """The loop still turns: one more tick produces jobs, and every job that went in is scored."""
    await run.ticker.settled(within_s=90)
    await arrivals.wait_for(lambda: _drained(queue), within_s=90, what="the queue drained after late runs")
    before = set(arrivals.jobs)
    assert await run.ticker.tick(batch=FINAL_BATCH), "the final tick was not stored"
    final = await run.ticker.final_run(within_s=60)
    await arrivals.wait_for(
        lambda: (
            len(arrivals.jobs - before) >= final.produced
            and arrivals.jobs <= arrivals.results
            and _drained(queue)
        ),
        within_s=60,
        what=f"the final {final.produced} jobs scored",
    )
    return final


@pytest.mark.timeout(300)
async def test_chaos_a_thousand_jobs_through_syntx_up_lose_nothing_and_duplicate_nothing(
    tmp_path: Path, record_property: Callable[[str, object], None]
) -> None:
    started = time.monotonic()
    env = _environment(tmp_path)
    queue = FileQueue(tmp_path / "data" / "queue")
    arrivals = Arrivals(add_jobs(queue, JOBS_AT_START, "chaos "))
    nats_settings = NatsSettings(url=f"nats://127.0.0.1:{env['SYNTX_NATS__EMBEDDED_PORT']}")
    async with watching([queue.root], arrivals.on_change, recursive=True), syntx_up(env) as up:
        await up.wait_for("connected and ready", len(SERVICES), within_s=60)
        async with bus_module.connect(nats_settings, name="chaos test") as bus:
            run = Run(SEED, up, Chaos(up, random.Random(SEED)), Ticker(bus))
            await bus.subscribe_events(subjects.PRODUCER_GENERATION, run.ticker.on_generation)
            await _chaos_phase(run, arrivals)
            run.timings["chaos"] = time.monotonic() - started
            await arrivals.wait_for(lambda: _drained(queue), within_s=90, what="the queue drained")
            run.timings["drain"] = time.monotonic() - started - run.timings["chaos"]
            final = await _final_turn(run, arrivals, queue)
            run.timings["final"] = time.monotonic() - started - run.timings["chaos"] - run.timings["drain"]
        up.process.send_signal(signal.SIGINT)
        code = await asyncio.wait_for(up.process.wait(), timeout=60)
    run.timings["total"] = time.monotonic() - started
    tally = Tally.of(queue, arrivals.jobs)
    figures = _figures(run, tally, queue)
    record_property(FIGURES, figures)

    assert code == 0, up.output()[-3000:]
    assert not arrivals.overflowed, "file notifications were lost: jobs in cannot be counted"
    assert len(tally.jobs_in) >= JOBS_IN, figures
    assert not tally.lost and not tally.duplicated and not tally.stuck, (
        f"{figures}\nlost {sorted(tally.lost)[:5]} duplicated {sorted(tally.duplicated)[:5]} "
        f"stuck {sorted(tally.stuck)[:5]}"
    )
    assert not tally.unknown and len(tally.out) == len(tally.jobs_in), figures
    assert not tally.statuses["unreadable"], figures
    assert run.chaos.nats_kills == 2 and up.count("embedded nats-server ready again") == 2, figures
    assert all(run.chaos.kills[service] for service in SERVICES), figures
    assert final.produced == final.requested > 0 and final.learned_from > 0, final

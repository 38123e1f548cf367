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
import os
import random
import signal
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from shared.config import NatsSettings
from shared.messaging import connect, subjects
from shared.queue import ARCHIVE, ERROR, PROCESSED, QUARANTINE, TMP, FileQueue
from shared.watch import watching
from tests.support.chaos import (
    FIGURES,
    LOG_FINDINGS,
    NATS,
    SEED,
    SERVICES,
    Arrivals,
    Tally,
    Ticker,
    Up,
    chaos_config,
    drained,
    environment,
    said,
    syntx_up,
    turn,
)
from tests.support.consumers import add_jobs
from tests.support.harness import behind_the_bus

pytestmark = pytest.mark.chaos

JOBS_AT_START = 600
JOBS_IN = 1000  # the producer is ticked until at least this many jobs went in
TICK_EVERY_S = 0.5  # the pace of producer ticks while jobs go in
KILL_EVERY_S = (0.6, 1.8)  # a random service is SIGKILLed after a seeded pause in this range
NATS_KILLS_AT = (250, 700)  # the nats-server is killed once this many jobs have a result
CHAOS_BATCH = 20


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


async def tick_until(ticker: Ticker, enough: Callable[[], bool]) -> None:
    while not enough():
        await ticker.tick(batch=CHAOS_BATCH)
        await asyncio.sleep(TICK_EVERY_S)  # the pace of ticks, not a wait for an event


# -- the invariants -----------------------------------------------------------------------------


def _figures(run: Run, tally: Tally, queue: FileQueue) -> str:
    folders = ", ".join(f"{folder} {tally.by_folder[folder]}" for folder in (PROCESSED, ERROR, ARCHIVE))
    statuses = ", ".join(f"{status} {n}" for status, n in sorted(tally.statuses.items()))
    kills = ", ".join(f"{name} {run.chaos.kills[name]}" for name in SERVICES)
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
            f"logs         {said(run.up, LOG_FINDINGS)}",
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
        await tick_until(run.ticker, lambda: len(arrivals.jobs) >= JOBS_IN and nats_killed.done())
        run.chaos.over.set()


@pytest.mark.timeout(300)
async def test_chaos_a_thousand_jobs_through_syntx_up_lose_nothing_and_duplicate_nothing(
    tmp_path: Path, record_property: Callable[[str, object], None]
) -> None:
    started = time.monotonic()
    env = environment(chaos_config(SEED), tmp_path / "chaos.yaml", tmp_path / "data")
    queue = FileQueue(tmp_path / "data" / "queue")
    arrivals = Arrivals(add_jobs(queue, JOBS_AT_START, "chaos "))
    nats_settings = NatsSettings(url=f"nats://127.0.0.1:{env['SYNTX_NATS__EMBEDDED_PORT']}")
    async with watching([queue.root], arrivals.on_change, recursive=True), syntx_up(env) as up:
        await up.wait_for("connected and ready", len(SERVICES), within_s=60)
        async with (
            connect(nats_settings, name="chaos test") as bus,
            behind_the_bus(nats_settings, "chaos test") as nc,
        ):
            run = Run(SEED, up, Chaos(up, random.Random(SEED)), Ticker(bus, nc))
            await bus.subscribe_events(subjects.PRODUCER_GENERATION, run.ticker.on_generation)
            await _chaos_phase(run, arrivals)
            run.timings["chaos"] = time.monotonic() - started
            await arrivals.wait_for(lambda: drained(queue), within_s=90, what="the queue drained")
            run.timings["drain"] = time.monotonic() - started - run.timings["chaos"]
            final = await turn(run.ticker, arrivals, queue, within_s=90)
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

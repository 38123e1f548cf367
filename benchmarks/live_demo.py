"""The live demo, minute by minute: ``python -m benchmarks.live_demo`` (10 minutes; ``--minutes N``).

Runs the real ``syntx up --demo`` — embedded NATS, scheduler, producer, both consumers, monitor, cleanup,
every service its own process, the demo's schedules — in a scratch data directory on free ports, for
``--minutes``, then stops it as Ctrl-C would. Then it reads what the producer logged
(``logs/evolution.jsonl``) and prints, for every minute since ``syntx up`` started, the generations and
jobs produced in it, the share of the true top three arms of the demo's simulated taste among them, and
the mean score of the results learned; and the first minute from which every minute held at least half
of its jobs on the true top three. ``--keep DIR`` keeps the data directory (``SYNTX_DATA_DIR=DIR syntx
learning --plot learning.png`` draws it).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shutil
import signal
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from benchmarks.procs import drain, wait_for_marker
from benchmarks.ticks import free_ports
from shared.config import DEFAULT_CONFIG, DEMO_CONFIG, load_settings
from shared.learning import arm_name
from shared.learning.evolution import EVOLUTION_LOG, GenerationLine, read_generations
from shared.llm import PromptContext
from shared.llm.taste import Taste

log = logging.getLogger("benchmarks.live_demo")

MINUTES = 10
TOP = 3
HALF = 0.5
READY_MARKER = b"started "
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Minute:
    number: int
    generations: int
    jobs: int
    top_jobs: int
    learned: int
    score_sum: float

    @property
    def share(self) -> float | None:
        return self.top_jobs / self.jobs if self.jobs else None

    @property
    def mean_score(self) -> float | None:
        return self.score_sum / self.learned if self.learned else None


def true_top() -> list[str]:
    """The demo taste's best arms (the chance of a complete answer, in German, at generation 1)."""
    settings = load_settings([DEFAULT_CONFIG, DEMO_CONFIG])
    taste = settings.consumers["sigma"].backend.taste
    assert taste is not None, "config/demo.yaml defines the taste"
    world = Taste(taste)
    arms = [(category, style) for category in settings.topics for style in settings.styles]
    ranked = sorted(arms, key=lambda arm: -world.chance(PromptContext(arm[0], arm[1], "de", 1)))
    return [arm_name(arm) for arm in ranked[:TOP]]


def _environment(data_dir: Path) -> dict[str, str]:
    nats_port, monitor_port = free_ports(2)
    env = {key: value for key, value in os.environ.items() if not key.startswith("SYNTX_")}
    env.update(
        SYNTX_DATA_DIR=str(data_dir),
        SYNTX_NATS__EMBEDDED_PORT=str(nats_port),
        SYNTX_MONITOR__PORT=str(monitor_port),
    )
    return env


async def run_demo(data_dir: Path, minutes: float) -> datetime:
    """``syntx up --demo`` for ``minutes`` from its start; returns when it was started."""
    args = [str(Path(sys.executable).parent / "syntx"), "up", "--demo"]
    started = datetime.now().astimezone()
    process = await asyncio.create_subprocess_exec(
        *args, env=_environment(data_dir), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    assert process.stdout is not None
    try:
        await asyncio.wait_for(wait_for_marker(process.stdout, READY_MARKER), START_TIMEOUT_S)
        draining = asyncio.create_task(drain(process.stdout))
        left = minutes * 60 - (datetime.now().astimezone() - started).total_seconds()
        await asyncio.sleep(max(left, 0.0))  # the measured window itself
        process.send_signal(signal.SIGINT)
        await asyncio.wait_for(process.wait(), STOP_TIMEOUT_S)
        await draining
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    return started


def minutes_of(
    generations: list[GenerationLine], started: datetime, minutes: int, top: list[str]
) -> list[Minute]:
    buckets: dict[int, list[GenerationLine]] = {number: [] for number in range(1, minutes + 1)}
    for line in generations:
        number = int((line.time - started).total_seconds() // 60) + 1
        if number in buckets:
            buckets[number].append(line)
    result = []
    for number, lines in buckets.items():
        jobs: Counter[str] = Counter()
        for line in lines:
            jobs.update(line.jobs)
        result.append(
            Minute(
                number=number,
                generations=len(lines),
                jobs=jobs.total(),
                top_jobs=sum(jobs[arm] for arm in top),
                learned=sum(line.learned for line in lines),
                score_sum=sum(line.learned * (line.mean_score or 0.0) for line in lines),
            )
        )
    return result


def render(rows: list[Minute], top: list[str]) -> str:
    lines = [
        f"syntx up --demo, minute by minute since it started; the true top {TOP}: {', '.join(top)}",
        f"{'minute':>6}  {'generations':>11}  {'jobs':>5}  {'top 3 share':>11}  {'mean score':>10}",
    ]
    for row in rows:
        share = "-" if row.share is None else f"{row.share:.0%}"
        score = "-" if row.mean_score is None else f"{row.mean_score:.1f}"
        lines.append(f"{row.number:>6}  {row.generations:>11}  {row.jobs:>5}  {share:>11}  {score:>10}")
    held = [row.number for row in rows if row.share is not None and row.share >= HALF]
    since = next((n for n in held if all(m in held for m in range(n, rows[-1].number + 1))), None)
    lines.append(
        f"the true top three held half of the jobs or more in every minute from minute {since} on"
        if since is not None
        else "the true top three never held half of the jobs to the end"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.live_demo", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--minutes", type=int, default=MINUTES)
    parser.add_argument("--keep", type=Path, default=None, help="copy the data directory here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with tempfile.TemporaryDirectory(prefix="syntx-live-demo-") as scratch:
        data_dir = Path(scratch) / "data"
        log.info("running syntx up --demo for %d minutes in %s", args.minutes, data_dir)
        started = asyncio.run(run_demo(data_dir, args.minutes))
        top = true_top()
        generations = list(read_generations(data_dir / "logs" / EVOLUTION_LOG))
        sys.stdout.write(render(minutes_of(generations, started, args.minutes, top), top) + "\n")
        if args.keep:
            shutil.copytree(data_dir, args.keep, dirs_exist_ok=True)
            sys.stdout.write(f"data kept in {args.keep}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

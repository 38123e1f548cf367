"""The demo world driven for many producer generations, accelerated: does the producer visibly learn?

    python -m benchmarks.demo_world                    # 120 generations of 8 jobs: 10 minutes live
    python -m benchmarks.demo_world --generations 36 --keep data-demo
    python -m benchmarks.demo_world --drift            # the world changes at generation 60: followed?

Runs the real producer and both consumers (in this process) over a real nats-server, with
config/syntx.yaml + config/demo.yaml (the offline responder's SIMULATED taste, the demo's batch), no
schedules and no responder delay: a generation is a producer tick, then every job it wrote is consumed
and scored before the next tick (so the queue is always STARVING and each generation is a full batch,
as in the live demo, whose producer ticks every 5 s). Prints a figure of the share of the true top three
arms (as the world is at that generation) among the produced jobs, and the mean score, per block of
generations (12: a minute of the live demo); the data directory (evolution.jsonl, results, learner
state) is kept with ``--keep``. ``python -m benchmarks.live_demo`` measures the real ``syntx up --demo``.

With ``--drift`` the taste drifts as config/demo.yaml documents (``technologie`` -0.5 and ``bildung``
+0.35 from generation 60, so the best arms become bildung's) and the run prints how fast the producer
follows: the first generation in which the new best arm is the most chosen, the first after which it
is the most chosen over every window of ``FOLLOW_WINDOW`` generations (about the learning benchmark's
recovery window), the mean score before, at and after the change, and the generations in which the
learner chose from what it learned since a change (``memory: short`` in evolution.jsonl).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import logging
import shutil
import statistics
import sys
import tempfile
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import nats
from nats.aio.msg import Msg

from benchmarks.procs import Children, start_nats
from services.consumer.service import run as run_consumer
from services.producer.app import run as run_producer
from shared.config import DEFAULT_CONFIG, DEMO_CONFIG, OfflineTaste, Settings, load_settings
from shared.learning import arm_name
from shared.learning.evolution import EVOLUTION_LOG, read_generations
from shared.llm import PromptContext
from shared.llm.taste import Taste
from shared.messaging import JobCreated, JobScored, ProducerGeneration, decode_event, subjects

GENERATIONS = 120
BLOCK = 12  # generations per line of the figure: a minute of the live demo
TOP = 3
WAIT_S = 60.0
CONSUMERS = ("syntex_system", "sigma")
BAR_WIDTH = 40
DRIFT = {"from_generation": 60, "category": {"technologie": -0.5, "bildung": 0.35}}  # as demo.yaml says
FOLLOW_WINDOW = 12  # generations (96 jobs)
log = logging.getLogger("benchmarks.demo_world")


@dataclass
class Generation:
    arms: list[tuple[str, str]] = field(default_factory=list)
    scores: list[int] = field(default_factory=list)


def demo_settings(data_dir: Path, url: str, drift: dict[str, object] | None = None) -> Settings:
    backend: dict[str, object] = {"offline_delay_s": 0.0}
    if drift is not None:
        backend["taste"] = {"drift": drift}
    return load_settings(
        [DEFAULT_CONFIG, DEMO_CONFIG],
        data_dir=data_dir,
        nats={"url": url},
        producer={"seed": 11},
        consumers={name: {"backend": backend, "concurrency": 8} for name in ("syntex_system", "sigma")},
        schedules={name: {"enabled": False} for name in ("producer", "monitor", "cleanup")}
        | {f"consumer.{name}": {"enabled": False} for name in CONSUMERS},
    )


def true_top(settings: Settings, taste: OfflineTaste, generation: int = 1) -> list[tuple[str, str]]:
    world = Taste(taste)
    arms = [(category, style) for category in settings.topics for style in settings.styles]
    return sorted(arms, key=lambda arm: -world.chance(PromptContext(arm[0], arm[1], "de", generation)))[:TOP]


class Watch:
    def __init__(self) -> None:
        self.generations: dict[int, Generation] = defaultdict(Generation)
        self.produced: dict[int, int] = {}
        self.scored = 0
        self.created = 0
        self.ready: set[str] = set()
        self.changed = asyncio.Condition()

    async def on_msg(self, msg: Msg) -> None:
        event = decode_event(msg.data)
        if isinstance(event, JobCreated) and event.category and event.style and event.generation:
            self.generations[event.generation].arms.append((event.category, event.style))
            self.created += 1
        elif isinstance(event, JobScored):
            self.scored += 1
            if event.generation:
                self.generations[event.generation].scores.append(event.score)
        elif isinstance(event, ProducerGeneration):
            self.produced[event.generation] = event.produced
        else:
            self.ready.add(getattr(event, "service", ""))
        async with self.changed:
            self.changed.notify_all()

    async def until(self, predicate: object, what: str) -> None:
        assert callable(predicate)
        try:
            async with asyncio.timeout(WAIT_S), self.changed:
                await self.changed.wait_for(predicate)
        except TimeoutError:
            raise RuntimeError(f"demo world: no {what} within {WAIT_S:.0f} s") from None


async def drive(settings: Settings, generations: int) -> dict[int, Generation]:
    assert settings.nats.url
    watch = Watch()
    nc = await nats.connect(settings.nats.url)
    for subject in (subjects.JOB_CREATED, subjects.JOB_SCORED, subjects.PRODUCER_GENERATION):
        await nc.subscribe(subject, cb=watch.on_msg)
    await nc.subscribe(subjects.SERVICE_HEARTBEAT, cb=watch.on_msg)
    stop = asyncio.Event()
    tasks = [asyncio.create_task(run_producer(settings, stop), name="producer")]
    tasks += [asyncio.create_task(run_consumer(settings, stop, name), name=name) for name in CONSUMERS]
    try:
        await watch.until(lambda: len(watch.ready) >= len(tasks) or _died(tasks), "services")
        for number in range(1, generations + 1):
            await nc.publish(subjects.tick("producer"), b"")
            await watch.until(lambda n=number: n in watch.produced or _died(tasks), f"generation {number}")
            await watch.until(lambda: watch.scored >= watch.created or _died(tasks), "scores")
            if number % 10 == 0:
                log.info("generation %d: %d jobs scored", number, watch.scored)
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        await nc.drain()
    return dict(watch.generations)


def _died(tasks: list[asyncio.Task[None]]) -> bool:
    for task in tasks:
        if task.done():
            task.result()
            raise RuntimeError(f"{task.get_name()} stopped")
    return False


def figure(
    generations: dict[int, Generation], top_at: Callable[[int], list[tuple[str, str]]], block: int
) -> str:
    """Per block of generations: the share of the true top arms (as the world is at each generation)
    among the produced jobs, and the mean score."""
    numbers = sorted(generations)
    tops = {number: top_at(number) for number in numbers}
    named = [", ".join(arm_name(arm) for arm in tops[numbers[0]])]
    named += [
        f"from generation {n}: {', '.join(arm_name(arm) for arm in tops[n])}"
        for n in numbers[1:]
        if tops[n] != tops[n - 1]
    ]
    lines = [
        f"share of the true top {TOP} arms ({'; '.join(named)}) among produced jobs, "
        f"per {block} generations; uniform choice would give {TOP / 28:.0%}",
        f"{'generations':>11}  {'share':<{BAR_WIDTH}}  {'share':>5}  {'mean score':>10}",
    ]
    # generation 1 alone (chosen before anything was learned), then blocks ending at multiples of block
    chunks = [numbers[:1]] + [
        [n for n in numbers[1:] if (n - 1) // block == index]
        for index in range((numbers[-1] - 1) // block + 1)
    ]
    for numbers_in_chunk in (chunk for chunk in chunks if chunk):
        produced = [(n, arm) for n in numbers_in_chunk for arm in generations[n].arms]
        scores = [score for n in numbers_in_chunk for score in generations[n].scores]
        share = sum(arm in tops[n] for n, arm in produced) / max(len(produced), 1)
        bar = "#" * round(share * BAR_WIDTH)
        first, last = numbers_in_chunk[0], numbers_in_chunk[-1]
        label = f"{first}" if first == last else f"{first}-{last}"
        mean = f"{statistics.fmean(scores):.1f}" if scores else "-"
        lines.append(f"{label:>11}  {bar:<{BAR_WIDTH}}  {share:>5.0%}  {mean:>10}")
    return "\n".join(lines)


def most_chosen(generations: list[Generation], arm: tuple[str, str]) -> bool:
    counts: dict[tuple[str, str], int] = defaultdict(int)
    for generation in generations:
        for chosen in generation.arms:
            counts[chosen] += 1
    return bool(counts) and max(counts, key=lambda a: (counts[a], a == arm)) == arm


def drift_figures(
    generations: dict[int, Generation], settings: Settings, taste: OfflineTaste, short_memory: list[int]
) -> str:
    """How fast the producer follows the drift: generations until the new best arm is the most chosen,
    and the mean score before, at and after the change."""
    assert taste.drift is not None
    change = taste.drift.from_generation
    old_best = true_top(settings, taste, 1)[0]
    new_best = true_top(settings, taste, change)[0]
    numbers = sorted(generations)
    after = [n for n in numbers if n >= change]
    first = next((n for n in after if most_chosen([generations[n]], new_best)), None)
    followed = next(
        (
            n
            for n in after
            if n - FOLLOW_WINDOW + 1 >= change
            and all(
                most_chosen([generations[k] for k in range(m - FOLLOW_WINDOW + 1, m + 1)], new_best)
                for m in after
                if m >= n
            )
        ),
        None,
    )

    def mean(first: int, last: int) -> str:
        scores = [s for n in numbers if first <= n <= last for s in generations[n].scores]
        return f"{statistics.fmean(scores):.1f}" if scores else "-"

    def at(number: int | None) -> str:
        if number is None:
            return "never"
        return f"{number} ({(number - change + 1) * settings.producer.batch} jobs from the change)"

    last = numbers[-1]
    spans = ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in _runs(short_memory)) or "none"
    return "\n".join(
        [
            f"drift at generation {change}: best arm {arm_name(old_best)} -> {arm_name(new_best)}",
            f"new best arm first most chosen in a generation: {at(first)}",
            f"new best arm most chosen over every {FOLLOW_WINDOW} generations from: {at(followed)}",
            f"mean score: before {mean(change - 10, change - 1)} (generations {change - 10}-{change - 1}), "
            f"at {mean(change, change + 9)} ({change}-{change + 9}), "
            f"after {mean(change + 10, change + 19)} ({change + 10}-{change + 19}), "
            f"end {mean(last - 9, last)} ({last - 9}-{last})",
            f"choices from what was learned since a change (memory short) in {len(short_memory)} "
            f"generations: {spans}",
        ]
    )


def _runs(numbers: list[int]) -> list[tuple[int, int]]:
    """Consecutive numbers as (first, last) runs."""
    runs: list[tuple[int, int]] = []
    for number in sorted(numbers):
        if runs and number == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], number)
        else:
            runs.append((number, number))
    return runs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.demo_world", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--generations", type=int, default=GENERATIONS)
    parser.add_argument("--block", type=int, default=BLOCK, help="generations per line of the figure")
    parser.add_argument("--keep", type=Path, default=None, help="copy the data directory here")
    parser.add_argument(
        "--drift", action="store_true", help="technologie -0.5 from generation 40 (config/demo.yaml)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    log.setLevel(logging.INFO)
    children = Children()
    with tempfile.TemporaryDirectory(prefix="syntx-demo-world-") as work:
        root = Path(work)
        try:
            drift = DRIFT if args.drift else None
            settings = demo_settings(root / "data", start_nats(children, root), drift)
            generations = asyncio.run(drive(settings, args.generations))
        finally:
            children.close()
        taste = settings.consumers["sigma"].backend.taste
        assert taste is not None, "config/demo.yaml defines the taste"
        top_at = functools.partial(true_top, settings, taste)
        sys.stdout.write(figure(generations, top_at, args.block) + "\n")
        if taste.drift is not None:
            log_path = settings.logs_dir / EVOLUTION_LOG
            short = [line.generation for line in read_generations(log_path) if line.memory == "short"]
            sys.stdout.write(drift_figures(generations, settings, taste, short) + "\n")
        if args.keep:
            shutil.copytree(root / "data", args.keep, dirs_exist_ok=True)
            sys.stdout.write(f"data kept in {args.keep} (logs/evolution.jsonl has one line per generation)\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The demo world driven for many producer generations, accelerated: does the producer visibly learn?

    python -m benchmarks.demo_world                    # 100 generations of 20 jobs
    python -m benchmarks.demo_world --generations 30 --keep data-demo

Runs the real producer and both consumers (in this process) over a real nats-server, with
config/syntx.yaml + config/demo.yaml (the offline responder's SIMULATED taste), no schedules and no
responder delay: a generation is a producer tick, then every job it wrote is consumed and scored before
the next tick (so the queue is always STARVING and each generation is a full batch). Prints a figure of
the share of the true top three arms among the produced jobs, and the mean score, per generation; the
data directory (evolution.jsonl, results, learner state) is kept with ``--keep``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import shutil
import statistics
import sys
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import nats
from nats.aio.msg import Msg

from benchmarks.procs import Children, start_nats
from services.consumer.service import run as run_consumer
from services.producer.app import run as run_producer
from shared.config import DEFAULT_CONFIG, DEMO_CONFIG, OfflineTaste, Settings, load_settings
from shared.llm import PromptContext
from shared.llm.taste import Taste
from shared.messaging import JobCreated, JobScored, ProducerGeneration, decode_event, subjects

GENERATIONS = 100
BATCH = 20
TOP = 3
WAIT_S = 60.0
CONSUMERS = ("syntex_system", "sigma")
BAR_WIDTH = 40
log = logging.getLogger("benchmarks.demo_world")


@dataclass
class Generation:
    arms: list[tuple[str, str]] = field(default_factory=list)
    scores: list[int] = field(default_factory=list)


def demo_settings(data_dir: Path, url: str) -> Settings:
    return load_settings(
        [DEFAULT_CONFIG, DEMO_CONFIG],
        data_dir=data_dir,
        nats={"url": url},
        producer={"seed": 11, "batch": BATCH},
        consumers={
            name: {"backend": {"offline_delay_s": 0.0}, "concurrency": 8}
            for name in ("syntex_system", "sigma")
        },
        schedules={name: {"enabled": False} for name in ("producer", "monitor", "cleanup")}
        | {f"consumer.{name}": {"enabled": False} for name in CONSUMERS},
    )


def true_top(settings: Settings, taste: OfflineTaste) -> list[tuple[str, str]]:
    world = Taste(taste)
    arms = [(category, style) for category in settings.topics for style in settings.styles]
    return sorted(arms, key=lambda arm: -world.chance(PromptContext(arm[0], arm[1], "de", 1)))[:TOP]


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


def figure(generations: dict[int, Generation], top: list[tuple[str, str]], block: int) -> str:
    lines = [
        f"share of the true top {TOP} arms ({', '.join(f'{c}/{s}' for c, s in top)}) among produced jobs, "
        f"per {block} generations; uniform choice would give {TOP / 28:.0%}",
        f"{'generations':>11}  {'share':<{BAR_WIDTH}}  {'share':>5}  {'mean score':>10}",
    ]
    numbers = sorted(generations)
    # generation 1 alone (chosen before anything was learned), then blocks ending at multiples of block
    chunks = [numbers[:1]] + [
        [n for n in numbers[1:] if (n - 1) // block == index]
        for index in range((numbers[-1] - 1) // block + 1)
    ]
    for numbers_in_chunk in (chunk for chunk in chunks if chunk):
        chunk = [generations[n] for n in numbers_in_chunk]
        produced = [arm for g in chunk for arm in g.arms]
        scores = [score for g in chunk for score in g.scores]
        share = sum(arm in top for arm in produced) / max(len(produced), 1)
        bar = "#" * round(share * BAR_WIDTH)
        first, last = numbers_in_chunk[0], numbers_in_chunk[-1]
        label = f"{first}" if first == last else f"{first}-{last}"
        mean = f"{statistics.fmean(scores):.1f}" if scores else "-"
        lines.append(f"{label:>11}  {bar:<{BAR_WIDTH}}  {share:>5.0%}  {mean:>10}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.demo_world", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--generations", type=int, default=GENERATIONS)
    parser.add_argument("--block", type=int, default=10, help="generations per line of the figure")
    parser.add_argument("--keep", type=Path, default=None, help="copy the data directory here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    log.setLevel(logging.INFO)
    children = Children()
    with tempfile.TemporaryDirectory(prefix="syntx-demo-world-") as work:
        root = Path(work)
        try:
            settings = demo_settings(root / "data", start_nats(children, root))
            generations = asyncio.run(drive(settings, args.generations))
        finally:
            children.close()
        taste = settings.consumers["sigma"].backend.taste
        assert taste is not None, "config/demo.yaml defines the taste"
        sys.stdout.write(figure(generations, true_top(settings, taste), args.block) + "\n")
        if args.keep:
            shutil.copytree(root / "data", args.keep, dirs_exist_ok=True)
            sys.stdout.write(f"data kept in {args.keep} (logs/evolution.jsonl has one line per generation)\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

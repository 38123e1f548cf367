"""Pickup latency of a consumer on "another host", claims/s on local disk and on a second mount, events/s.

``python -m benchmarks.remote [--jobs 300] [--rescan-jobs 20] [--rescan-s 1] [--claims 5000]`` starts a
nats-server and one consumer in this process whose queue folder is a second mount (``mount --bind``,
as root; without it the same folder, said in the output) of the folder a writer fills. The consumer
watches by polling (``watch_polling``), as on a network filesystem. Pickup latency is the time from a
job's file landing (renamed into ``incoming/``) to its claim (renamed into ``processing/``, seen by an
inotify watch on the writer's side):

* through ``syntx.job.created`` — the writer announces each job, as the producer does;
* through rescans only — no announcement, the consumer finds the job by its own scans (polling every
  second, and its ``rescan_s``).

Then claims/s (one rename per claim) on the local folder and through the second mount, and how many
``job.created`` events/s one connection publishes and a subscriber receives.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import nats

import services.consumer.service as consumer_service
from benchmarks.procs import Children, start_nats
from shared.config import DEFAULT_CONFIG, Settings, load_settings
from shared.messaging import JobCreated, subjects
from shared.queue import PROCESSING, Claims, FileQueue, JobMeta, new_token, parse_claim
from shared.watch import Change, watching

log = logging.getLogger("benchmarks.remote")
WRAPPER = "syntex_system"
EVENTS = 20_000
PROMPT = "Erkläre, wie Katzen ihre Umgebung wahrnehmen."


@contextlib.contextmanager
def second_mount(served: Path, seen_as: Path) -> Iterator[bool]:
    """Mount ``served`` again at ``seen_as``; yields False (and links the folder) where that is refused."""
    seen_as.mkdir(parents=True)
    done = subprocess.run(["mount", "--bind", str(served), str(seen_as)], capture_output=True, check=False)
    if done.returncode != 0:
        seen_as.rmdir()
        seen_as.symlink_to(served)
        yield False
        return
    try:
        yield True
    finally:
        subprocess.run(["umount", str(seen_as)], check=False)


def _settings(data_dir: Path, url: str, rescan_s: float) -> Settings:
    consumer = {"watch": True, "watch_polling": True, "rescan_s": rescan_s, "concurrency": 4}
    return load_settings(
        [DEFAULT_CONFIG], data_dir=data_dir, nats={"url": url}, consumers={WRAPPER: consumer}
    )


class Claimed:
    """The moment each job's claim appears in ``processing/`` (watched on the writer's side)."""

    def __init__(self) -> None:
        self.at: dict[str, float] = {}
        self._waiting: dict[str, asyncio.Event] = {}

    def on_change(self, change: Change) -> None:
        kind, _folder, name = change
        claim = parse_claim(Path(name))
        if kind == "added" and claim is not None and claim.job_id not in self.at:
            self.at[claim.job_id] = time.perf_counter()
            if (event := self._waiting.get(claim.job_id)) is not None:
                event.set()

    async def wait(self, job_id: str, timeout_s: float) -> float:
        if job_id not in self.at:
            event = self._waiting.setdefault(job_id, asyncio.Event())
            await asyncio.wait_for(event.wait(), timeout=timeout_s)
        return self.at[job_id]


@contextlib.asynccontextmanager
async def consumer(settings: Settings) -> AsyncIterator[None]:
    stop = asyncio.Event()
    task = asyncio.create_task(consumer_service.run(settings, stop, WRAPPER))
    try:
        yield
    finally:
        stop.set()
        await task


async def pickups(writer: FileQueue, claimed: Claimed, jobs: int, announce: bool, url: str) -> list[float]:
    client = await nats.connect(url)
    latencies = []
    try:
        for _ in range(jobs):
            job_id = writer.add_job(PROMPT, JobMeta(topic="Katzen"))
            landed = time.perf_counter()
            if announce:
                await client.publish(
                    subjects.JOB_CREATED, JobCreated(job_id=job_id).model_dump_json().encode()
                )
            latencies.append(await claimed.wait(job_id, timeout_s=120) - landed)
    finally:
        await client.close()
    return latencies


def claims_per_s(queue: FileQueue, count: int) -> float:
    ids = [queue.add_job(PROMPT, JobMeta()) for _ in range(count)]
    claims = Claims(queue, new_token())
    started = time.perf_counter()
    for job_id in ids:
        claims.take(job_id)
    rate = count / (time.perf_counter() - started)
    for name in os.listdir(queue.folder(PROCESSING)):
        os.unlink(queue.folder(PROCESSING) / name)
    return rate


async def events_per_s(url: str) -> tuple[float, float]:
    publisher, subscriber = await nats.connect(url), await nats.connect(url)
    received = 0
    done = asyncio.Event()

    async def on_msg(_msg: object) -> None:
        nonlocal received
        received += 1
        if received == EVENTS:
            done.set()

    await subscriber.subscribe("bench.job.created", cb=on_msg)
    await subscriber.flush()
    body = JobCreated(job_id="20261130T000000000000Z-000000").model_dump_json().encode()
    started = time.perf_counter()
    for _ in range(EVENTS):
        await publisher.publish("bench.job.created", body)
    await publisher.flush()
    published = EVENTS / (time.perf_counter() - started)
    await asyncio.wait_for(done.wait(), timeout=60)
    delivered = EVENTS / (time.perf_counter() - started)
    await publisher.close()
    await subscriber.close()
    return published, delivered


def _percentiles(values: list[float]) -> str:
    ordered = sorted(values)

    def pick(share: float) -> float:
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))] * 1000

    return f"p50 {pick(0.5):8.1f} ms   p99 {pick(0.99):8.1f} ms   max {ordered[-1] * 1000:8.1f} ms"


async def run(args: argparse.Namespace, scratch: Path) -> None:
    children = Children()
    url = start_nats(children, scratch)
    served = FileQueue(scratch / "server" / "queue")
    served.ensure()
    try:
        with second_mount(served.root, scratch / "data" / "queue") as mounted:
            claimed = Claimed()
            async with (
                watching([served.folder(PROCESSING)], claimed.on_change, arrivals_only=True),
                consumer(_settings(scratch / "data", url, args.rescan_s)),
            ):
                await pickups(served, claimed, 3, True, url)  # warm up: connections, first drain
                created = await pickups(served, claimed, args.jobs, True, url)
                rescans = await pickups(served, claimed, args.rescan_jobs, False, url)
            seen = FileQueue(scratch / "data" / "queue")
            rounds = [(claims_per_s(served, args.claims), claims_per_s(seen, args.claims)) for _ in range(3)]
            local, through_mount = max(r[0] for r in rounds), max(r[1] for r in rounds)
            published, delivered = await events_per_s(url)
    finally:
        children.close()
    view = "a second (bind) mount" if mounted else "the same folder (mount --bind refused)"
    log.info("consumer polling its queue through %s; pickup = file landed -> claim renamed", view)
    log.info(
        "through syntx.job.created (%d jobs):   %s   (target p99 <= 50 ms)", args.jobs, _percentiles(created)
    )
    log.info(
        "through rescans only (%d jobs, polling 1 s, rescan_s %g): %s",
        args.rescan_jobs,
        args.rescan_s,
        _percentiles(rescans),
    )
    log.info(
        "ratio rescans / job.created at p50: %.0fx",
        sorted(rescans)[len(rescans) // 2] / sorted(created)[len(created) // 2],
    )
    log.info(
        "claims/s (one rename each, %d jobs, best of 3): local %.0f, through the second mount %.0f",
        args.claims,
        local,
        through_mount,
    )
    log.info("job.created events/s on one connection: published %.0f, received %.0f", published, delivered)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=300)
    parser.add_argument("--rescan-jobs", type=int, default=20)
    parser.add_argument("--rescan-s", type=float, default=1.0)
    parser.add_argument("--claims", type=int, default=5000)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("services").setLevel(logging.WARNING)
    logging.getLogger("shared").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory() as scratch:
        asyncio.run(run(args, Path(scratch)))


if __name__ == "__main__":
    main()

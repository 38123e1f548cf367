"""Tick lag: from a tick's scheduled slot to its arrival at a service, on one node and in a 3-node cluster.

``python -m benchmarks.ticks [--seconds 60] [--schedules 5]`` runs two scheduler replicas, each its own
process as deployed (in a cluster: on two different nodes), with ``--schedules`` schedules
``@every 1s`` — all firing at the same instant —, and in this process, on a third connection (the
cluster's third node), one service-style tick subscription per schedule plus a plain core subscriber on
``syntx.tick.>``. It prints one table: ticks received, lag p50/p99/max at the service, and how many slots
arrived twice at the service and at the plain subscriber. The single node is the baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import multiprocessing
import signal
import socket
import statistics
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import nats
from nats.aio.msg import Msg

from benchmarks.report import load_average
from services.scheduler.app import run as run_scheduler
from shared.config import DEFAULT_CONFIG, Settings, load_settings
from shared.messaging import Tick, connect, connect_options, subjects
from syntx.embedded_nats import EmbeddedNats
from syntx.nats_cluster import plan_cluster

log = logging.getLogger("benchmarks.ticks")
OTHERS_OFF = ("producer", "consumer.syntex_system", "consumer.sigma", "monitor", "cleanup")
START_S = 30.0
STOP_S = 10.0


@dataclass
class Seen:
    lags_s: list[float] = field(default_factory=list)
    at_service: Counter[str] = field(default_factory=Counter)
    at_core: Counter[str] = field(default_factory=Counter)

    async def on_tick(self, tick: Tick) -> None:
        if tick.slot is not None:
            self.lags_s.append(time.time() - tick.slot.timestamp())
            self.at_service[f"{tick.schedule}@{tick.slot.isoformat()}"] += 1

    async def on_core(self, msg: Msg) -> None:
        self.at_core[(msg.headers or {}).get("Nats-Msg-Id", "")] += 1


@dataclass(frozen=True)
class Row:
    setup: str
    ticks: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    twice_at_service: int
    twice_at_core: int


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def _nodes(root: Path, size: int) -> list[EmbeddedNats]:
    if size == 1:
        return [
            EmbeddedNats(root / "single", free_ports(1)[0], start_timeout_s=START_S, stop_timeout_s=STOP_S)
        ]
    ports = free_ports(2 * size)
    plan = plan_cluster(root / "cluster", ports[:size], ports[size:])
    return [
        EmbeddedNats(
            node.store_dir,
            node.client_port,
            name=node.name,
            cluster_arguments=plan.cluster_arguments(node),
            start_timeout_s=START_S,
            stop_timeout_s=STOP_S,
        )
        for node in plan.nodes
    ]


def _settings(root: Path, url: str, names: list[str], replicas: int, index: int) -> Settings:
    schedules: dict[str, dict[str, object]] = {name: {"cron": "@every 1s"} for name in names}
    schedules.update({name: {"cron": "0 0 1 1 *", "enabled": False} for name in OTHERS_OFF})
    return load_settings(
        [DEFAULT_CONFIG],
        data_dir=root / f"replica-{index}",
        nats={"url": url, "stream_replicas": replicas},
        schedules=schedules,
    )


def _replica(root: str, url: str, names: list[str], replicas: int, index: int) -> None:
    """One scheduler replica in a process of its own, until SIGTERM."""
    settings = _settings(Path(root), url, names, replicas, index)

    async def until_terminated() -> None:
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await run_scheduler(settings, stop)

    asyncio.run(until_terminated())


async def measure(root: Path, size: int, seconds: float, schedules: int) -> Row:
    nodes = _nodes(root, size)
    await asyncio.gather(*(node.start() for node in nodes))
    names = [f"bench.s{index}" for index in range(schedules)]
    urls = [node.url for node in nodes]
    service = _settings(root, urls[-1], names, size, 2)
    seen = Seen()
    done = asyncio.Event()
    spawn = multiprocessing.get_context("spawn")
    replicas = [
        spawn.Process(target=_replica, args=(str(root), urls[index % size], names, size, index))
        for index in range(2)
    ]
    try:
        core = await nats.connect(**connect_options(service.nats, "bench-core"))  # sees the headers
        async with connect(service.nats, name="bench-service") as bus:
            await core.subscribe(subjects.TICK_ALL, cb=seen.on_core)
            subscriptions = [await bus.subscribe_ticks(name, "allow") for name in names]
            readers = [asyncio.create_task(sub.run(seen.on_tick, done)) for sub in subscriptions]
            for replica in replicas:
                replica.start()
            await asyncio.sleep(seconds)  # the measurement runs for this long: a duration, not a wait
            for replica in replicas:
                replica.terminate()
            for replica in replicas:
                await asyncio.to_thread(replica.join)
            await bus.flush()
            done.set()
            await asyncio.gather(*readers)
        await core.drain()
    finally:
        for replica in replicas:
            if replica.is_alive():
                replica.kill()
        await asyncio.gather(*(node.stop() for node in nodes))
    lags = sorted(seen.lags_s)
    cuts = statistics.quantiles(lags, n=100, method="inclusive") if len(lags) > 1 else lags * 99
    return Row(
        setup=f"{size} node{'s' if size > 1 else ''}, 2 scheduler replicas",
        ticks=len(lags),
        p50_ms=cuts[49] * 1000,
        p99_ms=cuts[98] * 1000,
        max_ms=lags[-1] * 1000 if lags else 0.0,
        twice_at_service=sum(1 for count in seen.at_service.values() if count > 1),
        twice_at_core=sum(1 for count in seen.at_core.values() if count > 1),
    )


def table(rows: list[Row]) -> str:
    header = (
        f"{'setup':34} {'ticks':>6} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} "
        f"{'twice@service':>14} {'twice@core':>11}"
    )
    lines = [header, "-" * len(header)]
    for row in rows:
        lines.append(
            f"{row.setup:34} {row.ticks:>6} {row.p50_ms:>8.2f} {row.p99_ms:>8.2f} {row.max_ms:>8.2f} "
            f"{row.twice_at_service:>14} {row.twice_at_core:>11}"
        )
    base, cluster = rows[0], rows[-1]
    if base.p99_ms > 0:
        lines.append(
            f"cluster / one node: p50 x{cluster.p50_ms / base.p50_ms:.2f}, "
            f"p99 x{cluster.p99_ms / base.p99_ms:.2f}"
        )
    return "\n".join(lines)


async def main_async(seconds: float, schedules: int) -> str:
    load_at_start = load_average()
    rows = []
    for size in (1, 3):
        with tempfile.TemporaryDirectory(prefix="syntx-ticks-") as tmp:
            rows.append(await measure(Path(tmp), size, seconds, schedules))
    return f"{table(rows)}\nload average at start {load_at_start}, at end {load_average()} (2 cores here)"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ticks", description=__doc__)
    parser.add_argument("--seconds", type=float, default=60.0, help="how long each setup runs")
    parser.add_argument("--schedules", type=int, default=5, help="schedules @every 1s (ticks per second)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    log.setLevel(logging.INFO)
    report = asyncio.run(main_async(args.seconds, args.schedules))
    log.info("tick lag (slot -> arrival at a service's tick subscription)\n%s", report)


if __name__ == "__main__":
    main()

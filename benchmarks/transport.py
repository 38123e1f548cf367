"""httpx's default transport against ours (``shared/llm/transport.py``), at LLM latencies, in one run.

``python -m benchmarks.transport [--seconds 5] [--delays 0,0.2,1] [--concurrency 4,16]`` starts the
loopback LLM stub (``benchmarks.llm_stub``) in its own process once per delay, then for each concurrency
runs that many workers posting a chat request back to back for ``--seconds``, first through httpx's
default transport, then through ours, with the same client settings. Per cell it prints requests per
second (and the ideal, concurrency / delay), the latency added over the stub's delay (p50 and p99) and
the client's CPU time per request.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from benchmarks.procs import Children, start_stub
from shared.llm.transport import AsyncioTransport

log = logging.getLogger(__name__)

Transport = Callable[[httpx.Limits], httpx.AsyncBaseTransport | None]
TRANSPORTS: dict[str, Transport] = {"httpx default": lambda _limits: None, "ours (h11)": AsyncioTransport}
PAYLOAD = {"model": "bench", "messages": [{"role": "user", "content": "Erkläre Katzen."}]}


@dataclass(frozen=True)
class Cell:
    delay_s: float
    concurrency: int
    transport: str
    requests: int
    wall_s: float
    cpu_s: float
    added_ms: list[float]

    @property
    def rate(self) -> float:
        return self.requests / self.wall_s

    def added(self, quantile: float) -> float:
        ranked = sorted(self.added_ms)
        return ranked[min(len(ranked) - 1, int(quantile * len(ranked)))]


async def _measure(url: str, delay_s: float, concurrency: int, name: str, seconds: float) -> Cell:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    timeout = httpx.Timeout(connect=5.0, read=30.0, write=5.0, pool=30.0)
    async with httpx.AsyncClient(
        transport=TRANSPORTS[name](limits), limits=limits, timeout=timeout
    ) as client:
        await asyncio.gather(
            *(client.post(url, json=PAYLOAD) for _ in range(concurrency))
        )  # connect, warm up
        added_ms: list[float] = []
        stop_at = time.monotonic() + seconds

        async def worker() -> None:
            while time.monotonic() < stop_at:
                started = time.perf_counter()
                response = await client.post(url, json=PAYLOAD)
                response.raise_for_status()
                added_ms.append((time.perf_counter() - started - delay_s) * 1000)

        cpu, wall = time.process_time(), time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return Cell(delay_s, concurrency, name, len(added_ms), wall, cpu, added_ms)


async def run(workdir: Path, children: Children, args: argparse.Namespace) -> list[Cell]:
    cells = []
    for delay_s in args.delays:
        stub, port = start_stub(children, workdir, delay_s)
        url = f"http://127.0.0.1:{port}/api/chat"
        for concurrency in args.concurrency:
            for name in TRANSPORTS:
                cell = await _measure(url, delay_s, concurrency, name, args.seconds)
                log.info("%g s, c%d, %s: %.1f req/s", delay_s, concurrency, name, cell.rate)
                cells.append(cell)
        children.stop(stub)
    return cells


def render(cells: list[Cell]) -> str:
    lines = [
        "| stub delay | concurrency | transport | req/s (ideal) | added latency p50 / p99 | CPU / request |",
        "|---|---|---|---|---|---|",
    ]
    for cell in cells:
        ideal = f"{cell.concurrency / cell.delay_s:.0f}" if cell.delay_s else "–"
        lines.append(
            f"| {cell.delay_s * 1000:.0f} ms | {cell.concurrency} | {cell.transport} "
            f"| {cell.rate:.1f} ({ideal}) "
            f"| {cell.added(0.5):.2f} / {cell.added(0.99):.2f} ms "
            f"| {cell.cpu_s / cell.requests * 1000:.2f} ms |"
        )
    lines.append("")
    lines.append("ours / httpx default, requests per second:")
    for default, ours in zip(cells[::2], cells[1::2], strict=True):
        lines.append(
            f"  {default.delay_s * 1000:.0f} ms, c{default.concurrency}: {ours.rate / default.rate:.3f}×"
            f" (median added latency {statistics.median(default.added_ms):.2f} → "
            f"{statistics.median(ours.added_ms):.2f} ms)"
        )
    return "\n".join(lines) + "\n"


def _floats(text: str) -> list[float]:
    return [float(part) for part in text.split(",") if part.strip()]


def _ints(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.transport", description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0, help="per cell")
    parser.add_argument("--delays", type=_floats, default=[0.0, 0.2, 1.0], help="stub delays, seconds")
    parser.add_argument("--concurrency", type=_ints, default=[4, 16])
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    workdir = Path(tempfile.mkdtemp(prefix="syntx-transport-"))
    children = Children()
    try:
        cells = asyncio.run(run(workdir, children, args))
    finally:
        children.close()
        shutil.rmtree(workdir, ignore_errors=True)
    sys.stdout.write(render(cells))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

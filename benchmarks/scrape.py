"""The monitor's /metrics endpoint: scrape latency quiet, beside slow clients, and in a burst — the code of a
git revision (default ``main``, before) against the working tree (after), in one run.

Each endpoint is a child process serving a real monitor's registry (the shipped configuration) with the
code of its tree. In turn, each is measured:

- quiet: sequential scrapes, plain (``curl``) and as Prometheus asks (OpenMetrics, gzip);
- slowloris: ``--slow`` connections (4,000) each sending a request head a byte at a time and never
  ending it, opened again when dropped, while sequential scrapes go on;
- burst: ``--burst`` scrapes (1,000) started at once.

Run: ``python -m benchmarks.scrape [--before REV] [--quiet N] [--slow N] [--burst N]``. Prints p50/p99 of
each, failed scrapes, and the ratio after/before.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.report import load_average, machine, percentile

ROOT = Path(__file__).resolve().parents[1]
PLAIN = b"GET /metrics HTTP/1.1\r\nHost: monitor\r\n\r\n"
PROMETHEUS = (
    b"GET /metrics HTTP/1.1\r\nHost: monitor\r\nAccept-Encoding: gzip\r\n"
    b"Accept: application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
    b"text/plain;version=0.0.4;q=0.5,*/*;q=0.1\r\n\r\n"
)
SCRAPE_TIMEOUT_S = 30.0  # a scrape that takes longer counts as failed (Prometheus' default is 10 s)
TRICKLE_S = 1.0  # a slow client sends one byte of its head this often
CHILD = """
import asyncio, sys, tempfile
from pathlib import Path
from shared.config import DEFAULT_CONFIG, load_settings
from services.monitor.app import Monitor

async def main():
    settings = load_settings([DEFAULT_CONFIG], data_dir=Path(tempfile.mkdtemp()))
    monitor = Monitor(settings)
    if hasattr(monitor, "endpoint"):
        http = monitor.endpoint()
    else:  # the hand-written endpoint of before
        from services.monitor.http import HttpEndpoint
        routes = {"/metrics": monitor.metrics_reply, "/healthz": monitor.health_reply}
        http = HttpEndpoint(routes, settings.monitor.request_timeout_s)
    print(await http.start("127.0.0.1", 0), flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


@dataclass
class Figures:
    seconds: list[float] = field(default_factory=list)
    failed: int = 0

    def line(self) -> str:
        if not self.seconds:
            return f"all {self.failed} failed"
        ordered = sorted(self.seconds)
        p50, p99 = percentile(ordered, 0.5) * 1000, percentile(ordered, 0.99) * 1000
        return f"p50 {p50:7.2f} ms  p99 {p99:8.2f} ms  failed {self.failed}/{len(ordered) + self.failed}"

    def p99(self) -> float:
        return percentile(sorted(self.seconds), 0.99) if self.seconds else float("inf")


async def scrape(port: int, request: bytes, figures: Figures) -> None:
    started = time.perf_counter()
    try:
        async with asyncio.timeout(SCRAPE_TIMEOUT_S):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(request)
            answer = await reader.read()
            writer.close()
    except (OSError, TimeoutError):
        figures.failed += 1
        return
    if answer.startswith(b"HTTP/1.1 200"):
        figures.seconds.append(time.perf_counter() - started)
    else:
        figures.failed += 1


async def sequential(port: int, request: bytes, count: int) -> Figures:
    figures = Figures()
    for _ in range(count):
        await scrape(port, request, figures)
    return figures


async def burst(port: int, count: int) -> Figures:
    figures = Figures()
    await asyncio.gather(*(scrape(port, PROMETHEUS, figures) for _ in range(count)))
    return figures


async def slow_client(port: int, stop: asyncio.Event, opened: list[int]) -> None:
    """Holds a connection with a request head that never ends; connects again when dropped."""
    while not stop.is_set():
        try:
            _reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(TRICKLE_S)  # refused: try again later, as an attacker would
            continue
        opened[0] += 1
        try:
            writer.write(b"GET /metrics HTTP/1.1\r\nX-Slow: ")
            while not stop.is_set():
                await asyncio.sleep(TRICKLE_S)  # the trickle's pace, not a wait for an event
                writer.write(b"a")
                await writer.drain()
        except OSError:
            continue
        finally:
            writer.close()


async def beside_slow_clients(port: int, slow: int, scrapes: int) -> tuple[Figures, int]:
    stop, opened = asyncio.Event(), [0]
    clients = [asyncio.create_task(slow_client(port, stop, opened)) for _ in range(slow)]
    await asyncio.sleep(slow / 1000)  # the clients connect meanwhile (a pace, not a wait for an event)
    figures = await sequential(port, PLAIN, scrapes)
    stop.set()
    for client in clients:
        client.cancel()
    await asyncio.gather(*clients, return_exceptions=True)
    return figures, opened[0]


def tree_of(revision: str, into: Path) -> Path:
    """The files of ``revision`` (a commit, branch or tag) in ``into``."""
    archive = subprocess.run(["git", "archive", revision], cwd=ROOT, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into


@contextlib.contextmanager
def endpoint(tree: Path) -> Iterator[int]:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD], cwd=tree, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    try:
        assert child.stdout is not None
        yield int(child.stdout.readline())
    finally:
        child.terminate()
        child.wait()


async def measure(port: int, args: argparse.Namespace) -> dict[str, Figures]:
    figures = {
        "quiet, plain": await sequential(port, PLAIN, args.quiet),
        "quiet, as Prometheus": await sequential(port, PROMETHEUS, args.quiet),
    }
    beside, opened = await beside_slow_clients(port, args.slow, args.quiet // 4)
    figures[f"beside {args.slow} slow clients"] = beside
    say(f"    ({opened} slow connections opened)")
    figures[f"burst of {args.burst}"] = await burst(port, args.burst)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", default="main", help="git revision of the code before (main)")
    parser.add_argument("--quiet", type=int, default=2000, help="sequential scrapes (2000)")
    parser.add_argument("--slow", type=int, default=4000, help="slow clients held open (4000)")
    parser.add_argument("--burst", type=int, default=1000, help="scrapes started at once (1000)")
    args = parser.parse_args()
    load_at_start = load_average()
    results: dict[str, dict[str, Figures]] = {}
    with tempfile.TemporaryDirectory() as temp:
        trees = {f"before ({args.before})": tree_of(args.before, Path(temp)), "after (working tree)": ROOT}
        for name, tree in trees.items():
            say(f"{name}:")
            with endpoint(tree) as port:
                results[name] = asyncio.run(measure(port, args))
            for what, figures in results[name].items():
                say(f"  {what:<28} {figures.line()}")
    before, after = results.values()
    say("p99 after/before: " + ", ".join(f"{w} {after[w].p99() / before[w].p99():.2f}" for w in before))
    say(machine(Path(tempfile.gettempdir()), load_at_start))


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()

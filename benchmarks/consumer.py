"""``python -m benchmarks.consumer``: how fast the consumer is, printed as one table.

Starts a nats-server (random port, temp store), an instant loopback LLM in its own process (and a 200 ms
one for the slow-backend row), then the consumer as its own process per scenario
(``python -m services.consumer --wrapper syntex_system``, configured by ``SYNTX_*`` and a temp YAML),
and an emulation of the original consumer in-process. The instant c=16 and the 50 ms c=64 rows also run
in watch mode as one process and as two instances on one queue (the concurrency split between them).
Everything it starts it stops, temp dirs included.
Options: ``--quick`` (smoke run, ~1 min), ``--only NAME[,NAME]`` (latency, throughput, flatness, slow,
fast, baseline, original; rss comes with throughput and slow), ``--profile FILE`` (extra c16 run under
py-spy), ``--before REV`` (the consumer of git revision REV runs the throughput, slow and fast rows too,
each just before ours), ``--original DIR`` (the original system's own consumer code from a checkout of its
repository, on the same stub: see ``benchmarks.original``).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import shutil
import signal
import sys
import tempfile
from pathlib import Path
from types import FrameType

import nats

from benchmarks import scenarios
from benchmarks.procs import Children, extracted, load_check, start_nats, start_stub
from benchmarks.report import load_average, machine, render
from benchmarks.scenarios import QUICK, Measured, Sizes
from benchmarks.session import Bench

log = logging.getLogger("benchmarks.consumer")

SCENARIOS = ("latency", "throughput", "flatness", "slow", "fast", "baseline", "original")


async def run_all(
    workdir: Path, children: Children, only: set[str], sizes: Sizes, args: argparse.Namespace
) -> tuple[Measured, float]:
    nats_url = start_nats(children, workdir)
    _stub, port = start_stub(children, workdir, 0.0)
    capacity = load_check(port)
    log.info("nats %s, instant stub on port %d serving %.0f req/s", nats_url, port, capacity)
    nc = await nats.connect(nats_url)
    before = None
    if args.before:
        (workdir / "before").mkdir()
        before = extracted(args.before, workdir / "before")
    bench = Bench(workdir, children, nats_url, nc, port, profile=args.profile, before=before)
    bench.original = args.original
    out = Measured()
    try:
        if "original" in only and args.original is not None:
            log.info("the original's own consumer code, %d jobs", sizes.throughput_jobs)
            await scenarios.original(bench, sizes, out)
        if "baseline" in only:
            log.info("baseline (original consumer emulation), %d jobs", sizes.throughput_jobs)
            await scenarios.baseline(bench, sizes, out)
        if "latency" in only:
            log.info("pickup latency, %d jobs %.0f ms apart", sizes.latency_jobs, scenarios.PACING_S * 1000)
            await scenarios.pickup_latency(bench, sizes, out)
        if "throughput" in only:
            log.info("throughput, instant backend, %d jobs per concurrency", sizes.throughput_jobs)
            await scenarios.throughput(bench, sizes, out)
        if "flatness" in only:
            log.info("flatness: 100 and %d jobs queued", sizes.big_queue)
            await scenarios.flatness(bench, sizes, out, with_baseline="baseline" in only)
        if "slow" in only:
            log.info("slow backend, %d jobs, concurrency 16", sizes.slow_jobs)
            await scenarios.slow_backend(bench, sizes, out, with_baseline="baseline" in only)
        if "fast" in only:
            log.info("fast backend, %d jobs, concurrency %d", sizes.fast_jobs, scenarios.FAST_CONCURRENCY)
            await scenarios.fast_backend(bench, sizes, out)
        if args.profile is not None:
            await scenarios.profile(bench, sizes, out)
    finally:
        bench.stop.set()
        await nc.close()
    return out, capacity


def _interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.consumer", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes for a smoke run")
    parser.add_argument("--only", default="", help=f"comma-separated subset of {', '.join(SCENARIOS)}")
    parser.add_argument(
        "--dir", type=Path, default=None, help="where the temp dir goes (default: system tmp)"
    )
    parser.add_argument("--profile", type=Path, default=None, help="also profile a c16 run with py-spy")
    parser.add_argument("--before", default=None, help="a git revision whose consumer runs beside ours")
    parser.add_argument(
        "--original", type=Path, default=None, help="a checkout of the original system's repository"
    )
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    if (
        args.profile is not None
        and shutil.which("py-spy") is None
        and not (Path(sys.executable).parent / "py-spy").exists()
    ):
        parser.error("--profile needs py-spy: .venv/bin/pip install py-spy")
    only = {name.strip() for name in args.only.split(",") if name.strip()} or set(SCENARIOS)
    if unknown := only - set(SCENARIOS):
        parser.error(f"unknown scenario(s): {', '.join(sorted(unknown))} (known: {', '.join(SCENARIOS)})")
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("httpx", "httpcore", "nats"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started with SIGINT ignored
    signal.signal(signal.SIGTERM, _interrupt)
    sizes = QUICK if args.quick else Sizes()
    load_at_start = load_average()
    workdir = Path(tempfile.mkdtemp(prefix="syntx-bench-", dir=args.dir))
    children = Children()
    try:
        out, capacity = asyncio.run(run_all(workdir, children, only, sizes, args))
    except KeyboardInterrupt:
        log.warning("interrupted; stopping everything")
        return 130
    finally:
        children.close()
        shutil.rmtree(workdir, ignore_errors=True)
    sys.stdout.write(render(out, capacity, sizes, machine(workdir.parent, load_at_start)))
    return 1 if out.failures else 0


if __name__ == "__main__":
    raise SystemExit(main())

"""``python -m benchmarks.alternating --before REV``: this tree's consumer against another revision's, in
alternating rounds — the order swapped each round — for a comparison the machine's drift cannot tilt.

A single before/after pair (``benchmarks.consumer --before``) moves by ±10 % on a shared machine, and
always runs the other revision first. Here each round is one ticked batch of ``--jobs`` jobs for each
consumer, on the same LLM stub (``--delay`` seconds an answer; 0 is the instant one) and nats-server, at
each ``--concurrency``; it prints every round, then per consumer the range and mean of jobs/s and of CPU
milliseconds per job, and the mean ratio.

    python -m benchmarks.alternating --before db4d4f1 --delay 0.05 --concurrency 64 --rounds 6
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import nats

from benchmarks.procs import Children, extracted, start_nats, start_stub
from benchmarks.scenarios import Measured, one_round
from benchmarks.session import Bench
from shared.config.settings import PROJECT_ROOT

OURS, BEFORE = "ours", "before"


Figures = dict[tuple[int, str], list[tuple[float, float]]]  # (concurrency, consumer) -> (jobs/s, CPU ms/job)


async def alternate(
    revision: str, delay_s: float, concurrencies: list[int], rounds: int, jobs: int
) -> Figures:
    """Every round of every concurrency, both consumers, the order swapped each round."""
    figures: Figures = defaultdict(list)
    children = Children()
    with tempfile.TemporaryDirectory(prefix="syntx-alternating-") as temp:
        workdir = Path(temp)
        try:
            url = start_nats(children, workdir)
            _stub, port = start_stub(children, workdir, delay_s)
            (workdir / BEFORE).mkdir()
            trees = {BEFORE: extracted(revision, workdir / BEFORE), OURS: PROJECT_ROOT}
            nc = await nats.connect(url)
            bench, out = Bench(workdir, children, url, nc, port), Measured()
            for concurrency in concurrencies:
                for number in range(rounds):
                    for name in (BEFORE, OURS) if number % 2 == 0 else (OURS, BEFORE):
                        label = f"{name}-c{concurrency}-{number}"
                        rate = await one_round(bench, out, label, port, concurrency, jobs, trees[name])
                        cpu = out.cpu_ms_per_job[label]
                        figures[concurrency, name].append((rate, cpu))
                        shown = f"{rate:,.0f} jobs/s, {cpu:.2f} ms CPU/job"
                        sys.stdout.write(f"c={concurrency} round {number + 1} {name}: {shown}\n")
            await nc.close()
        finally:
            children.close()
    return figures


def summary(figures: Figures) -> str:
    """Per concurrency and consumer the range and mean of jobs/s and CPU a job; ours over before."""
    lines = []
    for concurrency in sorted({concurrency for concurrency, _ in figures}):
        means = {}
        for name in (BEFORE, OURS):
            rates = [rate for rate, _ in figures[concurrency, name]]
            cpus = [cpu for _, cpu in figures[concurrency, name]]
            means[name] = statistics.fmean(rates)
            lines.append(
                f"c={concurrency} {name:<6}: {min(rates):,.0f}-{max(rates):,.0f} jobs/s "
                f"(mean {means[name]:,.0f}), {min(cpus):.2f}-{max(cpus):.2f} ms CPU/job "
                f"(mean {statistics.fmean(cpus):.2f})"
            )
        lines.append(f"c={concurrency} ours/before: {means[OURS] / means[BEFORE]:.2f}x (mean jobs/s)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.alternating", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--before", required=True, help="the git revision whose consumer runs against ours")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds the LLM stub takes an answer (0)")
    parser.add_argument("--concurrency", default="16", help="comma-separated (16)")
    parser.add_argument("--rounds", type=int, default=4, help="rounds per concurrency (4)")
    parser.add_argument("--jobs", type=int, default=3000, help="jobs per round and consumer (3000)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    concurrencies = [int(value) for value in args.concurrency.split(",")]
    figures = asyncio.run(alternate(args.before, args.delay, concurrencies, args.rounds, args.jobs))
    sys.stdout.write(summary(figures) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

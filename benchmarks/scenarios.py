"""The measurements: pickup latency, throughput, flatness, slow backend, peak RSS, and the baseline."""

from __future__ import annotations

import asyncio
import logging
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.baseline import BaselineRun, run_baseline
from benchmarks.original import OriginalRun, run_original
from benchmarks.procs import start_stub
from benchmarks.session import Bench, clear_results, consumer, fresh_queue, py_spy, tick, wait_results
from benchmarks.workload import (
    add_job_timed,
    job_bytes,
    job_ids,
    jobs_per_second,
    read_results,
    release_jobs,
    wrapper_template,
    write_jobs_bulk,
)
from shared.config import PROJECT_ROOT
from shared.queue import INCOMING

log = logging.getLogger(__name__)

SLOW_DELAY_S = 0.2
FAST_DELAY_S = 0.05  # a fast backend (a local server, cached answers) at high concurrency
FAST_CONCURRENCY = 64
FLAT_CONCURRENCY = 4
PACING_S = 0.02
CONCURRENCIES = (1, 4, 16, 64)
# One process is one event loop, held to one core by its CPU per job: these rows split one concurrency
# over this many processes of the consumer on one queue (`instances`), beside one process run the same way.
INSTANCES = 2
SPLIT_CONCURRENCY = 16  # the instant-backend row that is split too
STAGED = "staged"  # below the queue root, outside the queue's folders: jobs wait there to be released
BEFORE_CONCURRENCIES = (1, 16, 64)  # the other revision's consumer (--before), beside ours


@dataclass(frozen=True)
class Sizes:
    latency_jobs: int = 300
    throughput_jobs: int = 3000
    small_rounds: int = 5
    big_queue: int = 100_000
    big_measured: int = 3000
    slow_jobs: int = 800
    fast_jobs: int = 3000
    baseline_big_jobs: int = 200
    baseline_slow_jobs: int = 20


QUICK = Sizes(
    latency_jobs=60,
    throughput_jobs=400,
    small_rounds=3,
    big_queue=10_000,
    big_measured=500,
    slow_jobs=160,
    fast_jobs=640,
    baseline_big_jobs=40,
    baseline_slow_jobs=5,
)


@dataclass
class Measured:
    latency_ms: list[float] = field(default_factory=list)
    throughput: dict[int, float] = field(default_factory=dict)
    small_queue: float | None = None
    big_queue: float | None = None
    slow: float | None = None
    fast: float | None = None
    before_throughput: dict[int, float] = field(default_factory=dict)
    before_slow: float | None = None  # the other revision's consumer (--before) on the slow backend
    before_fast: float | None = None  # … and on the fast one
    split: dict[str, float] = field(default_factory=dict)  # by split_label(): watch-mode rows by processes
    original: OriginalRun | None = None
    rss_mb: dict[str, float] = field(default_factory=dict)
    cpu_ms_per_job: dict[str, float] = field(default_factory=dict)
    baseline: BaselineRun | None = None
    baseline_big: BaselineRun | None = None
    baseline_slow: BaselineRun | None = None
    failures: list[str] = field(default_factory=list)


def _check(results_status: list[str], label: str, measured: Measured) -> None:
    bad = [status for status in results_status if status != "passed"]
    if bad:
        measured.failures.append(f"{label}: {len(bad)} results not 'passed' ({sorted(set(bad))})")


async def pickup_latency(bench: Bench, sizes: Sizes, out: Measured) -> None:
    """Watch mode, idle consumer: rename one job at a time into incoming/, PACING_S apart."""
    queue = fresh_queue(bench, "latency")
    data, warmup = job_bytes(), 5
    async with consumer(bench, queue, port=bench.instant_port, concurrency=4, watch=True) as running:
        for job_id in job_ids(warmup):  # the watcher starts just after the hello; warm every path up
            add_job_timed(queue, data, job_id)
            await asyncio.sleep(0.1)
        await wait_results(running, warmup, timeout_s=30)
        clear_results(queue)
        renamed: dict[str, float] = {}
        for job_id in job_ids(sizes.latency_jobs, start=warmup):
            renamed[job_id] = add_job_timed(queue, data, job_id)
            await asyncio.sleep(PACING_S)
        await wait_results(running, sizes.latency_jobs, timeout_s=60)
    results = read_results(queue.root)
    _check([item.status for item in results], "latency", out)
    out.latency_ms = sorted((item.started - renamed[item.job_id]) * 1000 for item in results)


async def _rounds(
    bench: Bench,
    label: str,
    *,
    port: int,
    concurrency: int,
    queued: int,
    measured: int,
    rounds: int,
    out: Measured,
    tree: Path = PROJECT_ROOT,
) -> list[float]:
    """Queue ``queued`` jobs, tick for ``measured``, jobs/s from first claim to last result; per round."""
    queue = fresh_queue(bench, label)
    rates: list[float] = []
    async with consumer(bench, queue, port=port, concurrency=concurrency, watch=False, tree=tree) as running:
        for number in range(rounds):
            write_jobs_bulk(queue.root, queued - len(list(queue.job_ids(INCOMING))), start=number * queued)
            cpu_before = running.cpu_seconds()
            await tick(bench, measured)
            await wait_results(running, measured, timeout_s=60 + measured / 20)
            cpu_used = running.cpu_seconds() - cpu_before
            results = read_results(queue.root)
            _check([item.status for item in results], label, out)
            rates.append(jobs_per_second(results))
            out.cpu_ms_per_job[label] = cpu_used * 1000 / max(1, len(results))
            clear_results(queue)
        if (rss := running.peak_rss_mb()) is not None:
            out.rss_mb[label] = rss
    log.info("%s: %s jobs/s", label, ", ".join(f"{rate:.0f}" for rate in rates))
    return rates


async def throughput(bench: Bench, sizes: Sizes, out: Measured) -> None:
    """Ours at every concurrency; with ``--before``, the other revision's consumer at each of
    BEFORE_CONCURRENCIES just before ours (so both see the same load)."""
    port, jobs = bench.instant_port, sizes.throughput_jobs
    for concurrency in CONCURRENCIES:
        if bench.before is not None and concurrency in BEFORE_CONCURRENCIES:
            label = f"before-c{concurrency}"
            rate = await one_round(bench, out, label, port, concurrency, jobs, bench.before)
            out.before_throughput[concurrency] = rate
        label = f"throughput-c{concurrency}"
        rate = await one_round(bench, out, label, port, concurrency, jobs, PROJECT_ROOT)
        out.throughput[concurrency] = rate
    label = f"throughput-c{SPLIT_CONCURRENCY}"
    await _split(
        bench, out, label, port=bench.instant_port, concurrency=SPLIT_CONCURRENCY, jobs=sizes.throughput_jobs
    )


def split_label(label: str, instances: int) -> str:
    """The row of ``label``'s concurrency split over ``instances`` watching processes."""
    return f"{label}-watch-x{instances}"


async def _split(bench: Bench, out: Measured, label: str, *, port: int, concurrency: int, jobs: int) -> None:
    """``label``'s concurrency as one watching process and split over :data:`INSTANCES` of them on one
    queue: ``jobs`` jobs moved into ``incoming/`` once every process is ready, jobs/s from the first claim
    to the last result, CPU per job summed over the processes."""
    for instances in (1, INSTANCES):
        each = concurrency // instances
        row = split_label(label, instances)
        queue = fresh_queue(bench, row)
        (queue.root / STAGED).mkdir()
        ids = write_jobs_bulk(queue.root, jobs, folder_name=STAGED)
        async with consumer(
            bench, queue, port=port, concurrency=each, watch=True, instances=instances
        ) as running:
            cpu_before = running.cpu_seconds()
            release_jobs(queue.root, STAGED, ids)
            await wait_results(running, jobs, timeout_s=60 + jobs / 20)
            cpu_used = running.cpu_seconds() - cpu_before
            if (rss := running.peak_rss_mb()) is not None:
                out.rss_mb[row] = rss
        results = read_results(queue.root)
        _check([item.status for item in results], row, out)
        out.split[row] = jobs_per_second(results)
        out.cpu_ms_per_job[row] = cpu_used * 1000 / max(1, len(results))
        log.info(
            "%s: %.0f jobs/s, %d process(es) at concurrency %d each", row, out.split[row], instances, each
        )


async def profile(bench: Bench, sizes: Sizes, out: Measured) -> None:
    """An extra concurrency-16 throughput run with py-spy attached (not in the table: sampling costs)."""
    assert bench.profile is not None
    queue = fresh_queue(bench, "profile")
    n = sizes.throughput_jobs
    write_jobs_bulk(queue.root, n)
    async with consumer(bench, queue, port=bench.instant_port, concurrency=16, watch=False) as running:
        profile_file = bench.profile
        async with py_spy(running.process.pid, profile_file):
            await tick(bench, n)
            await wait_results(running, n, timeout_s=60 + n / 20)
    log.info("profiled run: %.0f jobs/s", jobs_per_second(read_results(queue.root)))


async def flatness(bench: Bench, sizes: Sizes, out: Measured, *, with_baseline: bool) -> None:
    small = await _rounds(
        bench,
        "queued-100",
        port=bench.instant_port,
        concurrency=FLAT_CONCURRENCY,
        queued=100,
        measured=100,
        rounds=sizes.small_rounds,
        out=out,
    )
    out.small_queue = statistics.median(small)
    big = sizes.big_queue
    log.info("writing %d job files for the big-queue run", big)
    big_rates = await _rounds(
        bench,
        "queued-big",
        port=bench.instant_port,
        concurrency=FLAT_CONCURRENCY,
        queued=big,
        measured=sizes.big_measured,
        rounds=1,
        out=out,
    )
    out.big_queue = big_rates[0]
    if with_baseline:  # the original on the same folder, topped up to the same depth
        root = bench.workdir / "queued-big" / "queue"
        write_jobs_bulk(root, sizes.big_measured, start=big)
        out.baseline_big = await _baseline(bench, root, bench.instant_port, sizes.baseline_big_jobs)


async def slow_backend(bench: Bench, sizes: Sizes, out: Measured, *, with_baseline: bool) -> None:
    if bench.slow_port is None:
        _process, bench.slow_port = start_stub(bench.children, bench.workdir, SLOW_DELAY_S)
    out.slow, out.before_slow = await _ours_and_before(
        bench, out, "slow-c16", port=bench.slow_port, concurrency=16, jobs=sizes.slow_jobs
    )
    if with_baseline:
        queue = fresh_queue(bench, "baseline-slow")
        write_jobs_bulk(queue.root, sizes.baseline_slow_jobs)
        out.baseline_slow = await _baseline(bench, queue.root, bench.slow_port, sizes.baseline_slow_jobs)


async def fast_backend(bench: Bench, sizes: Sizes, out: Measured) -> None:
    """A 50 ms backend at concurrency 64: how close to the ideal 64 / 0.05 s the consumer comes."""
    _process, port = start_stub(bench.children, bench.workdir, FAST_DELAY_S)
    label = f"fast-c{FAST_CONCURRENCY}"
    out.fast, out.before_fast = await _ours_and_before(
        bench, out, label, port=port, concurrency=FAST_CONCURRENCY, jobs=sizes.fast_jobs
    )
    await _split(bench, out, label, port=port, concurrency=FAST_CONCURRENCY, jobs=sizes.fast_jobs)


async def _ours_and_before(
    bench: Bench, out: Measured, label: str, *, port: int, concurrency: int, jobs: int
) -> tuple[float, float | None]:
    """``label``'s row, one ticked round of ``jobs``: ours, and with ``--before`` the other revision's
    consumer just before it (so both see the same load; its row labelled ``before-<label>``)."""
    before = None
    if bench.before is not None:
        before = await one_round(bench, out, f"before-{label}", port, concurrency, jobs, bench.before)
    return await one_round(bench, out, label, port, concurrency, jobs, PROJECT_ROOT), before


async def one_round(
    bench: Bench, out: Measured, label: str, port: int, concurrency: int, jobs: int, tree: Path
) -> float:
    rates = await _rounds(
        bench,
        label,
        port=port,
        concurrency=concurrency,
        queued=jobs,
        measured=jobs,
        rounds=1,
        out=out,
        tree=tree,
    )
    return rates[0]


async def original(bench: Bench, sizes: Sizes, out: Measured) -> None:
    """The original system's own ``QueueConsumer.process_batch`` (``benchmarks.original``) on the instant
    stub, in its own process, as many jobs as the throughput rows."""
    assert bench.original is not None
    out.original = await run_original(bench, sizes.throughput_jobs)
    log.info("original's own code: %d jobs at %.0f jobs/s", out.original.jobs, out.original.jobs_per_s)


async def baseline(bench: Bench, sizes: Sizes, out: Measured) -> None:
    queue = fresh_queue(bench, "baseline")
    write_jobs_bulk(queue.root, sizes.throughput_jobs)
    out.baseline = await _baseline(bench, queue.root, bench.instant_port, sizes.throughput_jobs)


async def _baseline(bench: Bench, root: Path, port: int, jobs: int) -> BaselineRun:
    url = bench.url(port) + "/api/chat"
    try:
        run = await asyncio.to_thread(run_baseline, root, url, wrapper_template(), jobs, 120.0, bench.stop)
    except asyncio.CancelledError:
        bench.stop.set()
        raise
    log.info("baseline: %d jobs in %.2f s = %.0f jobs/s", run.jobs, run.seconds, run.jobs_per_s)
    return run

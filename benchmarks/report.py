"""The table the benchmark prints, and the machine it ran on."""

from __future__ import annotations

import math
import os
import platform
from pathlib import Path

from benchmarks.baseline import BaselineRun
from benchmarks.scenarios import (
    FAST_CONCURRENCY,
    FAST_DELAY_S,
    FLAT_CONCURRENCY,
    INSTANCES,
    PACING_S,
    SLOW_DELAY_S,
    SPLIT_CONCURRENCY,
    Measured,
    Sizes,
    split_label,
)

Row = tuple[str, str, str, str]
IDEAL_SLOW = 16 / SLOW_DELAY_S


def machine(path: Path, load_at_start: str) -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0))
    return (
        f"machine: {cpu}, {cores} cores usable ({os.cpu_count()} online), "
        f"Linux {platform.release()}, Python {platform.python_version()}, temp dir on {_fs_type(path)}\n"
        f"load average at start {load_at_start}, at end {load_average()} "
        "(other work on these cores skews every row)"
    )


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text(encoding="ascii").split()[:3])
    except OSError:
        return "?"


def _fs_type(path: Path) -> str:
    best, kind = "", "?"
    try:
        for line in Path("/proc/mounts").read_text(encoding="utf-8").splitlines():
            parts = line.split()
            target = parts[1]
            if str(path.resolve()).startswith(target) and len(target) >= len(best):
                best, kind = target, parts[2]
    except (OSError, IndexError):
        pass
    return kind


def percentile(sorted_values: list[float], share: float) -> float:
    """Nearest rank."""
    rank = max(1, math.ceil(share * len(sorted_values)))
    return sorted_values[rank - 1]


def _ratio(ours: float | None, base: BaselineRun | None) -> str:
    if ours is None or base is None or base.jobs_per_s <= 0:
        return "-"
    return f"{ours / base.jobs_per_s:.2f}x"


def _cpu(out: Measured, label: str) -> str:
    cpu = out.cpu_ms_per_job.get(label)
    return "" if cpu is None else f" ({cpu:.2f} ms CPU/job)"


def _of_ideal(rate: float, ideal: float) -> str:
    """A rate with its share of the ideal one: ``723.4 jobs/s = 56.5% of 1,280``."""
    return f"{rate:,.1f} jobs/s = {rate / ideal:.1%} of {ideal:,.0f}"


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f} jobs/s"


def rows(out: Measured, capacity: float, sizes: Sizes) -> list[Row]:
    table: list[Row] = [("llm stub capacity (loadgen, 8 conns)", f"{capacity:,.0f} req/s", "> 5,000", "-")]
    if out.latency_ms:
        ms = out.latency_ms
        figure = (
            f"p50 {percentile(ms, 0.5):.2f} / p90 {percentile(ms, 0.9):.2f} / "
            f"p99 {percentile(ms, 0.99):.2f} / max {ms[-1]:.2f} ms"
        )
        label = f"pickup latency, watch (n={len(ms)}, {PACING_S * 1000:.0f} ms apart)"
        table.append((label, figure, "p99 <= 10 ms", "- (cron)"))
    table += _throughput_rows(out, sizes)
    if out.small_queue is not None:
        label = f"flat: 100 queued, c={FLAT_CONCURRENCY} (median of {sizes.small_rounds})"
        figure = _rate(out.small_queue) + _cpu(out, "queued-100")
        table.append((label, figure, "flat", _ratio(out.small_queue, out.baseline)))
    if out.big_queue is not None:
        share = f" ({out.big_queue / out.small_queue:.0%} of 100)" if out.small_queue else ""
        label = f"flat: {sizes.big_queue:,} queued, c={FLAT_CONCURRENCY} (first {sizes.big_measured})"
        figure = _rate(out.big_queue) + share + _cpu(out, "queued-big")
        table.append((label, figure, "flat", _ratio(out.big_queue, out.baseline_big)))
    if out.slow is not None:
        figure = _of_ideal(out.slow, IDEAL_SLOW) + _cpu(out, "slow-c16")
        label = f"slow backend {SLOW_DELAY_S * 1000:.0f} ms, c=16 ({sizes.slow_jobs} jobs)"
        table.append((label, figure, ">= 90 %", _ratio(out.slow, out.baseline_slow)))
        table += _before_row(out.slow, out.before_slow, IDEAL_SLOW, out, "before-slow-c16")
    if out.fast is not None:
        ideal = FAST_CONCURRENCY / FAST_DELAY_S
        instant = out.throughput.get(FAST_CONCURRENCY)
        of_instant = f"; {out.fast / instant:.1%} of the instant c={FAST_CONCURRENCY} rate" if instant else ""
        figure = _of_ideal(out.fast, ideal) + of_instant
        figure += _cpu(out, f"fast-c{FAST_CONCURRENCY}")
        label = f"fast backend {FAST_DELAY_S * 1000:.0f} ms, c={FAST_CONCURRENCY} ({sizes.fast_jobs} jobs)"
        table.append((label, figure, ">= 90 %", "-"))
        table += _before_row(out.fast, out.before_fast, ideal, out, f"before-fast-c{FAST_CONCURRENCY}")
    for processes, rate, row in _split(out, f"fast-c{FAST_CONCURRENCY}"):
        ideal = FAST_CONCURRENCY / FAST_DELAY_S
        figure = _of_ideal(rate, ideal) + _cpu(out, row)
        table.append((_split_name(processes, FAST_CONCURRENCY), figure, ">= 90 %", "-"))
    if out.rss_mb:
        which = (
            "throughput-c16"
            if "throughput-c16" in out.rss_mb
            else max(out.rss_mb, key=out.rss_mb.__getitem__)
        )
        label = f"peak RSS (VmHWM), c=16 ({which})"
        table.append((label, f"{out.rss_mb[which]:.1f} MB", "<= 80 MB", "-"))
    for label, run in (
        (f"baseline: original emulation ({sizes.throughput_jobs} jobs)", out.baseline),
        (f"baseline: {sizes.big_queue:,} queued", out.baseline_big),
        (f"baseline: {SLOW_DELAY_S * 1000:.0f} ms backend", out.baseline_slow),
    ):
        if run is not None:
            table.append(
                (f"{label}, n={run.jobs}", f"{run.jobs_per_s:,.1f} jobs/s", "(orig. ~480 / 4.9)", "1.00x")
            )
    return table


def _throughput_rows(out: Measured, sizes: Sizes) -> list[Row]:
    """Ours per concurrency (against the original's own code when it ran, else its emulation), the
    other revision's beside it (``--before``), and whether more concurrency ever gives less."""
    table: list[Row] = []
    original = out.original
    for concurrency, rate in sorted(out.throughput.items()):
        label = f"throughput, instant, c={concurrency} ({sizes.throughput_jobs} jobs)"
        figure = _rate(rate) + _cpu(out, f"throughput-c{concurrency}")
        target = C16 if concurrency == SPLIT_CONCURRENCY else ">= 750 jobs/s"
        table.append((label, figure, target, _against_original(rate, out)))
        before = out.before_throughput.get(concurrency)
        if before is not None:
            figure = _rate(before) + _cpu(out, f"before-c{concurrency}")
            table.append((f"  before (--before), c={concurrency}", figure, "", f"ours {rate / before:.2f}x"))
    for processes, rate, row in _split(out, f"throughput-c{SPLIT_CONCURRENCY}"):
        against = _against_original(rate, out)
        table.append((_split_name(processes, SPLIT_CONCURRENCY), _rate(rate) + _cpu(out, row), C16, against))
    if 1 in out.throughput and FAST_CONCURRENCY in out.throughput:
        ratio = out.throughput[FAST_CONCURRENCY] / out.throughput[1]
        table.append((f"c={FAST_CONCURRENCY} over c=1, instant", f"{ratio:.2f}x", ">= 1.00x", "-"))
    if original is not None:
        figure = f"{original.jobs_per_s:,.1f} jobs/s ({original.cpu_ms_per_job:.2f} ms CPU/job)"
        label = f"original's own QueueConsumer.process_batch, n={original.jobs}"
        table.append((label, figure, "", "1.00x"))
    return table


def _before_row(ours: float, before: float | None, ideal: float, out: Measured, label: str) -> list[Row]:
    """The other revision's figure on the same backend (``--before``), when it ran."""
    if before is None:
        return []
    figure = _of_ideal(before, ideal) + _cpu(out, label)
    return [("  before (--before), same backend", figure, "", f"ours {ours / before:.2f}x")]


C16 = ">= 750 jobs/s, >= 2.50x"  # the instant backend at concurrency 16: against the original's code


def _against_original(rate: float, out: Measured) -> str:
    """Against the original's own code when it ran (``--original``), else against its emulation."""
    original = out.original
    if original is not None and original.jobs_per_s > 0:
        return f"{rate / original.jobs_per_s:.2f}x original's code"
    return _ratio(rate, out.baseline)


def _split(out: Measured, label: str) -> list[tuple[int, float, str]]:
    """(processes, jobs/s, row label) of ``label``'s watch-mode rows that ran: one process, then split."""
    rows = [(count, split_label(label, count)) for count in (1, INSTANCES)]
    return [(count, out.split[row], row) for count, row in rows if row in out.split]


def _split_name(processes: int, concurrency: int) -> str:
    if processes == 1:
        return f"  same, watch, 1 process at c={concurrency}"
    each = "+".join([str(concurrency // processes)] * processes)
    return f"  same, watch, {processes} instances on one queue ({each})"


def render(out: Measured, capacity: float, sizes: Sizes, machine_line: str) -> str:
    header: Row = ("scenario", "figure", "target", "ours/baseline")
    table = [header, *rows(out, capacity, sizes)]
    widths = [max(len(row[column]) for row in table) for column in range(4)]
    lines = [" | ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in table]
    lines.insert(1, "-+-".join("-" * width for width in widths))
    notes = [f"  ! {failure}" for failure in out.failures]
    return "\n".join([machine_line, "", *lines, *notes, ""]) + "\n"

"""``python -m benchmarks.hostile``: a consumer's peak memory under hostile input, printed as one table.

Starts a nats-server, the instant loopback LLM (``benchmarks.llm_stub``) and a hostile one
(``benchmarks.hostile_backend``) answering every request with a 200 MB body, each in its own process;
then, per row, a fresh consumer process (``python -m services.consumer``, concurrency 4, one attempt per
job) that works through its jobs while its peak resident set (``VmHWM`` from ``/proc``) is read:

- ``baseline``: well-formed jobs, the instant backend (what a consumer needs anyway);
- ``200 MB replies``: the same jobs, every reply 200 MB (streamed, chunked);
- ``alias bombs``: jobs whose headers are YAML alias bombs (281 bytes that expand to 10^6 nodes and more).

Ratios are against the baseline of the same run. Everything it starts it stops, temp dirs included.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import nats

from benchmarks.procs import Children, start_hostile_stub, start_nats, start_stub
from benchmarks.session import Bench, consumer, fresh_queue, tick, wait_results
from shared.queue import ERROR, PROCESSED, FileQueue, JobMeta, render_job

log = logging.getLogger("benchmarks.hostile")

CONCURRENCY = 4
TARGET_MB = 150.0
RESULT_TIMEOUT_S = 300.0
ALIAS_BOMBS = (
    b"---\n"
    b'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    b"b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
    b"d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\n"
    b"f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\ng: [*f,*f,*f,*f,*f,*f,*f,*f,*f]\n"
    b"---\nErkl\xc3\xa4re Katzen.\n"
)
PROMPT = "Erkläre, wie Katzen ihre Umgebung wahrnehmen und darauf reagieren."


@dataclass(frozen=True)
class Row:
    name: str
    jobs: int
    processed: int
    errors: int
    seconds: float
    peak_mb: float


async def measure(bench: Bench, name: str, port: int, jobs: list[bytes]) -> Row:
    queue = fresh_queue(bench, name.replace(" ", "-"))
    for number, data in enumerate(jobs):
        queue.write_atomic(queue.job_path("incoming", f"job-{number:05d}"), data)
    async with consumer(
        bench, queue, port=port, concurrency=CONCURRENCY, watch=False, queue_settings={"max_attempts": 1}
    ) as running:
        loop = asyncio.get_running_loop()
        started = loop.time()
        await tick(bench, len(jobs))
        await wait_results(running, len(jobs), RESULT_TIMEOUT_S)
        seconds = loop.time() - started
        peak = running.peak_rss_mb() or 0.0
    return Row(name, len(jobs), _count(queue, PROCESSED), _count(queue, ERROR), seconds, peak)


def _count(queue: FileQueue, folder: str) -> int:
    return sum(1 for _ in queue.result_files(folder))


def good_jobs(count: int) -> list[bytes]:
    return [render_job(PROMPT, JobMeta(topic="Katzen", category="harmlos")).encode() for _ in range(count)]


async def run(workdir: Path, children: Children, jobs: int, size_mb: float) -> list[Row]:
    nats_url = start_nats(children, workdir)
    _stub, instant = start_stub(children, workdir, 0.0)
    hostile = start_hostile_stub(children, workdir, size_mb)
    nc = await nats.connect(nats_url)
    bench = Bench(workdir, children, nats_url, nc, instant)
    try:
        rows = [await measure(bench, "baseline", instant, good_jobs(jobs))]
        rows.append(await measure(bench, f"{size_mb:g} MB replies", hostile, good_jobs(jobs)))
        rows.append(await measure(bench, "alias bombs", instant, [ALIAS_BOMBS] * jobs))
    finally:
        await nc.close()
    return rows


def render(rows: list[Row]) -> str:
    base = rows[0].peak_mb or 1.0
    lines = [
        f"{'scenario':<18} {'jobs':>5} {'passed/rej.':>11} {'error/':>7} {'seconds':>8} "
        f"{'peak RSS MB':>12} {'vs baseline':>12}",
    ]
    for row in rows:
        lines.append(
            f"{row.name:<18} {row.jobs:>5} {row.processed:>11} {row.errors:>7} {row.seconds:>8.2f} "
            f"{row.peak_mb:>12.1f} {row.peak_mb / base:>11.2f}x"
        )
    worst = max(row.peak_mb for row in rows)
    verdict = "within" if worst <= TARGET_MB else "OVER"
    lines.append(f"highest peak {worst:.1f} MB: {verdict} the {TARGET_MB:g} MB target")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.hostile", description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=20, help="jobs per scenario (default 20)")
    parser.add_argument("--size-mb", type=float, default=200.0, help="size of each hostile reply")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    workdir = Path(tempfile.mkdtemp(prefix="syntx-hostile-"))
    children = Children()
    try:
        rows = asyncio.run(run(workdir, children, args.jobs, args.size_mb))
    finally:
        children.close()
        shutil.rmtree(workdir, ignore_errors=True)
    sys.stdout.write(render(rows) + "\n")
    return 0 if max(row.peak_mb for row in rows) <= TARGET_MB else 1


if __name__ == "__main__":
    sys.exit(main())

"""The producer's learner at scale: a tick with nothing new, a cold rebuild and memory, with N results.

    python -m benchmarks.learner_scale                         # 1,000,000 results in a temp dir
    python -m benchmarks.learner_scale --results 100000 --dir /tmp/syntx-scale   # keep the files for reruns

Writes N result files (about 1.5 KB each, like the consumer's) into a queue: the newest few hundred in
``processed/``, rejected ones in ``error/``, the rest in dated ``archive/YYYY-MM-DD/`` folders. Then, in a
fresh process (so its peak RSS is the producer's): a cold rebuild (no checkpoint), the checkpoint, a
restart from the checkpoint, and ticks of the real producer over a real nats-server with nothing new to
learn (the queue is HIGH, so nothing is produced either). Baseline in the same run: the previous
producer's tick, which read every result file; measured on a sample and scaled linearly.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import multiprocessing
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks.procs import Children, start_nats
from services.producer.app import Producer
from services.producer.generator import make_generator
from shared.config import DEFAULT_CONFIG, Settings, load_settings
from shared.learning import Learner
from shared.learning.rebuild import cold_rebuild
from shared.messaging import Tick, connect
from shared.queue import ARCHIVE, ERROR, INCOMING, PROCESSED, FileQueue, JobMeta

RESULTS = 1_000_000
NEWEST_IN_PROCESSED = 300
PER_DAY = 10_000
WAITING_JOBS = 30  # HIGH: a tick produces nothing
TICKS = 20
BASELINE_SAMPLE = 50_000
log = logging.getLogger("benchmarks.learner_scale")
RESPONSE = (
    "Im Kern geht es um Struktur und um die Frage, wie Entwicklung damit verbunden ist. " * 12
).strip()


def record(index: int, job_id: str, rng: random.Random, arms: list[tuple[str, str]]) -> dict[str, Any]:
    category, style = arms[index % len(arms)]
    score = max(0, min(100, round(rng.gauss(85, 10))))
    return {
        "version": 1,
        "job_id": job_id,
        "status": "passed" if score >= 90 else "rejected",
        "reason": f"score {score} vs threshold 90",
        "wrapper": "sigma",
        "format": "sigma",
        "backend": "offline",
        "model": "offline-responder",
        "prompt": f"Erkläre technisch und präzise: Was steckt hinter dem Thema „Thema {index % 56}“?",
        "meta": {
            "topic": f"Thema {index % 56}",
            "category": category,
            "style": style,
            "language": "de",
            "generation": index // 20 + 1,
            "sequence": index,
        },
        "response": RESPONSE,
        "fields": {"drift": RESPONSE[:200], "tiefe": RESPONSE[200:400]},
        "score": {"total": score, "scorer": "syntx-2", "fields": []},
        "threshold": 90,
        "scorer": "syntx-2",
        "attempts": [],
    }


def _write_range(args: tuple[str, int, int, int, list[tuple[str, str]]]) -> int:
    root, start, stop, total, arms = args
    queue = FileQueue(Path(root))
    rng = random.Random(start)
    epoch = datetime(2026, 1, 1, tzinfo=UTC)
    made_days: set[str] = set()
    for index in range(start, stop):
        moment = epoch + timedelta(seconds=index * 30)
        job_id = f"{moment:%Y%m%dT%H%M%S%f}Z-{index % 0xFFFFFF:06x}"
        data = record(index, job_id, rng, arms)
        if index >= total - NEWEST_IN_PROCESSED:
            folder = queue.folder(PROCESSED if data["status"] == "passed" else ERROR)
        elif data["status"] == "rejected" and index % 10 == 0:
            folder = queue.folder(ERROR)
        else:
            day = (epoch + timedelta(days=index // PER_DAY)).strftime("%Y-%m-%d")
            folder = queue.folder(ARCHIVE) / day
            if day not in made_days:
                folder.mkdir(parents=True, exist_ok=True)
                made_days.add(day)
        with open(folder / f"{job_id}.json", "w", encoding="utf-8") as handle:
            handle.write(json.dumps(data, ensure_ascii=False))
    return stop - start


def generate(root: Path, total: int, arms: list[tuple[str, str]]) -> float:
    """Write ``total`` results with two processes; returns the seconds it took."""
    FileQueue(root).ensure()
    started = time.perf_counter()
    chunk = 20_000
    jobs = [(str(root), start, min(start + chunk, total), total, arms) for start in range(0, total, chunk)]
    with multiprocessing.Pool(2) as pool:
        written = 0
        for count in pool.imap_unordered(_write_range, jobs):
            written += count
            if written % 200_000 < chunk:
                log.info("wrote %d of %d results", written, total)
    return time.perf_counter() - started


def settings_for(data_dir: Path, url: str = "nats://127.0.0.1:1") -> Settings:
    return load_settings([DEFAULT_CONFIG], data_dir=data_dir, nats={"url": url}, producer={"seed": 1})


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def baseline_tick_s(settings: Settings, sample: int) -> tuple[float, int]:
    """The previous producer's tick read every result file: seconds per file on a sample."""
    queue = FileQueue(settings.queue_dir)
    paths: list[Path] = []
    for day in sorted(queue.folder(ARCHIVE).iterdir()):
        paths.extend(sorted(day.iterdir())[: sample - len(paths)])
        if len(paths) >= sample:
            break
    started = time.perf_counter()
    for path in paths:
        json.loads(path.read_text(encoding="utf-8"))
    return (time.perf_counter() - started) / max(len(paths), 1), len(paths)


async def measure(data_dir: Path, total: int) -> dict[str, float]:
    """In the measuring child: cold rebuild, checkpoint restart, ticks with nothing new."""
    figures: dict[str, float] = {"rss_start_mb": peak_rss_mb()}
    children = Children()
    try:
        url = start_nats(children, data_dir.parent)
        settings = settings_for(data_dir, url)
        queue = FileQueue(settings.queue_dir)
        state = settings.data_dir / settings.producer.learning.state_file
        state.unlink(missing_ok=True)
        arms = [(c, s) for c in settings.topics for s in settings.styles]
        learner = Learner(settings.producer.learning, arms, random.Random(1))
        started = time.perf_counter()
        report = await asyncio.to_thread(
            cold_rebuild,
            learner,
            queue,
            int(learner.memory.horizon_jobs * 2),
            settings.queue.max_result_bytes,
        )
        figures["cold_rebuild_s"] = time.perf_counter() - started
        figures["cold_rebuild_read"] = report.read
        figures["rss_after_rebuild_mb"] = peak_rss_mb()
        for index in range(WAITING_JOBS):
            queue.add_job(
                f"waiting {index}", JobMeta(category=arms[0][0], style=arms[0][1], sequence=total + index)
            )
        generator = make_generator(settings.producer.generator, settings.producer.templates, random.Random(1))
        async with connect(settings.nats, name="producer-bench", stop=asyncio.Event()) as bus:
            producer = Producer(settings, bus, generator, random.Random(1))
            started = time.perf_counter()
            await producer.start()  # no checkpoint yet: the producer's own cold rebuild, then the checkpoint
            figures["producer_start_cold_s"] = time.perf_counter() - started
            producer = Producer(settings, bus, generator, random.Random(1))
            started = time.perf_counter()
            await producer.start()  # from the checkpoint, catching up processed/ and error/
            figures["producer_start_checkpoint_s"] = time.perf_counter() - started
            await producer.on_tick(Tick())  # the first tick computes the estimates once
            ticks = []
            for _ in range(TICKS):
                started = time.perf_counter()
                await producer.on_tick(Tick())
                ticks.append(time.perf_counter() - started)
            figures["tick_nothing_new_median_ms"] = statistics.median(ticks) * 1000
            figures["tick_nothing_new_max_ms"] = max(ticks) * 1000
        figures["rss_peak_mb"] = peak_rss_mb()
        per_file, sampled = baseline_tick_s(settings, BASELINE_SAMPLE)
        figures["baseline_per_file_us"] = per_file * 1e6
        figures["baseline_sample"] = sampled
        figures["baseline_tick_s"] = per_file * total
    finally:
        children.close()
    return figures


def render(total: int, figures: dict[str, float], generated_s: float | None) -> str:
    lines = [f"learner at scale: {total:,} results on disk (ext4, 2-core machine)"]
    if generated_s is not None:
        lines.append(f"  writing the results took {generated_s:.0f} s")
    baseline = figures["baseline_tick_s"]
    tick = figures["tick_nothing_new_median_ms"] / 1000
    lines += [
        f"  tick with nothing new          median {figures['tick_nothing_new_median_ms']:.1f} ms, "
        f"max {figures['tick_nothing_new_max_ms']:.1f} ms  (target <= 20 ms)",
        f"  previous producer's tick       {baseline:.1f} s  (read every result: "
        f"{figures['baseline_per_file_us']:.0f} us per file on {figures['baseline_sample']:.0f}, scaled) "
        f"-> {baseline / tick:,.0f}x",
        f"  cold rebuild (learner)         {figures['cold_rebuild_s']:.1f} s, read "
        f"{figures['cold_rebuild_read']:.0f} newest results  (target <= 30 s)",
        f"  producer start, no checkpoint  {figures['producer_start_cold_s']:.1f} s",
        f"  producer start, checkpoint     {figures['producer_start_checkpoint_s']:.2f} s",
        f"  peak RSS                       {figures['rss_peak_mb']:.0f} MB (after the rebuild "
        f"{figures['rss_after_rebuild_mb']:.0f} MB, at start {figures['rss_start_mb']:.0f} MB; "
        "target <= 150 MB)",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.learner_scale", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--results", type=int, default=RESULTS)
    parser.add_argument("--dir", type=Path, default=None, help="keep (and reuse) the results here")
    parser.add_argument("--measure", type=Path, default=None, help=argparse.SUPPRESS)  # the measuring child
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    log.setLevel(logging.INFO)
    if args.measure is not None:
        sys.stdout.write(json.dumps(asyncio.run(measure(args.measure, args.results))) + "\n")
        return 0
    with tempfile.TemporaryDirectory(prefix="syntx-scale-") as temporary:
        root = args.dir or Path(temporary)
        data_dir = root / "data"
        marker = root / f"generated-{args.results}"
        generated_s = None
        if not marker.exists():
            arms = [(c, s) for c in settings_for(data_dir).topics for s in settings_for(data_dir).styles]
            generated_s = generate(data_dir / "queue", args.results, arms)
            marker.touch()
        for name in os.listdir(data_dir / "queue" / INCOMING):
            (data_dir / "queue" / INCOMING / name).unlink()
        child = subprocess.run(
            [
                sys.executable,
                "-m",
                "benchmarks.learner_scale",
                "--results",
                str(args.results),
                "--measure",
                str(data_dir),
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        figures = json.loads(child.stdout.strip().splitlines()[-1])
        sys.stdout.write(render(args.results, figures, generated_s) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

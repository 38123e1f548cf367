"""Jobs per minute end to end with a real local LLM: ``python -m benchmarks.local_llm``.

Runs ``syntx up --demo --llm local`` (producer, both consumers, scheduler, monitor, cleanup, embedded NATS
and the llama.cpp server with the configured GGUF model) in a scratch data directory for ``--seconds``,
then Ctrl-C, and counts the results filed in that window; then the same run with the offline responder
(``syntx up --demo``) as the baseline. Prints jobs per minute, LLM seconds per job, the score
distribution and a typical answer.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
import statistics
import sys
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from benchmarks.procs import drain, wait_for_marker
from shared.queue import RESULT_FOLDERS, FileQueue, JobResult

log = logging.getLogger("benchmarks.local_llm")

READY_MARKERS = {True: b"local LLM ready", False: b"started "}
START_TIMEOUT_S = 180.0
STOP_TIMEOUT_S = 120.0
EXCERPT_CHARS = 400
DEDUCTIONS_SHOWN = 3


@dataclass(frozen=True)
class RunFigures:
    label: str
    seconds: float
    results: list[JobResult]

    @property
    def jobs_per_minute(self) -> float:
        return len(self.results) * 60.0 / self.seconds

    def scores(self) -> list[int]:
        return [result.score.total for result in self.results if result.score is not None]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _environment(data_dir: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("SYNTX_")}
    env.update(
        SYNTX_DATA_DIR=str(data_dir),
        SYNTX_NATS__EMBEDDED_PORT=str(_free_port()),
        SYNTX_MONITOR__PORT=str(_free_port()),
        SYNTX_LLM__LOCAL__PORT=str(_free_port()),
    )
    return env


async def measure(local: bool, seconds: float, scratch: Path) -> RunFigures:
    """One ``syntx up --demo`` run of ``seconds`` after startup; the results finished in that window."""
    data_dir = scratch / ("local" if local else "offline")
    args = [
        str(Path(sys.executable).parent / "syntx"),
        "up",
        "--demo",
        *(["--llm", "local"] if local else []),
    ]
    process = await asyncio.create_subprocess_exec(
        *args, env=_environment(data_dir), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    assert process.stdout is not None
    try:
        await asyncio.wait_for(wait_for_marker(process.stdout, READY_MARKERS[local]), START_TIMEOUT_S)
        started = datetime.now().astimezone()
        draining = asyncio.create_task(drain(process.stdout))
        await asyncio.sleep(seconds)  # the measured window itself
        ended = datetime.now().astimezone()
        process.send_signal(signal.SIGINT)
        await asyncio.wait_for(process.wait(), STOP_TIMEOUT_S)
        await draining
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    results = [result for result in _results(data_dir) if started <= result.finished_at <= ended]
    return RunFigures(
        "local LLM" if local else "offline responder", (ended - started).total_seconds(), results
    )


def _results(data_dir: Path) -> list[JobResult]:
    """Every result the run filed (``processed/``, ``error/`` and the archive's day folders)."""
    queue = FileQueue(data_dir / "queue")
    return [
        JobResult.model_validate_json(path.read_bytes())
        for f in RESULT_FOLDERS
        for path in queue.result_files(f)
    ]


def report(run: RunFigures) -> list[str]:
    scores = run.scores()
    passed = sum(1 for result in run.results if result.status == "passed")
    llm_seconds = [result.llm_seconds for result in run.results if result.llm_seconds > 0]
    lines = [
        f"{run.label}: {len(run.results)} jobs in {run.seconds:.0f} s = {run.jobs_per_minute:.1f} jobs/min, "
        f"{passed} passed",
    ]
    if llm_seconds:
        lines.append(
            f"  LLM seconds per job: median {statistics.median(llm_seconds):.1f}, max {max(llm_seconds):.1f}"
        )
    if scores:
        lines.append(
            f"  scores: median {statistics.median(scores):.0f}, mean {statistics.fmean(scores):.1f}, "
            f"min {min(scores)}, max {max(scores)}"
        )
    return lines


def typical_answer(run: RunFigures) -> list[str]:
    scored = sorted(
        (r for r in run.results if r.score is not None), key=lambda r: r.score.total if r.score else 0
    )
    if not scored:
        return []
    median = scored[len(scored) // 2]
    text = " ".join((median.response or "").split())[:EXCERPT_CHARS]
    score = median.score.total if median.score else 0
    deductions = "; ".join(median.score.deductions[:DEDUCTIONS_SHOWN]) if median.score else ""
    return [
        f"a typical (median) answer, wrapper {median.wrapper}, score {score}:",
        f"  {text}…",
        f"  deductions: {deductions}",
    ]


async def run(seconds: float, baseline: bool) -> None:
    with tempfile.TemporaryDirectory(prefix="syntx-local-llm-") as scratch:
        local = await measure(True, seconds, Path(scratch))
        lines = report(local) + typical_answer(local)
        if baseline:
            offline = await measure(False, seconds, Path(scratch))
            lines += report(offline)
            if offline.jobs_per_minute:
                ratio = local.jobs_per_minute / offline.jobs_per_minute
                lines.append(f"local LLM / offline responder throughput: {ratio:.2f}")
    for line in lines:
        log.info("%s", line)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.local_llm", description=__doc__)
    parser.add_argument("--seconds", type=float, default=180.0, help="measured window per run")
    parser.add_argument("--no-baseline", action="store_true", help="skip the offline responder run")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    asyncio.run(run(args.seconds, not args.no_baseline))


if __name__ == "__main__":
    main()

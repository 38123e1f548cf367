"""The original system's own consumer code, run on this benchmark's loopback backend.

``python -m benchmarks.original --checkout DIR --data DIR --url URL --jobs N`` (started by
``python -m benchmarks.consumer --original DIR`` in its own process): ``DIR`` is a checkout of the
original repository (not part of this project; ``git clone`` it anywhere). Nothing of it is changed:
this sets up what it expects around it — ``/opt/syntx-config/configs`` replaced by a scratch folder
(``config_loader.CONFIG_BASE``), its wrapper folder holding our ``syntex_system`` wrapper text, the
wrapper service's URL pointed at the stub, the working directory the one holding ``queue/`` — and runs
``QueueConsumer("syntex_system").process_batch(20)`` as its cron line does, on ``N`` jobs in its layout
(``<stem>.txt`` prompt + ``<stem>.json`` metadata) given ``ROUND`` at a time: it lists and sorts
``incoming/`` for every job, so a deep queue slows it down (given 3,000 at once it did 34 jobs/s on a
busy 2-core machine); it is timed at the shallow depth its producer kept (20 jobs every 2 h), only
while it processes — which flatters it. Its parser, scorer (V1, its default), progress
tracker and JSONL logs all do their work; its printing goes to ``/dev/null``. Prints one line of JSON:
jobs, seconds, CPU seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from benchmarks.session import Bench

BATCH = 20  # the original's cron line: process_batch(20)
ROUND = 100  # jobs given to it at a time: the queue stays as shallow as its producer kept it
ORIGINAL_FOLDERS = ("incoming", "processing", "processed", "error", "archive", ".tmp")


TIMEOUT_S = 600.0


@dataclass(frozen=True)
class OriginalRun:
    jobs: int
    processed: int
    seconds: float
    cpu_s: float

    @property
    def jobs_per_s(self) -> float:
        return self.jobs / self.seconds if self.seconds > 0 else 0.0

    @property
    def cpu_ms_per_job(self) -> float:
        return self.cpu_s * 1000 / max(1, self.jobs)


async def run_original(bench: Bench, jobs: int) -> OriginalRun:
    """This module in its own process on ``bench``'s instant stub; our wrapper text and prompt."""
    from benchmarks.workload import PROMPT, wrapper_template
    from shared.config import PROJECT_ROOT

    assert bench.original is not None
    scratch = bench.workdir / "original"
    scratch.mkdir()
    prompt, wrapper = scratch / "prompt.txt", scratch / "wrapper.txt"
    prompt.write_text(PROMPT, encoding="utf-8")
    wrapper.write_text(wrapper_template().replace("{prompt}", ""), encoding="utf-8")  # it appends the prompt
    args = [sys.executable, "-m", "benchmarks.original", "--checkout", str(bench.original)]
    args += ["--data", str(scratch / "data"), "--url", bench.url(bench.instant_port) + "/api/chat"]
    args += ["--jobs", str(jobs), "--prompt-file", str(prompt), "--wrapper-file", str(wrapper)]
    done = await asyncio.to_thread(
        subprocess.run, args, capture_output=True, timeout=TIMEOUT_S, cwd=PROJECT_ROOT
    )
    if done.returncode != 0:
        raise RuntimeError(f"the original's consumer failed: {done.stderr.decode(errors='replace')[-800:]}")
    return OriginalRun(**json.loads(done.stdout.decode().strip().splitlines()[-1]))


def write_jobs(queue: Path, prompt: str, first: int, count: int) -> None:
    """``count`` jobs in the original's layout and naming (``{timestamp}__topic_X__style_S``)."""
    for folder in ORIGINAL_FOLDERS:
        (queue / folder).mkdir(parents=True, exist_ok=True)
    base = datetime(2026, 12, 1, 12, 0, 0)
    for number in range(first, first + count):
        stem = f"{base:%Y%m%d_%H%M%S}_{number:06d}__topic_gesellschaft__style_akademisch"
        meta = {
            "topic": "gesellschaft",
            "style": "akademisch",
            "category": "gesellschaft",
            "language": "de",
            "created_at": base.isoformat(),
            "filename": f"{stem}.txt",
        }
        (queue / "incoming" / f"{stem}.txt").write_text(prompt, encoding="utf-8")
        (queue / "incoming" / f"{stem}.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")


def prepare(checkout: Path, data: Path, url: str, wrapper: str) -> None:
    """What the original expects around it, in ``data``; the checkout's modules patched to use it."""
    configs, wrappers = data / "configs", data / "wrappers"
    configs.mkdir(parents=True, exist_ok=True)
    wrappers.mkdir(parents=True, exist_ok=True)
    (wrappers / "syntex_wrapper_syntex_system.txt").write_text(wrapper, encoding="utf-8")
    (configs / "system.yaml").write_text(f"paths:\n  wrappers: {wrappers}\n", encoding="utf-8")
    sys.path.insert(0, str(checkout))
    os.chdir(data)  # its queue and logs are relative paths
    # the original's modules, from the checkout (not ours: looked up by name)
    setattr(importlib.import_module("config.config_loader"), "CONFIG_BASE", configs)  # noqa: B010
    setattr(importlib.import_module("syntex_injector.syntex.api.client"), "API_ENDPOINT", url)  # noqa: B010


def run(jobs: int, prompt: str) -> dict[str, Any]:
    # importing it patches its wrapper table from the configured folder
    consumer = importlib.import_module("queue_system.core.consumer").QueueConsumer("syntex_system", "bench")
    done, seconds, cpu_s = 0, 0.0, 0.0
    while done < jobs:
        write_jobs(Path("queue"), prompt, done, min(ROUND, jobs - done))
        started, cpu = time.monotonic(), time.process_time()
        while (stats := consumer.process_batch(BATCH))["total"] > 0:
            done += stats["total"]
        seconds += time.monotonic() - started
        cpu_s += time.process_time() - cpu
    processed = len(list(Path("queue/processed").glob("*_response.txt")))
    return {"jobs": done, "processed": processed, "seconds": seconds, "cpu_s": cpu_s}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.original", description=__doc__.split("\n")[0])
    parser.add_argument("--checkout", type=Path, required=True, help="a checkout of the original repository")
    parser.add_argument("--data", type=Path, required=True, help="a scratch folder (queue, configs, logs)")
    parser.add_argument("--url", required=True, help="the wrapper service's URL (…/api/chat)")
    parser.add_argument("--jobs", type=int, required=True)
    parser.add_argument("--prompt-file", type=Path, required=True)
    parser.add_argument("--wrapper-file", type=Path, required=True)
    args = parser.parse_args(argv)
    checkout, data = args.checkout.resolve(), args.data.resolve()
    out = sys.stdout
    with open(os.devnull, "w", encoding="utf-8") as quiet, contextlib.redirect_stdout(quiet):
        prepare(checkout, data, args.url, args.wrapper_file.read_text(encoding="utf-8"))
        figures = run(args.jobs, args.prompt_file.read_text(encoding="utf-8"))
    out.write(json.dumps(figures) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

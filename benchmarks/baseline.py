"""An emulation of the original consumer's hot path, run in-process by the benchmark.

Strictly sequential. For every job: list and sort the whole ``incoming/`` folder, rename the oldest
``.txt`` into ``processing/``, read it, POST wrapper + prompt with a new HTTP client and connection
(the original called ``requests.post``), write the result JSON in ``processing/`` and rename job and
result into ``processed/``, then write the ``_response.txt`` beside them, as the original did.
The original's parser, scorer and JSONL logs are left out: the emulation is, if anything, flattered.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx

from shared.queue import INCOMING, PROCESSED, PROCESSING

_TIMEOUT = httpx.Timeout(connect=30.0, read=3600.0, write=30.0, pool=30.0)


@dataclass(frozen=True)
class BaselineRun:
    jobs: int
    seconds: float

    @property
    def jobs_per_s(self) -> float:
        return self.jobs / self.seconds if self.seconds > 0 else 0.0


def _oldest_job(incoming: str) -> str | None:
    names = sorted(name for name in os.listdir(incoming) if name.endswith(".txt"))
    return names[0] if names else None


def _post(url: str, prompt: str) -> str:
    # A fresh client per job, like ``requests.post``: a new connection, no keep-alive. ``verify=False``
    # only skips loading the CA bundle (this is plain http on loopback); requests does not load it for
    # http either, and with it httpx spends ~20 ms per client, which would make the original look worse.
    payload = {"prompt": prompt, "max_new_tokens": 1024, "temperature": 0.3, "top_p": 0.85, "do_sample": True}
    with httpx.Client(timeout=_TIMEOUT, verify=False) as client:
        reply = client.post(url, json=payload)
        reply.raise_for_status()
        data = reply.json()
    if not isinstance(data, dict) or not isinstance(data.get("response"), str):
        raise ValueError("Invalid response format")
    text: str = data["response"]
    return text


def process_one(queue_root: Path, url: str, wrapper: str) -> bool:
    incoming, processing, processed = (
        os.fspath(queue_root / name) for name in (INCOMING, PROCESSING, PROCESSED)
    )
    name = _oldest_job(incoming)
    if name is None:
        return False
    stem = name[: -len(".txt")]
    claimed = os.path.join(processing, name)
    os.rename(os.path.join(incoming, name), claimed)
    started = time.monotonic()
    with open(claimed, encoding="utf-8") as handle:
        content = handle.read()
    response = _post(url, wrapper + "\n" + content)
    record = {
        "filename": name,
        "content": content,
        "wrapper": "syntex_system",
        "processed_at": datetime.now(UTC).isoformat(),
        "status": "success",
        "duration_ms": round((time.monotonic() - started) * 1000),
        "response": response,
    }
    sidecar = os.path.join(processing, stem + ".json")
    with open(sidecar, "w", encoding="utf-8") as handle:
        json.dump(record, handle, ensure_ascii=False, indent=2)
    os.rename(claimed, os.path.join(processed, name))
    os.rename(sidecar, os.path.join(processed, stem + ".json"))
    with open(os.path.join(processed, stem + "_response.txt"), "w", encoding="utf-8") as handle:
        handle.write(response)
    return True


def run_baseline(
    queue_root: Path, url: str, wrapper: str, limit: int, max_seconds: float, stop: threading.Event
) -> BaselineRun:
    """Process up to ``limit`` jobs (or until ``max_seconds`` or ``stop``); jobs/s over the jobs done."""
    for folder in (PROCESSING, PROCESSED):
        (queue_root / folder).mkdir(parents=True, exist_ok=True)
    done = 0
    started = time.monotonic()
    deadline = started + max_seconds
    while done < limit and time.monotonic() < deadline and not stop.is_set():
        if not process_one(queue_root, url, wrapper):
            break
        done += 1
    return BaselineRun(done, time.monotonic() - started)

"""``syntx retry``: put finished-but-unsuccessful jobs back into ``incoming/``.

The job file is written first, then the old result moves to ``archive/<id>.try-<n>.json``; a crash
between the two leaves the old result in place and the retry can simply be repeated.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from shared.jobfile import JobMeta
from shared.queue import ARCHIVE, ERROR, FileQueue

log = logging.getLogger(__name__)

RETRYABLE = ("failed",)
PROGRESS_EVERY = 100


def requeue(
    queue_dir: Path, job_ids: list[str], include_rejected: bool, progress: Callable[[str], None]
) -> int:
    queue = FileQueue(queue_dir)
    queue.ensure()
    statuses = (*RETRYABLE, "rejected") if include_rejected else RETRYABLE
    paths = [queue.folder(ERROR) / f"{job_id}.json" for job_id in job_ids] or sorted(
        queue.result_files(ERROR)
    )
    moved = 0
    for index, path in enumerate(paths, start=1):
        record = _read(path)
        if record is None:
            progress(f"skip {path.name}: not a readable result in error/")
            continue
        if not job_ids and record.get("status") not in statuses:
            continue
        if not record.get("prompt"):
            progress(f"skip {path.stem}: the result holds no prompt (status {record.get('status')})")
            continue
        _requeue_one(queue, path, record)
        moved += 1
        if index % PROGRESS_EVERY == 0:
            progress(f"{index}/{len(paths)} looked at, {moved} re-queued")
    return moved


def _read(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def _requeue_one(queue: FileQueue, path: Path, record: dict[str, Any]) -> None:
    job_id = path.stem
    queue.add_job(record["prompt"], JobMeta.model_validate(record.get("meta") or {}), job_id=job_id)
    tries = sum(1 for _ in queue.folder(ARCHIVE).glob(f"{job_id}.try-*.json")) + 1
    path.rename(queue.folder(ARCHIVE) / f"{job_id}.try-{tries}.json")
    log.info("re-queued %s (earlier result kept as archive/%s.try-%d.json)", job_id, job_id, tries)

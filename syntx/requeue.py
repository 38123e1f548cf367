"""``syntx retry``: put finished-but-unsuccessful jobs back into ``incoming/``.

The job is written first (under a new id, with ``retry_of`` naming the old one), then the old result
moves to the archive (``archive/<day>/``); a crash between the two leaves the old result in ``error/``
as well — retrying it again would queue the prompt twice, nothing is lost.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from shared.queue import ERROR, FileQueue, JobMeta

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


def _requeue_one(queue: FileQueue, path: Path, record: dict[str, Any]) -> str:
    """The job goes back under a new id (a consumer must never see it beside its old result); the old
    result moves to ``archive/`` so that ``error/`` holds only what still needs attention."""
    meta = JobMeta.model_validate({**(record.get("meta") or {}), "retry_of": path.stem})
    new_id = queue.add_job(record["prompt"], meta)
    archived = queue.archive(path)
    log.info("re-queued %s as %s (earlier result now in %s)", path.stem, new_id, archived.parent)
    return new_id

"""``syntx retry``: put finished-but-unsuccessful jobs back into ``incoming/``.

The job is written first (under a new id, with ``retry_of`` naming the old one), then the old result
moves to the archive (``archive/<day>/``); a crash between the two leaves the old result in ``error/``
as well — retrying it again would queue the prompt twice, nothing is lost. Each job written is handed to
``on_requeued``, which announces it (``syntx.job.created``, source ``retry``) as the producer does its own.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from pydantic import ValidationError

from shared.messaging import JobCreated
from shared.queue import ERROR, FileQueue, JobMeta, JobResult, ResultFileError

log = logging.getLogger(__name__)

RETRYABLE = ("failed",)
PROGRESS_EVERY = 100
ANNOUNCED = {"topic", "category", "style", "language", "generation"}  # what job.created carries of a job


def job_created(job_id: str, meta: JobMeta) -> JobCreated:
    """The ``job.created`` event of a re-queued job; a header written by hand whose values the event
    cannot carry is announced by its id alone."""
    try:
        return JobCreated(job_id=job_id, source="retry", **meta.model_dump(include=ANNOUNCED))
    except ValidationError:
        return JobCreated(job_id=job_id, source="retry")


def requeue(
    queue_dir: Path,
    job_ids: list[str],
    include_rejected: bool,
    progress: Callable[[str], None],
    max_result_bytes: int,
    on_requeued: Callable[[JobCreated], None] = lambda _event: None,
) -> int:
    queue = FileQueue(queue_dir)
    queue.ensure()
    statuses = (*RETRYABLE, "rejected") if include_rejected else RETRYABLE
    paths = [queue.result_in(ERROR, job_id) for job_id in job_ids] or sorted(queue.result_files(ERROR))
    moved = 0
    for index, path in enumerate(paths, start=1):
        record = _read(path, max_result_bytes, progress)
        if record is None:
            continue
        if not job_ids and record.status not in statuses:
            continue
        if not record.prompt:
            progress(f"skip {path.stem}: the result holds no prompt (status {record.status})")
            continue
        meta = JobMeta.model_validate({**record.meta.model_dump(), "retry_of": path.stem})
        on_requeued(job_created(_requeue_one(queue, path, record.prompt, meta), meta))
        moved += 1
        if index % PROGRESS_EVERY == 0:
            progress(f"{index}/{len(paths)} looked at, {moved} re-queued")
    return moved


def _read(path: Path, max_bytes: int, progress: Callable[[str], None]) -> JobResult | None:
    try:
        return JobResult.load(path, max_bytes=max_bytes)
    except FileNotFoundError:
        progress(f"skip {path.name}: not a readable result in {ERROR}/")
    except ResultFileError as exc:
        progress(f"skip {path.name}: not a readable result in {ERROR}/ ({exc.reason}: {exc.detail})")
    return None


def _requeue_one(queue: FileQueue, path: Path, prompt: str, meta: JobMeta) -> str:
    """The job goes back under a new id (a consumer must never see it beside its old result); the old
    result moves to ``archive/`` so that ``error/`` holds only what still needs attention."""
    new_id = queue.add_job(prompt, meta)
    archived = queue.archive(path)
    log.info("re-queued %s as %s (earlier result now in %s)", path.stem, new_id, archived.parent)
    return new_id

"""Result records as a consumer writes them (through the model), as JSON data a test writes or alters."""

from __future__ import annotations

import json
from typing import Any

from shared.queue import FileQueue, JobResult, Status
from shared.scoring import ScoreResult

SCORED_STATUSES = ("passed", "rejected")


def score_record(total: int, scorer: str = "syntx-2") -> dict[str, Any]:
    score = ScoreResult(
        scorer=scorer, format="sigma", total=total, completeness=100.0, structure=100.0, fields=[]
    )
    data: dict[str, Any] = score.model_dump(mode="json")
    return data


def result_record(job_id: str, status: Status, score: int | None = None, **fields: Any) -> dict[str, Any]:
    """A valid result of ``job_id``; a passed or rejected one carries a score (95 or 40 unless given)."""
    if score is None and status in SCORED_STATUSES:
        score = 95 if status == "passed" else 40
    scored = score_record(score) if score is not None else None
    record = JobResult.model_validate(
        {"job_id": job_id, "status": status, "reason": f"{status} in a test", "score": scored, **fields}
    )
    data: dict[str, Any] = json.loads(record.encoded())
    return data


def attempts_written(queue: FileQueue, job_id: str) -> list[dict[str, Any]]:
    """The attempt history of ``job_id`` as the JSON the queue wrote (none yet: empty)."""
    path = queue.attempts_path(job_id)
    if not path.exists():
        return []
    data: list[dict[str, Any]] = json.loads(path.read_text(encoding="utf-8"))
    return data

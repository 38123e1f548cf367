"""The file queue: folders, atomic writes, job ids, job files, claims, recovery, results, back pressure."""

from __future__ import annotations

from shared.queue.claims import (
    ClaimFile,
    Claims,
    new_token,
    parse_claim,
)
from shared.queue.folders import (
    ARCHIVE,
    ATTEMPTS,
    COUNTED_FOLDERS,
    ERROR,
    INCOMING,
    JOB_SUFFIX,
    PROCESSED,
    PROCESSING,
    QUARANTINE,
    QUARANTINE_NOTE_SUFFIX,
    RESULT_FOLDERS,
    RESULT_SUFFIX,
    TMP,
    ResultFolder,
    archive_day,
    archive_day_name,
    counted_folder,
    counts_as,
    is_job_name,
    job_created_day,
    job_id_problem,
)
from shared.queue.jobfile import (
    Job,
    JobFileError,
    JobMeta,
    parse_job,
    render_job,
)
from shared.queue.pressure import (
    producer_batch,
    queue_state,
)
from shared.queue.recovery import (
    recover_expired,
)
from shared.queue.results import (
    Attempt,
    JobResult,
    counted_failures,
    describe_parse,
    job_meta,
    scored_status,
)
from shared.queue.store import (
    FileQueue,
    new_job_id,
)

__all__ = [
    "RESULT_FOLDERS",
    "job_id_problem",
    "ARCHIVE",
    "ATTEMPTS",
    "Attempt",
    "COUNTED_FOLDERS",
    "ClaimFile",
    "Claims",
    "ERROR",
    "FileQueue",
    "INCOMING",
    "JOB_SUFFIX",
    "Job",
    "JobFileError",
    "JobMeta",
    "JobResult",
    "PROCESSED",
    "PROCESSING",
    "QUARANTINE",
    "QUARANTINE_NOTE_SUFFIX",
    "RESULT_SUFFIX",
    "ResultFolder",
    "TMP",
    "archive_day",
    "archive_day_name",
    "counted_folder",
    "counted_failures",
    "counts_as",
    "describe_parse",
    "is_job_name",
    "job_created_day",
    "job_meta",
    "new_job_id",
    "new_token",
    "parse_claim",
    "parse_job",
    "producer_batch",
    "queue_state",
    "recover_expired",
    "render_job",
    "scored_status",
]

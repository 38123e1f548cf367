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
    RESULT_SUFFIX,
    TMP,
    ResultFolder,
    counts_as,
    is_job_name,
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
    queue_health,
    queue_state,
)
from shared.queue.recovery import (
    recover_expired,
)
from shared.queue.results import (
    RESULT_PROBLEMS,
    Attempt,
    JobResult,
    ResultFileError,
    ResultProblem,
    Status,
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
    "RESULT_PROBLEMS",
    "RESULT_SUFFIX",
    "ResultFileError",
    "ResultFolder",
    "ResultProblem",
    "Status",
    "TMP",
    "counted_failures",
    "counts_as",
    "describe_parse",
    "is_job_name",
    "job_meta",
    "new_job_id",
    "new_token",
    "parse_claim",
    "parse_job",
    "producer_batch",
    "queue_health",
    "queue_state",
    "recover_expired",
    "render_job",
    "scored_status",
]

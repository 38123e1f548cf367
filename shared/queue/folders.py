"""Where things live in the queue: folder names, file suffixes, and which files count in a folder.

Every other module takes these names from here; no folder name is spelled anywhere else.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Final, Literal

INCOMING: Final = "incoming"
PROCESSING: Final = "processing"
PROCESSED: Final = "processed"
ERROR: Final = "error"
ARCHIVE: Final = "archive"
QUARANTINE: Final = "quarantine"
ATTEMPTS: Final = "attempts"
TMP: Final = ".tmp"
JOB_FOLDERS: Final = (INCOMING, PROCESSING)
RESULT_FOLDERS: Final = (PROCESSED, ERROR, ARCHIVE)
COUNTED_FOLDERS: Final = (INCOMING, PROCESSING, PROCESSED, ERROR, ARCHIVE, QUARANTINE, TMP)
ALL_FOLDERS: Final = (TMP, INCOMING, PROCESSING, PROCESSED, ERROR, ARCHIVE, QUARANTINE, ATTEMPTS)
# What cleanup removes, as its report names it: stale staging files, old logs, attempt notes, results.
TMP_KIND: Final = "tmp"
LOGS_KIND: Final = "logs"
CLEANUP_KINDS: Final = (TMP_KIND, LOGS_KIND, ATTEMPTS, *RESULT_FOLDERS)
JOB_SUFFIX: Final = ".txt"
RESULT_SUFFIX: Final = ".json"
QUARANTINE_NOTE_SUFFIX: Final = ".why.txt"
ResultFolder = Literal["processed", "error"]


CLAIM_NAME: Final = re.compile(r"^(?P<job>.+)\.claim-(?P<token>[0-9a-f]{8})\.txt$")

# Archived results live in one folder per day: ``archive/2026-11-30/<job_id>.json``, the day (UTC) the
# result was archived. Results archived by earlier versions, flat in ``archive/``, are read as well.
ARCHIVE_DAY_FORMAT: Final = "%Y-%m-%d"
ARCHIVE_DAY_NAME: Final = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# A job id starts with its creation time in UTC (see ``new_job_id``): ``20251206T140000123456Z-…``.
JOB_ID_DAY: Final = re.compile(r"^(?P<year>\d{4})(?P<month>\d{2})(?P<day>\d{2})T\d{6}")
# Clocks of the host that made a job and of the host that archived it may differ by up to this much.
ARCHIVE_CLOCK_SLACK: Final = timedelta(days=1)


def is_job_name(name: str) -> bool:
    """A job file: ``*.txt``, not hidden, not a response file of the original layout."""
    return name.endswith(JOB_SUFFIX) and not name.startswith(".") and not name.endswith("_response.txt")


def counts_as(folder: str, name: str) -> bool:
    """Whether a file counts towards its folder's depth: jobs in job folders, results elsewhere."""
    if folder in JOB_FOLDERS:
        return is_job_name(name)
    if folder == TMP:
        return True
    if folder in RESULT_FOLDERS:
        return name.endswith(RESULT_SUFFIX) and not name.startswith(".")
    return not name.startswith(".") and not name.endswith(QUARANTINE_NOTE_SUFFIX)


def archive_day_name(when: datetime | date) -> str:
    """The day folder a result archived at ``when`` goes into: its UTC date."""
    day = when.astimezone(UTC).date() if isinstance(when, datetime) else when
    return day.strftime(ARCHIVE_DAY_FORMAT)


def archive_day(name: str) -> date | None:
    """The date a day folder's name stands for; None for any other name."""
    if not ARCHIVE_DAY_NAME.match(name):
        return None
    try:
        return datetime.strptime(name, ARCHIVE_DAY_FORMAT).replace(tzinfo=UTC).date()
    except ValueError:
        return None


def job_created_day(job_id: str) -> date | None:
    """The UTC day a job id says it was created on; None for ids of another form (files dropped by hand)."""
    match = JOB_ID_DAY.match(job_id)
    if match is None:
        return None
    try:  # the numbers themselves: strptime costs ~10 µs, and this runs twice per job
        return date(int(match["year"]), int(match["month"]), int(match["day"]))
    except ValueError:
        return None


def counted_folder(parent: str) -> str:
    """The counted folder a file whose parent folder is named ``parent`` belongs to (day folders: archive)."""
    return ARCHIVE if archive_day(parent) is not None else parent

"""The one rule for names that come from outside: job ids from file names, events, requests, the command line.

A job id becomes part of every file name the queue makes for its job — ``<id>.txt``,
``<id>.claim-<token>.txt``, ``<id>.json``, staging names such as ``<id>.json.<hex>.part`` — so an id is
accepted only if the longest of them fits the filesystem's limit on one name (``NAME_MAX``, in bytes,
255 on most filesystems, less on some: eCryptfs allows 143). Ids never hold a path: no separator, no
leading dot, nothing that is not printable UTF-8. Whatever builds a path from outside input asks
:func:`job_id_problem` first; message models take ids as :data:`JobId`, which applies the same rule.
Names are shown in logs and notes through :func:`shown`, which escapes what is not printable, and
:func:`clipped` cuts a long one with its length said.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Annotated, Final

from pydantic import AfterValidator

# The longest suffix the queue appends to a job id: ".claim-<8 hex>.txt" and ".json.<8 hex>.part" are 19
# bytes; the rest is room for a future suffix without shortening the ids already accepted.
ID_SUFFIX_BYTES: Final = 24
# Where the folder cannot say (os.pathconf unsupported), the limit of ext4, xfs, btrfs, tmpfs and NFS.
DEFAULT_NAME_MAX: Final = 255
# An id is at most this long whatever the filesystem allows, so one id works on every host of a queue.
JOB_ID_MAX_BYTES: Final = 200
# How much of a long name a log line or a note shows before it says how long the whole was.
SHOWN_NAME_MAX_CHARS: Final = 120


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a job (not valid UTF-8, a control or invisible character), or None."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return "file name is not valid UTF-8"
    if not name.isprintable():
        return "file name contains control or invisible characters"
    return None


def job_id_problem(job_id: str, name_max: int = DEFAULT_NAME_MAX) -> str | None:
    """Why ``job_id`` cannot name a job in a folder whose names may have ``name_max`` bytes, or None.

    Job ids are file stems — the producer's sortable ``20251206T140000123456Z-3fa2c1`` or the stem of a
    file someone dropped into ``incoming/`` — never paths.
    """
    if not job_id:
        return "empty"
    if job_id.startswith("."):
        return "starts with a dot"
    if "/" in job_id or "\\" in job_id:
        return "contains a path separator"
    problem = name_problem(job_id)
    if problem is not None:
        return problem
    size, limit = len(job_id.encode("utf-8")), id_max_bytes(name_max)
    if size > limit:
        return f"{size} bytes long; a job id has at most {limit} (the queue adds up to {ID_SUFFIX_BYTES})"
    return None


def id_max_bytes(name_max: int = DEFAULT_NAME_MAX) -> int:
    """The longest job id, in bytes, whose every queue file name fits ``name_max``."""
    return min(JOB_ID_MAX_BYTES, name_max - ID_SUFFIX_BYTES)


@functools.cache
def folder_name_max(folder: Path) -> int:
    """``NAME_MAX`` of the filesystem ``folder`` is on (asked once per folder)."""
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError):
        return DEFAULT_NAME_MAX


def _valid_job_id(job_id: str) -> str:
    problem = job_id_problem(job_id)
    if problem is not None:
        raise ValueError(f"not a job id: {problem}")
    return job_id


JobId = Annotated[str, AfterValidator(_valid_job_id)]
"""A job id in a message model: refused (a validation error) unless :func:`job_id_problem` accepts it."""


def shown(name: str) -> str:
    """``name`` safe for a log line or a note: invalid UTF-8 as ``\\xff``, control characters escaped."""
    if name.isprintable():
        return name
    try:
        raw = os.fsencode(name)  # a name from the filesystem: its undecodable bytes come back as they were
    except UnicodeEncodeError:  # a lone surrogate of other origin
        raw = name.encode("utf-8", errors="backslashreplace")
    text = raw.decode("utf-8", errors="backslashreplace")
    return "".join(char if char.isprintable() else char.encode("unicode_escape").decode() for char in text)


def clipped(text: str, limit: int = SHOWN_NAME_MAX_CHARS) -> str:
    """``text`` cut to ``limit`` characters, saying how long it was: ``abc… (70000 characters)``."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text)} characters)"

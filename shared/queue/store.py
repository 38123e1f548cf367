"""The file queue: folders, atomic writes, sortable job ids, claim by rename, immutable results.

A job is one ``<job_id>.txt``; it lives in exactly one of ``incoming/`` and ``processing/`` until its
result ``<job_id>.json`` lands in ``processed/`` or ``error/``. Every write goes to ``.tmp/`` first and
is renamed into place, so no reader ever sees half a file. Attempt history survives releases in
``attempts/<job_id>.json``.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shared.queue.folders import (
    ALL_FOLDERS,
    ATTEMPTS,
    CLAIM_NAME,
    COUNTED_FOLDERS,
    INCOMING,
    JOB_SUFFIX,
    RESULT_FOLDERS,
    RESULT_SUFFIX,
    TMP,
    ResultFolder,
    counts_as,
    is_job_name,
)
from shared.queue.jobfile import JobMeta, render_job


def new_job_id(now: datetime | None = None) -> str:
    """``20251206T140000123456Z-3fa2c1``: sorts by creation time, unique across processes."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    return f"{moment:%Y%m%dT%H%M%S%f}Z-{secrets.token_hex(3)}"


class FileQueue:
    def __init__(self, root: Path) -> None:
        self.root = root

    def folder(self, name: str) -> Path:
        return self.root / name

    def ensure(self) -> None:
        for name in ALL_FOLDERS:
            self.folder(name).mkdir(parents=True, exist_ok=True)

    # -- writing ---------------------------------------------------------------------------------

    def write_atomic(
        self, target: Path, data: bytes, *, fsync: bool = False, exclusive: bool = False
    ) -> bool:
        """Write ``data`` to ``.tmp/`` and move it to ``target`` in one step.

        ``exclusive``: never replace an existing ``target`` (returns False instead); a hard link
        either creates the name or fails, so of two concurrent writers exactly one wins.
        """
        staging = self.folder(TMP) / f"{target.name}.{secrets.token_hex(4)}.part"
        with staging.open("wb") as handle:
            handle.write(data)
            if fsync:
                handle.flush()
                os.fsync(handle.fileno())
        if not exclusive:
            os.replace(staging, target)
            return True
        try:
            os.link(staging, target)
        except FileExistsError:
            return False
        finally:
            staging.unlink()
        return True

    def add_job(self, prompt: str, meta: JobMeta, job_id: str | None = None) -> str:
        job_id = job_id or new_job_id()
        self.write_atomic(self.job_path(INCOMING, job_id), render_job(prompt, meta).encode("utf-8"))
        return job_id

    def write_result(
        self, folder: ResultFolder, job_id: str, record: dict[str, Any] | bytes, *, fsync: bool = False
    ) -> bool:
        """Write a result once; returns False when one already exists (results are immutable)."""
        if self.result_path(job_id) is not None:
            return False
        data = (
            record if isinstance(record, bytes) else json.dumps(record, ensure_ascii=False, indent=1).encode()
        )
        return self.write_atomic(
            self.folder(folder) / f"{job_id}{RESULT_SUFFIX}", data, fsync=fsync, exclusive=True
        )

    # -- paths and lookups -----------------------------------------------------------------------

    def job_path(self, folder: str, job_id: str) -> Path:
        return self.folder(folder) / f"{job_id}{JOB_SUFFIX}"

    def sidecar_path(self, folder: str, job_id: str) -> Path:
        """Metadata of the original layout: ``X.json`` beside ``X.txt``."""
        return self.folder(folder) / f"{job_id}{RESULT_SUFFIX}"

    def attempts_path(self, job_id: str) -> Path:
        return self.folder(ATTEMPTS) / f"{job_id}.json"

    def result_path(self, job_id: str) -> Path | None:
        for folder in RESULT_FOLDERS:
            path = self.folder(folder) / f"{job_id}{RESULT_SUFFIX}"
            if path.exists():
                return path
        return None

    def incoming_ids(self) -> list[str]:
        """Waiting jobs, oldest first (job ids sort by creation time)."""
        return sorted(name[: -len(JOB_SUFFIX)] for name in self._names(INCOMING) if is_job_name(name))

    def job_ids(self, folder: str) -> Iterator[str]:
        """Job ids of the job files in ``folder`` (in ``processing/``: of the claims in flight)."""
        for name in self._names(folder):
            if is_job_name(name):
                claim = CLAIM_NAME.match(name)
                yield claim["job"] if claim else name[: -len(JOB_SUFFIX)]

    def file_names(self, folder: str) -> Iterator[str]:
        return self._names(folder)

    def result_files(self, folder: str) -> Iterator[Path]:
        base = self.folder(folder)
        return (base / name for name in self._names(folder) if name.endswith(RESULT_SUFFIX))

    def count(self, folder: str) -> int:
        return sum(1 for name in self._names(folder) if counts_as(folder, name))

    def counts(self) -> dict[str, int]:
        return {name: self.count(name) for name in COUNTED_FOLDERS}

    def names(self, folder: str) -> set[str]:
        return {name for name in self._names(folder) if counts_as(folder, name)}

    def _names(self, folder: str) -> Iterator[str]:
        try:
            with os.scandir(self.folder(folder)) as entries:
                yield from (entry.name for entry in entries if entry.is_file(follow_symlinks=False))
        except FileNotFoundError:
            return

    # -- moving results ------------------------------------------------------------------------

    def move_result(self, path: Path, folder: str) -> Path:
        target = self.folder(folder) / path.name
        os.rename(path, target)
        return target

    # -- attempt history -------------------------------------------------------------------------

    def read_attempts(self, job_id: str) -> list[dict[str, Any]]:
        try:
            data = json.loads(self.attempts_path(job_id).read_text(encoding="utf-8"))
        except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
            return []
        return [entry for entry in data if isinstance(entry, dict)] if isinstance(data, list) else []

    def write_attempts(self, job_id: str, attempts: list[dict[str, Any]]) -> None:
        data = json.dumps(attempts, ensure_ascii=False, default=str).encode("utf-8")
        self.write_atomic(self.attempts_path(job_id), data)

"""Claims and leases on jobs in ``processing/``.

A claim is an atomic rename ``incoming/<id>.txt`` → ``processing/<id>.claim-<token>.txt``; ``token``
names the consumer process that holds it (its instance token, logged at start). The lease clock is the
claim file's inode change time (ctime): the rename itself sets it, the holder refreshes it (a touch)
while the LLM call runs, and a claim unchanged for ``lease_s`` has expired — any consumer, or cleanup,
may then take it over with another rename (which restarts the clock at once). Expiry is judged against
the queue's file clock (:meth:`FileQueue.file_clock`, a probe file's ctime), not the local clock: on a
shared filesystem both clocks are the server's, so hosts whose own clocks differ still agree on a lease.
No result is ever filed twice: results are created exclusively (see ``FileQueue.write_result``), so of
a slow holder and the one that took over, the first to finish files the result and the other drops it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from shared.config import DEFAULT_MAX_HEADER_BYTES
from shared.names import name_problem
from shared.queue.folders import CLAIM_NAME, INCOMING, JOB_SUFFIX, PROCESSING, is_job_name
from shared.queue.intake import UnreadableFile, read_bounded
from shared.queue.jobfile import Job, JobFileError, parse_job
from shared.queue.store import FileQueue


def new_token() -> str:
    return secrets.token_hex(4)


@dataclass(frozen=True)
class ClaimFile:
    job_id: str
    token: str | None  # None: a claim without owner (an older layout's plain ``<id>.txt``)
    path: Path

    def lease_clock(self) -> float | None:
        """When the lease was last started or renewed (a rename or a touch sets the ctime)."""
        try:
            return self.path.stat().st_ctime
        except FileNotFoundError:
            return None


def parse_claim(path: Path) -> ClaimFile | None:
    if name_problem(path.name) is not None:
        return None  # never claimed by this version: such names are quarantined from incoming/
    match = CLAIM_NAME.match(path.name)
    if match:
        return ClaimFile(match["job"], match["token"], path)
    if is_job_name(path.name):
        return ClaimFile(path.name[: -len(JOB_SUFFIX)], None, path)
    return None


class Claims:
    """The claim operations of one consumer process (``token``) on a queue."""

    def __init__(self, queue: FileQueue, token: str) -> None:
        self.queue = queue
        self.token = token

    def path(self, job_id: str) -> Path:
        return self.queue.folder(PROCESSING) / f"{job_id}.claim-{self.token}{JOB_SUFFIX}"

    def take(self, job_id: str) -> ClaimFile | None:
        """Claim a waiting job; exactly one caller wins. The lease starts now."""
        target = self.path(job_id)
        try:
            os.rename(self.queue.job_path(INCOMING, job_id), target)
        except FileNotFoundError:
            return None
        with contextlib.suppress(FileNotFoundError):
            os.rename(self.queue.sidecar_path(INCOMING, job_id), self.queue.sidecar_path(PROCESSING, job_id))
        return ClaimFile(job_id, self.token, target)

    def read_job(
        self, claim: ClaimFile, max_bytes: int, max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES
    ) -> Job:
        """The claimed job, with the metadata of its sidecar (original layout) if it has one.

        Both files are read bounded (:func:`read_bounded`): no symlink followed, no FIFO waited on, no
        more than ``max_bytes`` + 1 read. Raises ``FileNotFoundError`` when the claim is gone,
        ``JobFileError`` for a malformed job; an unreadable sidecar is ignored.
        """
        try:
            sidecar: bytes | None = read_bounded(self.queue.sidecar_path(PROCESSING, claim.job_id), max_bytes)
        except (FileNotFoundError, UnreadableFile):
            sidecar = None
        try:
            raw = read_bounded(claim.path, max_bytes)
        except UnreadableFile as exc:
            raise JobFileError(f"job file is {exc}") from None
        return parse_job(claim.job_id, raw, max_bytes, sidecar, max_header_bytes=max_header_bytes)

    def renew(self, claim: ClaimFile) -> bool:
        """Extend the lease; False when the claim is gone (taken over after our lease expired)."""
        try:
            _touch(claim.path)
        except FileNotFoundError:
            return False
        return True

    def take_over(self, claim: ClaimFile) -> ClaimFile | None:
        """Move someone else's (expired) claim to our name; None when another took it first.

        The rename restarts the lease clock, so no other recoverer sees our new claim as expired.
        """
        target = self.path(claim.job_id)
        try:
            os.rename(claim.path, target)
        except FileNotFoundError:
            return None
        return ClaimFile(claim.job_id, self.token, target)

    def release(self, claim: ClaimFile) -> bool:
        """Return the job to ``incoming/`` (its sidecar first, so the job never waits without it)."""
        queue = self.queue
        with contextlib.suppress(FileNotFoundError):
            os.rename(
                queue.sidecar_path(PROCESSING, claim.job_id), queue.sidecar_path(INCOMING, claim.job_id)
            )
        try:
            os.rename(claim.path, queue.job_path(INCOMING, claim.job_id))
        except FileNotFoundError:
            return False
        return True

    def forget(self, claim: ClaimFile) -> None:
        """After the result is written: remove the claim, the sidecar and the attempt history.

        A directory swapped in under one of these names stays (lease keeping quarantines it).
        """
        queue = self.queue
        for path in (
            claim.path,
            queue.sidecar_path(PROCESSING, claim.job_id),
            queue.sidecar_path(INCOMING, claim.job_id),
            queue.attempts_path(claim.job_id),
        ):
            with contextlib.suppress(FileNotFoundError, IsADirectoryError):
                path.unlink()

    def all(self) -> list[ClaimFile]:
        folder = self.queue.folder(PROCESSING)
        found = (parse_claim(folder / name) for name in self.queue.file_names(PROCESSING))
        return [claim for claim in found if claim is not None]

    def expired(self, lease_s: float, now: float | None = None) -> list[ClaimFile]:
        """Claims whose lease ran out: neither taken nor renewed for ``lease_s``."""
        cutoff = (self.queue.file_clock() if now is None else now) - lease_s
        return [
            claim for claim in self.all() if (clock := claim.lease_clock()) is not None and clock < cutoff
        ]


def _touch(path: Path) -> None:
    os.utime(path)  # sets the ctime, the lease clock (on a shared filesystem: by the server's clock)

"""Claims and leases on jobs in ``processing/``.

A claim is an atomic rename ``incoming/<id>.txt`` → ``processing/<id>.claim-<token>.txt``; ``token``
names the consumer process that holds it (its instance token, logged at start). The lease is the claim
file's modification time: the holder touches it while the LLM call runs, and a claim untouched for
``lease_s`` has expired — any consumer, or cleanup, may then take it over. Finishing starts with
another rename, to ``<id>.claim-<token>.done`` (the commit): it succeeds only while the claim is still
ours, so a holder whose lease was taken over can never file a second result.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from shared.queue import CLAIM_NAME, INCOMING, JOB_SUFFIX, PROCESSING, FileQueue, is_job_name

COMMITTED = "done"


def new_token() -> str:
    return secrets.token_hex(4)


@dataclass(frozen=True)
class ClaimFile:
    job_id: str
    token: str | None  # None: a claim without owner (an older layout's plain ``<id>.txt``)
    committed: bool
    path: Path

    def modified(self) -> float | None:
        try:
            return self.path.stat().st_mtime
        except FileNotFoundError:
            return None


def parse_claim(path: Path) -> ClaimFile | None:
    match = CLAIM_NAME.match(path.name)
    if match:
        return ClaimFile(match["job"], match["token"], match["state"] == COMMITTED, path)
    if is_job_name(path.name):
        return ClaimFile(path.name[: -len(JOB_SUFFIX)], None, False, path)
    return None


class Claims:
    """The claim operations of one consumer process (``token``) on a queue."""

    def __init__(self, queue: FileQueue, token: str) -> None:
        self.queue = queue
        self.token = token

    def path(self, job_id: str, *, committed: bool = False) -> Path:
        state = COMMITTED if committed else "txt"
        return self.queue.folder(PROCESSING) / f"{job_id}.claim-{self.token}.{state}"

    def take(self, job_id: str) -> ClaimFile | None:
        """Claim a waiting job; exactly one caller wins. The lease starts now."""
        target = self.path(job_id)
        try:
            os.rename(self.queue.job_path(INCOMING, job_id), target)
        except FileNotFoundError:
            return None
        _touch(target)
        with contextlib.suppress(FileNotFoundError):
            os.rename(self.queue.sidecar_path(INCOMING, job_id), self.queue.sidecar_path(PROCESSING, job_id))
        return ClaimFile(job_id, self.token, False, target)

    def renew(self, claim: ClaimFile) -> bool:
        """Extend the lease; False when the claim is gone (taken over after our lease expired)."""
        try:
            _touch(claim.path)
        except FileNotFoundError:
            return False
        return True

    def commit(self, claim: ClaimFile) -> ClaimFile | None:
        """Mark the claim as finishing; None when it is no longer ours."""
        target = self.path(claim.job_id, committed=True)
        try:
            os.rename(claim.path, target)
        except FileNotFoundError:
            return None
        return ClaimFile(claim.job_id, self.token, True, target)

    def take_over(self, claim: ClaimFile) -> ClaimFile | None:
        """Move someone else's (expired) claim to our name; None when another took it first.

        The lease restarts before the rename (which keeps the file's time), so no other recoverer ever
        sees our new claim as expired.
        """
        target = self.path(claim.job_id)
        try:
            _touch(claim.path)
            os.rename(claim.path, target)
        except FileNotFoundError:
            return None
        return ClaimFile(claim.job_id, self.token, False, target)

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
        """After the result is written: remove the claim, the sidecar and the attempt history."""
        queue = self.queue
        for path in (
            claim.path,
            queue.sidecar_path(PROCESSING, claim.job_id),
            queue.sidecar_path(INCOMING, claim.job_id),
            queue.attempts_path(claim.job_id),
        ):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def all(self) -> list[ClaimFile]:
        folder = self.queue.folder(PROCESSING)
        found = (parse_claim(folder / name) for name in self.queue.file_names(PROCESSING))
        return [claim for claim in found if claim is not None]

    def expired(self, lease_s: float, now: float | None = None) -> list[ClaimFile]:
        """Claims (committed or not) whose lease ran out: nobody touched them for ``lease_s``."""
        cutoff = (time.time() if now is None else now) - lease_s
        return [
            claim for claim in self.all() if (modified := claim.modified()) is not None and modified < cutoff
        ]


def _touch(path: Path) -> None:
    now = time.time()  # our clock, not the file server's: hosts sharing a queue keep clocks in sync
    os.utime(path, (now, now))

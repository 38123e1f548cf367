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
Every operation says whose fault a failure is (:mod:`shared.queue.faults`): a claim that is gone is
None or False, a :class:`FileFault` is the job file's, a :class:`QueueFault` the queue's.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from shared.config import DEFAULT_MAX_HEADER_BYTES
from shared.names import job_id_problem, name_problem
from shared.queue.faults import FilePath, fault, file_fault, on_file, renamed
from shared.queue.folders import CLAIM_NAME, INCOMING, JOB_SUFFIX, PROCESSING, is_job_name
from shared.queue.intake import UnreadableFile, claimed_job_id, read_bounded
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
        """When the lease was last started or renewed (a rename or a touch sets the ctime); None when the
        claim is gone or cannot be looked at now (then it is not judged expired)."""
        try:
            return self.path.stat().st_ctime
        except OSError:
            return None


def parse_claim(path: Path) -> ClaimFile | None:
    """The claim a file in ``processing/`` is; None for anything else — names that break the name rule
    included (never claimed by this version: such files are quarantined, see :func:`scan_jobs`)."""
    if name_problem(path.name) is not None or not is_job_name(path.name):
        return None
    job_id = claimed_job_id(path.name)
    if job_id_problem(job_id) is not None:
        return None
    match = CLAIM_NAME.match(path.name)
    return ClaimFile(job_id, match["token"] if match else None, path)


@dataclass(frozen=True)
class Taken:
    """An expired claim to recover: its file, and whose it was and when it was last renewed before it
    was taken over (``claim`` is ours already when a fault interrupted an earlier recovery)."""

    claim: ClaimFile
    last_renewed: float | None
    holder: str

    @classmethod
    def expired(cls, claim: ClaimFile) -> Taken:
        holder = f"claim {claim.token}" if claim.token else "unknown holder"
        return cls(claim, claim.lease_clock(), holder)


class Claims:
    """The claim operations of one consumer process (``token``) on a queue."""

    def __init__(self, queue: FileQueue, token: str) -> None:
        self.queue = queue
        self.token = token
        self._adopted: dict[str, Taken] = {}  # taken over, recovery not finished (a fault came between)

    def adopt(self, taken: Taken, ours: ClaimFile) -> None:
        """``ours`` is the claim ``taken`` over; until :meth:`settled` a fault may interrupt its recovery."""
        self._adopted[ours.job_id] = Taken(ours, taken.last_renewed, taken.holder)

    def settled(self, job_id: str) -> None:
        self._adopted.pop(job_id, None)

    def adopted(self) -> list[Taken]:
        """Claims taken over whose recovery a fault interrupted: to be finished first."""
        return list(self._adopted.values())

    def path(self, job_id: str) -> Path:
        return self.queue.folder(PROCESSING) / self.queue.file_name(
            job_id, f".claim-{self.token}{JOB_SUFFIX}"
        )

    def take(self, job_id: str) -> ClaimFile | None:
        """Claim a waiting job; exactly one caller wins. The lease starts now. None when it is gone."""
        target = self.path(job_id)
        if not renamed("claim", self.queue.job_file(INCOMING, job_id), target):
            return None
        self._move_sidecar(job_id, INCOMING, PROCESSING)
        return ClaimFile(job_id, self.token, target)

    def _move_sidecar(self, job_id: str, origin: str, destination: str) -> None:
        """Move the job's sidecar along, if it has one (a job of the original layout; usually none)."""
        source = self.queue.sidecar_file(origin, job_id)
        try:
            os.rename(source, self.queue.sidecar_file(destination, job_id))
        except FileNotFoundError:
            return
        except OSError as error:
            raise fault("move metadata", source, error) from error

    def read_job(
        self, claim: ClaimFile, max_bytes: int, max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES
    ) -> Job:
        """The claimed job, with the metadata of its sidecar (original layout) if it has one.

        Both files are read bounded (:func:`read_bounded`): no symlink followed, no FIFO waited on, no
        more than ``max_bytes`` + 1 read. Raises ``FileNotFoundError`` when the claim is gone,
        ``JobFileError`` for a malformed job, :class:`FileFault` or :class:`QueueFault` when it cannot be
        read; an unreadable sidecar is ignored.
        """
        try:
            sidecar: bytes | None = read_bounded(self.queue.sidecar_file(PROCESSING, claim.job_id), max_bytes)
        except (OSError, UnreadableFile):
            sidecar = None
        try:
            with on_file("read", claim.path):
                raw = read_bounded(claim.path, max_bytes)
        except UnreadableFile as exc:
            raise JobFileError(f"job file is {exc}") from None
        return parse_job(claim.job_id, raw, max_bytes, sidecar, max_header_bytes=max_header_bytes)

    def renew(self, claim: ClaimFile) -> bool:
        """Extend the lease; False when the claim is gone (taken over after our lease expired)."""
        try:
            with on_file("renew a lease", claim.path):
                _touch(claim.path)
        except FileNotFoundError:
            return False
        return True

    def take_over(self, claim: ClaimFile) -> ClaimFile | None:
        """Move someone else's (expired) claim to our name; None when another took it first.

        The rename restarts the lease clock, so no other recoverer sees our new claim as expired.
        """
        target = self.path(claim.job_id)
        if not renamed("take over a claim", claim.path, target):
            return None
        return ClaimFile(claim.job_id, self.token, target)

    def release(self, claim: ClaimFile) -> bool:
        """Return the job to ``incoming/`` (its sidecar first, so the job never waits without it)."""
        self._move_sidecar(claim.job_id, PROCESSING, INCOMING)
        return renamed("release", claim.path, self.queue.job_path(INCOMING, claim.job_id))

    def forget(self, claim: ClaimFile) -> None:
        """After the result is written: remove the claim, the sidecar and the attempt history.

        A directory swapped in under one of these names stays (lease keeping quarantines it).
        :class:`QueueFault` when they cannot be removed now: the next drain removes the claim of a job
        whose result exists.
        """
        queue = self.queue
        for path in (
            claim.path,
            queue.sidecar_file(PROCESSING, claim.job_id),
            queue.sidecar_file(INCOMING, claim.job_id),
            queue.attempts_file(claim.job_id),
        ):
            _remove(path)

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


def _remove(path: FilePath) -> None:
    """Remove a file of a finished job if it is there (usually it is not: no context managers here, this
    runs four times per job); a name the filesystem refuses stays, a folder that fails is the queue's."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        return
    except OSError as error:
        file_fault("remove a finished claim", path, error)  # a name the filesystem refuses stays


def _touch(path: Path) -> None:
    os.utime(path)  # sets the ctime, the lease clock (on a shared filesystem: by the server's clock)

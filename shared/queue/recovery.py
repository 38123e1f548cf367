"""Taking over expired claims: the job goes back to ``incoming/`` with the attempt counted, or — after
``max_attempts`` — to ``error/`` as ``failed`` with its whole attempt history.

This is the one recovery; it has two callers, and both must stay. Every consumer runs it every third of
``queue.lease_s``, so a job whose consumer died waits minutes, not until cleanup's (daily) tick. Cleanup
runs it on its tick because consumers may be gone: a claim of a consumer that was removed from the
configuration, or of the last one running, would otherwise stay in ``processing/`` for good. Two of them
racing for the same claim is safe: the take-over is a rename, so exactly one wins and only the winner
counts the attempt.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, Literal, get_args

from shared.queue.claims import ClaimFile, Claims, Taken
from shared.queue.faults import FileFault, QueueFault
from shared.queue.folders import ERROR
from shared.queue.intake import Quarantined
from shared.queue.jobfile import JobFileError
from shared.queue.results import Attempt, JobResult, counted_failures, job_meta, load_history
from shared.timing import utc_now

log = logging.getLogger(__name__)

MAX_JOB_BYTES_FOR_RECORD = 4 * 1024 * 1024


RecoveryOutcome = Literal["released", "failed", "finished"]  # finished: its result existed already
RECOVERY_OUTCOMES: Final = get_args(RecoveryOutcome)


@dataclass(frozen=True)
class Recovered:
    job_id: str
    outcome: RecoveryOutcome
    attempt: int
    reason: str
    quarantined: Quarantined | None = None  # its attempt history was broken and moved aside


def recover_expired(
    claims: Claims, lease_s: float, max_attempts: int, now: float | None = None
) -> list[Recovered]:
    """Handle every claim in ``processing/`` whose lease expired; returns what happened to each.

    When the queue cannot be written the pass stops: :class:`QueueFault` if nothing was done yet,
    otherwise what was done (the next pass meets the fault at once). A claim taken over before the
    fault is finished by the next pass (:meth:`Claims.adopted`), its attempt counted once. A claim that
    cannot be handled for its own sake is left for the next pass; the others go on.
    """
    done: list[Recovered] = []
    for taken in _to_recover(claims, lease_s, now):
        try:
            recovered = _recover_one(claims, taken, lease_s, max_attempts)
        except QueueFault:
            if done:
                return done
            raise
        except FileFault as exc:
            log.warning("job %s: its expired claim cannot be taken over now: %s", taken.claim.job_id, exc)
            continue
        except Exception:  # one bad claim must not end lease keeping for the others
            log.exception(
                "job %s: recovering its expired claim failed; tried again later", taken.claim.job_id
            )
            continue
        if recovered is not None:
            done.append(recovered)
    return done


def _to_recover(claims: Claims, lease_s: float, now: float | None) -> list[Taken]:
    """Claims taken over earlier whose recovery a fault interrupted, then every expired claim of others
    (ours are alive: this process runs; a restarted consumer has a new token)."""
    expired = (claim for claim in claims.expired(lease_s, now) if claim.token != claims.token)
    return [*claims.adopted(), *(Taken.expired(claim) for claim in expired)]


def _recover_one(claims: Claims, taken: Taken, lease_s: float, max_attempts: int) -> Recovered | None:
    queue, claim = claims.queue, taken.claim
    ours = claims.take_over(claim) if claim.token != claims.token else claim
    if ours is None or ours.lease_clock() is None:
        claims.settled(claim.job_id)
        return None  # another consumer (or cleanup) was faster
    claims.adopt(taken, ours)
    if queue.result_path(claim.job_id) is not None:
        claims.forget(ours)
        claims.settled(claim.job_id)
        return Recovered(claim.job_id, "finished", 0, "result existed; leftover claim removed")
    loaded = load_history(queue, claim.job_id)
    holder = taken.holder
    reason = f"lease expired: {holder} did not renew it for {lease_s:g}s"
    attempt = Attempt(
        number=len(loaded.attempts) + 1,
        owner=holder,
        started_at=datetime.fromtimestamp(taken.last_renewed or 0, UTC),
        finished_at=utc_now(),
        outcome="lease_expired",
        error=reason,
    )
    history = _with_attempt(loaded.attempts, attempt)
    if counted_failures(history) >= max_attempts:
        recovered = _file_failed(claims, ours, history, reason, loaded.quarantined)
    else:
        queue.write_attempts(claim.job_id, [entry.model_dump(mode="json") for entry in history])
        claims.release(ours)
        number = history[-1].number
        log.warning("job %s: %s; back in incoming/ (attempt %d)", claim.job_id, reason, number)
        recovered = Recovered(claim.job_id, "released", number, reason, loaded.quarantined)
    claims.settled(claim.job_id)
    return recovered


def _with_attempt(history: list[Attempt], attempt: Attempt) -> list[Attempt]:
    """``history`` with ``attempt`` added, unless a pass that a fault interrupted wrote it already."""
    last = history[-1] if history else None
    if last is not None and (last.outcome, last.owner, last.started_at) == (
        attempt.outcome,
        attempt.owner,
        attempt.started_at,
    ):
        return history
    return [*history, attempt]


def _file_failed(
    claims: Claims, claim: ClaimFile, history: list[Attempt], last: str, quarantined: Quarantined | None
) -> Recovered | None:
    queue = claims.queue
    reason = f"gave up after {counted_failures(history)} failed attempts; last: {last}"
    try:
        job = claims.read_job(claim, MAX_JOB_BYTES_FOR_RECORD)
    except (JobFileError, OSError, FileFault):
        job = None
    record = JobResult(
        job_id=claim.job_id,
        status="failed",
        reason=reason,
        prompt=job.prompt if job else None,
        meta=job_meta(job),
        attempts=history,
        created_at=job.meta.created if job else None,
    )
    queue.write_result(ERROR, claim.job_id, record.encoded(), fsync=True)
    claims.forget(claim)
    log.warning("job %s failed: %s", claim.job_id, reason)
    return Recovered(claim.job_id, "failed", history[-1].number, reason, quarantined)

"""Claims and leases on real files: one winner per claim, renewal, take-over, recovery.

The lease clock is a claim file's ctime, which only the kernel sets; tests move "now" forward instead.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

from shared.queue import (
    ERROR,
    INCOMING,
    PROCESSED,
    PROCESSING,
    Claims,
    FileQueue,
    JobMeta,
    new_token,
    parse_claim,
    recover_expired,
)
from tests.support.records import attempts_written

LEASE_S = 60.0
META = JobMeta(topic="Katzen", category="harmlos", style="casual")


def later() -> float:
    """A moment when every lease taken so far has expired."""
    return time.time() + LEASE_S + 1


def test_two_threads_racing_claim_each_job_exactly_once(queue: FileQueue) -> None:
    ids = [queue.add_job(f"prompt {index}", JobMeta()) for index in range(200)]
    start = threading.Barrier(2)
    won: dict[str, list[str]] = {"a": [], "b": []}

    def claim_all(name: str, order: list[str]) -> None:
        claims = Claims(queue, new_token())
        start.wait()
        won[name].extend(job_id for job_id in order if claims.take(job_id) is not None)

    threads = [
        threading.Thread(target=claim_all, args=("a", ids)),
        threading.Thread(target=claim_all, args=("b", list(reversed(ids)))),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not set(won["a"]) & set(won["b"])
    assert sorted(won["a"] + won["b"]) == sorted(ids)
    assert queue.count(INCOMING) == 0
    assert sorted(queue.job_ids(PROCESSING)) == sorted(ids)


def test_a_claim_names_its_holder_starts_a_lease_and_moves_the_sidecar(queue: FileQueue) -> None:
    job_id = queue.add_job("prompt", META)
    os.utime(queue.job_path(INCOMING, job_id), (1, 1))  # an old job: the lease must start at the claim
    queue.sidecar_path(INCOMING, job_id).write_text('{"topic": "x"}', encoding="utf-8")
    claims = Claims(queue, "a1b2c3d4")

    claim = claims.take(job_id)
    assert claim is not None and claims.take(job_id) is None
    assert claim.path.name == f"{job_id}.claim-a1b2c3d4.txt"
    assert parse_claim(claim.path) == claim
    assert claims.expired(LEASE_S, now=time.time() + LEASE_S - 5) == []
    assert claims.expired(LEASE_S, now=later()) == [claim]
    assert queue.sidecar_path(PROCESSING, job_id).exists()
    assert claims.expired(LEASE_S) == []

    assert claims.release(claim) is True and claims.release(claim) is False
    assert sorted(queue.job_ids(INCOMING)) == [job_id] and queue.sidecar_path(INCOMING, job_id).exists()


def test_renewal_keeps_a_claim_alive_and_reports_a_lost_one(queue: FileQueue) -> None:
    claims = Claims(queue, new_token())
    claim = claims.take(queue.add_job("prompt", META))
    assert claim is not None
    renewed_at = time.time()
    assert claims.expired(LEASE_S, now=later()) == [claim]
    assert claims.renew(claim) is True
    assert claims.expired(LEASE_S, now=renewed_at + LEASE_S - 1) == []
    claim.path.unlink()
    assert claims.renew(claim) is False


def test_a_slow_holder_and_the_one_that_took_over_file_one_result(queue: FileQueue) -> None:
    slow, rival = Claims(queue, new_token()), Claims(queue, new_token())
    job_id = queue.add_job("prompt", META)
    claim = slow.take(job_id)
    assert claim is not None
    taken = rival.take_over(claim)
    assert taken is not None and taken.token == rival.token
    assert slow.renew(claim) is False  # the slow holder learns its lease is gone
    assert queue.write_result(PROCESSED, job_id, {"by": "rival"}) is True
    assert queue.write_result(PROCESSED, job_id, {"by": "slow"}) is False
    assert queue.write_result(ERROR, job_id, {"by": "slow"}) is False


def test_recovery_returns_an_expired_claim_with_the_attempt_counted(queue: FileQueue) -> None:
    dead, alive = Claims(queue, new_token()), Claims(queue, new_token())
    job_id = queue.add_job("prompt", META)
    claim = dead.take(job_id)
    assert claim is not None
    assert recover_expired(alive, LEASE_S, max_attempts=3) == []  # not expired yet

    recovered = recover_expired(alive, LEASE_S, max_attempts=3, now=later())
    assert [(r.job_id, r.outcome, r.attempt) for r in recovered] == [(job_id, "released", 1)]
    assert sorted(queue.job_ids(INCOMING)) == [job_id] and queue.count(PROCESSING) == 0
    [attempt] = attempts_written(queue, job_id)
    assert attempt["outcome"] == "lease_expired" and dead.token in attempt["owner"]


def test_recovery_never_takes_the_recoverers_own_claims(queue: FileQueue) -> None:
    claims = Claims(queue, new_token())
    claim = claims.take(queue.add_job("prompt", META))
    assert claim is not None
    assert recover_expired(claims, LEASE_S, max_attempts=3, now=later()) == []
    assert claim.path.exists()


def test_after_max_attempts_an_expired_job_is_filed_as_failed_with_its_history(queue: FileQueue) -> None:
    recoverer = Claims(queue, new_token())
    job_id = queue.add_job("prompt", META)
    for attempt in (1, 2):
        claim = Claims(queue, new_token()).take(job_id)
        assert claim is not None
        [recovered] = recover_expired(recoverer, LEASE_S, max_attempts=2, now=later())
        assert (recovered.outcome, recovered.attempt) == (("released", 1) if attempt == 1 else ("failed", 2))

    record = json.loads((queue.folder(ERROR) / f"{job_id}.json").read_text(encoding="utf-8"))
    assert record["status"] == "failed" and "lease expired" in record["reason"]
    assert record["prompt"] == "prompt" and record["meta"]["topic"] == "Katzen"
    assert [a["outcome"] for a in record["attempts"]] == ["lease_expired", "lease_expired"]
    assert queue.count(INCOMING) == queue.count(PROCESSING) == 0
    assert not queue.attempts_path(job_id).exists()


def test_a_leftover_claim_of_a_finished_job_is_just_removed(queue: FileQueue) -> None:
    dead = Claims(queue, new_token())
    job_id = queue.add_job("prompt", META)
    claim = dead.take(job_id)
    assert claim is not None
    queue.write_result(PROCESSED, job_id, {"job_id": job_id, "status": "passed"})
    [recovered] = recover_expired(Claims(queue, new_token()), LEASE_S, max_attempts=3, now=later())
    assert recovered.outcome == "finished"
    assert queue.count(PROCESSING) == queue.count(INCOMING) == 0
    assert queue.counts()[PROCESSED] == 1


def test_two_recoverers_racing_count_the_attempt_once(queue: FileQueue) -> None:
    lease_s = 0.5  # real time here: a taken-over claim must look fresh to the other recoverer
    ids = [queue.add_job(f"prompt {index}", META) for index in range(100)]
    dead = Claims(queue, new_token())
    assert all(dead.take(job_id) is not None for job_id in ids)
    time.sleep(lease_s + 0.1)  # the scenario: the holder died and its leases ran out
    start = threading.Barrier(2)
    results: list[int] = []

    def recover() -> None:
        start.wait()
        results.append(len(recover_expired(Claims(queue, new_token()), lease_s, max_attempts=3)))

    threads = [threading.Thread(target=recover) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sum(results) == len(ids)
    assert sorted(queue.job_ids(INCOMING)) == sorted(ids)
    assert all(len(attempts_written(queue, job_id)) == 1 for job_id in ids)


def test_results_are_created_exclusively(queue: FileQueue) -> None:
    assert queue.write_result(PROCESSED, "j", {"n": 1}, fsync=True) is True
    assert queue.write_result(ERROR, "j", {"n": 2}) is False
    assert queue.write_atomic(queue.folder(PROCESSED) / "j.json", b"{}", exclusive=True) is False
    assert json.loads((queue.folder(PROCESSED) / "j.json").read_text(encoding="utf-8")) == {"n": 1}
    assert list(queue.folder(".tmp").iterdir()) == []


def test_leases_are_judged_by_the_file_clock_and_its_probe_leaves_nothing(queue: FileQueue) -> None:
    """The file clock is a fresh file's ctime (on NFS: the server's clock), the clock of every lease."""
    claims = Claims(queue, new_token())
    claim = claims.take(queue.add_job("prompt", META))
    assert claim is not None
    clock = queue.file_clock()
    lease_clock = claim.lease_clock()
    assert lease_clock is not None and lease_clock <= clock
    assert not list(queue.folder(".tmp").iterdir())
    assert claims.expired(LEASE_S) == []  # judged against the file clock: just taken
    os.utime(claim.path, (clock - LEASE_S - 5, clock - LEASE_S - 5))  # mtime only: the ctime is now
    assert claims.expired(LEASE_S) == []


def test_the_file_clock_falls_back_to_the_local_clock_without_a_staging_folder(tmp_path: Path) -> None:
    before = time.time()
    assert before <= FileQueue(tmp_path / "nowhere").file_clock() <= time.time()

"""The typed reader of result files: what it accepts, and the precise reason for each file it refuses."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from shared.queue import RESULT_PROBLEMS, JobResult, ResultFileError, ResultProblem
from tests.support.records import result_record, score_record

MAX_BYTES = 64 * 1024


def write(folder: Path, name: str, content: Any) -> Path:
    path = folder / name
    path.write_bytes(content if isinstance(content, bytes) else json.dumps(content).encode())
    return path


def refusal(path: Path, max_bytes: int = MAX_BYTES) -> ResultFileError:
    with pytest.raises(ResultFileError) as refused:
        JobResult.load(path, max_bytes=max_bytes)
    return refused.value


def test_a_result_written_as_the_model_reads_back_as_the_same_model(tmp_path: Path) -> None:
    record = JobResult.model_validate(
        result_record(
            "20251206T140000123456Z-3fa2c1",
            "passed",
            97,
            meta={"category": "harmlos", "style": "casual", "generation": 3},
            response="1. Σ-DRIFTGRADIENT: abrupt",
            fields={"sigma_drift": "abrupt"},
            threshold=90,
            scorer="syntx-2",
            attempts=[
                {
                    "number": 1,
                    "owner": "consumer.sigma@host:1",
                    "started_at": "2025-12-06T14:00:00+00:00",
                    "finished_at": "2025-12-06T14:00:01.5+00:00",
                    "llm_seconds": 1.5,
                    "outcome": "answered",
                }
            ],
        )
    )
    path = tmp_path / "20251206T140000123456Z-3fa2c1.json"
    path.write_bytes(record.encoded())
    assert JobResult.load(path, max_bytes=MAX_BYTES) == record


def test_a_result_s_meta_reads_as_the_job_s_and_is_written_as_it_was(tmp_path: Path) -> None:
    meta = {"topic": "Katzen", "sequence": 4, "created": "2025-12-06T14:00:00Z", "retry_of": "job-0"}
    path = write(tmp_path, "job-1.json", result_record("job-1", "passed", 96, meta=meta))
    result = JobResult.load(path, max_bytes=MAX_BYTES)
    assert (result.meta.topic, result.meta.sequence, result.meta.category) == ("Katzen", 4, None)
    assert json.loads(result.encoded())["meta"] == meta


GOOD = result_record("job-1", "passed", 96, meta={"category": "harmlos", "style": "casual"})


def altered(**changes: Any) -> dict[str, Any]:
    return {**GOOD, **changes}


@pytest.mark.parametrize(
    ("content", "reason", "detail"),
    [
        (
            altered(score={**score_record(96), "total": 1_000_000_000}),
            "score_out_of_range",
            "score.total = 1000000000",
        ),
        (altered(score={**score_record(96), "total": -3}), "score_out_of_range", "score.total = -3"),
        (
            altered(score={**score_record(96), "structure": 250.0}),
            "score_out_of_range",
            "score.structure = 250.0",
        ),
        (altered(status="excellent"), "unknown_status", "unknown status: status = 'excellent'"),
        (
            altered(job_id="someone-else"),
            "job_id_mismatch",
            "job id 'someone-else' does not match the file name",
        ),
        (altered(score=None), "unknown_scorer", "no known scorer: a passed result without a score"),
        (altered(score=score_record(96, scorer="v99")), "unknown_scorer", "scorer ['v99'] is unknown"),
        (altered(scorer="homegrown"), "unknown_scorer", "scorer ['homegrown'] is unknown"),
        (altered(score={**score_record(96), "total": "96"}), "invalid_field", "score.total = '96'"),
        (altered(threshold="90"), "invalid_field", "threshold = '90'"),
        (altered(meta="harmlos"), "invalid_field", "meta = 'harmlos'"),
        (altered(attempts=[{"number": "one"}]), "invalid_field", "attempts.0.number = 'one'"),
        (altered(version=2), "not_a_result", "not a result: version"),
        (
            {"status": "passed", "score": score_record(96)},
            "not_a_result",
            "not a result: job_id: Field required",
        ),
        (["job-1", "passed"], "not_a_result", "not a result: the file"),
        (
            b'{"job_id": "job-1", "status": "pas',
            "not_json",
            "result file is not valid JSON: EOF while parsing",
        ),
        (b"\xff\xfe\x00binary", "not_json", "result file is not valid JSON: "),
        (b"", "not_json", "result file is not valid JSON: "),
    ],
)
def test_each_refused_file_gets_its_precise_reason(
    tmp_path: Path, content: Any, reason: ResultProblem, detail: str
) -> None:
    error = refusal(write(tmp_path, "job-1.json", content))
    assert error.reason == reason
    assert detail in error.detail
    assert "\n" not in error.detail


def test_refused_reasons_are_the_documented_label_set() -> None:
    assert RESULT_PROBLEMS == (
        "unreadable",
        "too_large",
        "not_json",
        "not_a_result",
        "invalid_field",
        "score_out_of_range",
        "unknown_status",
        "unknown_scorer",
        "job_id_mismatch",
    )


def test_a_file_over_the_cap_is_refused_before_it_is_parsed(tmp_path: Path) -> None:
    record = altered(response="x" * 5000)
    path = write(tmp_path, "job-1.json", record)
    assert JobResult.load(path, max_bytes=path.stat().st_size).response == "x" * 5000
    error = refusal(path, max_bytes=path.stat().st_size - 1)
    assert (error.reason, error.detail) == (
        "too_large",
        f"result file is larger than {path.stat().st_size - 1} bytes",
    )


def test_a_huge_file_is_refused_without_reading_it_whole(tmp_path: Path) -> None:
    path = tmp_path / "job-1.json"
    with path.open("wb") as handle:  # sparse: 8 GiB of nothing that a whole read would try to hold
        handle.truncate(8 * 1024**3)
    assert refusal(path).reason == "too_large"


def test_a_symlink_a_fifo_and_a_directory_are_not_read(tmp_path: Path) -> None:
    target = write(tmp_path, "elsewhere.json", GOOD)
    (tmp_path / "job-1.json").symlink_to(target)
    link = refusal(tmp_path / "job-1.json")
    assert (link.reason, link.detail) == ("unreadable", "result file cannot be read: it is a symbolic link")
    os.mkfifo(tmp_path / "fifo.json")
    fifo = refusal(tmp_path / "fifo.json")  # would block for ever if it were opened for a plain read
    assert (fifo.reason, fifo.detail) == ("unreadable", "result file is not a regular file")
    (tmp_path / "dir.json").mkdir()
    assert refusal(tmp_path / "dir.json").reason == "unreadable"


def test_a_missing_file_is_not_a_refusal(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        JobResult.load(tmp_path / "gone.json", max_bytes=MAX_BYTES)


def test_a_copy_under_another_name_or_behind_a_symlink_is_read_by_load_copy(tmp_path: Path) -> None:
    path = write(tmp_path, "copied answer.json", GOOD)
    (tmp_path / "link.json").symlink_to(path)
    assert JobResult.load_copy(path, max_bytes=MAX_BYTES).job_id == "job-1"
    assert JobResult.load_copy(tmp_path / "link.json", max_bytes=MAX_BYTES).job_id == "job-1"
    assert refusal(path).reason == "job_id_mismatch"
    with pytest.raises(ResultFileError) as refused:
        JobResult.load_copy(write(tmp_path, "bad.json", altered(status="great")), max_bytes=MAX_BYTES)
    assert refused.value.reason == "unknown_status"

"""The one rule for names from outside (shared/names.py): ids that could escape the queue or outgrow a
file name are refused, whatever reaches them (a file name, an event, a request, the command line)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from shared.names import (
    ID_SUFFIX_BYTES,
    JOB_ID_MAX_BYTES,
    JobId,
    clipped,
    fitted,
    folder_name_max,
    id_max_bytes,
    job_id_problem,
    name_problem,
)
from shared.queue import (
    INCOMING,
    PROCESSED,
    QUARANTINE_NOTE_SUFFIX,
    FileQueue,
    InvalidJobId,
    quarantine_name,
    store,
)


class Carrier(BaseModel):
    job_id: JobId


@pytest.mark.parametrize(
    ("job_id", "problem"),
    [
        ("", "empty"),
        (".hidden", "starts with a dot"),
        ("../../../outside/victim", "starts with a dot"),
        ("a/../b", "contains a path separator"),
        ("a\\b", "contains a path separator"),
        ("bad\nline", "control or invisible"),
        ("x" * (JOB_ID_MAX_BYTES + 1), f"{JOB_ID_MAX_BYTES + 1} bytes long"),
        ("ä" * (JOB_ID_MAX_BYTES // 2 + 1), f"{JOB_ID_MAX_BYTES + 2} bytes long"),  # bytes, not characters
    ],
)
def test_ids_that_are_no_file_stem_are_refused(job_id: str, problem: str) -> None:
    found = job_id_problem(job_id)
    assert found is not None and problem in found
    with pytest.raises(ValidationError, match="not a job id"):
        Carrier(job_id=job_id)


def test_an_id_fits_every_name_the_queue_builds_from_it() -> None:
    longest = "x" * JOB_ID_MAX_BYTES
    assert job_id_problem(longest) is None
    assert Carrier(job_id=longest).job_id == longest
    assert len(f"{longest}.claim-0123abcd.txt".encode()) <= 255 - ID_SUFFIX_BYTES + 19
    # a filesystem with shorter names (eCryptfs: 143) gets shorter ids
    assert id_max_bytes(143) == 143 - ID_SUFFIX_BYTES
    assert job_id_problem("x" * 120, name_max=143) is not None
    assert job_id_problem("x" * 119, name_max=143) is None


def test_a_folder_knows_its_name_limit(tmp_path: Path) -> None:
    assert folder_name_max(tmp_path) >= 143


def test_a_long_text_is_clipped_with_its_length_said() -> None:
    assert clipped("abc") == "abc"
    assert clipped("x" * 70_000, 10) == "xxxxxxxxxx… (70000 characters)"


def test_a_long_name_is_cut_with_a_hash_of_the_whole() -> None:
    assert fitted("abc.txt", 10, whole=b"abc.txt") == "abc.txt"
    first, second = "x" * 300 + "a.txt", "x" * 300 + "b.txt"
    one, other = (fitted(name, 100, whole=name.encode()) for name in (first, second))
    assert len(one.encode()) <= 100 and one.startswith("x" * 70) and one.endswith(".txt")
    assert one != other  # the same beginning, told apart by the hash of the whole
    assert len(fitted("ä" * 100, 51, whole=b"").encode()) <= 51  # cut between characters, not in one


NAME_BYTES = st.binary(min_size=1, max_size=255).filter(
    lambda raw: b"/" not in raw and b"\0" not in raw and raw not in (b".", b"..")
)


@settings(max_examples=500)
@given(raw=NAME_BYTES, name_max=st.sampled_from([255, 143]))
def test_a_quarantine_name_always_fits_with_its_note_and_the_note_s_staging_name(
    raw: bytes, name_max: int
) -> None:
    """Whatever a file is called, its quarantine name, ``.<n>`` to keep it apart, its ``.why.txt`` note
    and that note's staging name ``.<8 hex>.part`` fit the filesystem's name limit, are printable and
    hold no path."""
    name = os.fsdecode(raw)
    target = quarantine_name(name, name_max)
    longest_note_staging = f"{target}.999999{QUARANTINE_NOTE_SUFFIX}.0123abcd.part"
    assert len(longest_note_staging.encode()) <= name_max
    assert name_problem(target) is None and "/" not in target and not target.startswith(".")
    assert quarantine_name(name, name_max) == target


def test_a_queue_judges_a_good_id_once_a_bad_one_every_time_and_remembers_a_bounded_number(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue = FileQueue(tmp_path / "queue")
    queue.ensure()
    judged: list[str] = []

    def judging(job_id: str, name_max: int) -> str | None:
        judged.append(job_id)
        return job_id_problem(job_id, name_max)

    monkeypatch.setattr(store, "job_id_problem", judging)
    for _ in range(3):
        assert queue.result_path("good") is None
        with pytest.raises(InvalidJobId, match="starts with a dot"):
            queue.result_in(PROCESSED, "../bad")
    assert judged == ["good", "../bad", "../bad", "../bad"]

    for number in range(store.VALID_IDS_KEPT):
        queue.job_path(INCOMING, f"other-{number}")
    judged.clear()
    queue.job_path(INCOMING, "good")
    assert judged == ["good"]  # forgotten: the memory holds at most VALID_IDS_KEPT ids

"""The file queue and the job file format, on real files."""

from __future__ import annotations

import json
import os
import threading
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from shared.queue import (
    ARCHIVE,
    ATTEMPTS,
    ERROR,
    INCOMING,
    PROCESSED,
    PROCESSING,
    QUARANTINE,
    TMP,
    FileQueue,
    JobFileError,
    JobMeta,
    ResultFolder,
    counts_as,
    new_job_id,
    parse_job,
)
from tests.support.records import attempts_written

MAX_BYTES = 4096
META = JobMeta(topic="Klimawandel", category="gesellschaft", style="kreativ", language="de", generation=3)


# -- job ids -------------------------------------------------------------------------------------


def test_job_ids_sort_by_creation_time() -> None:
    start = datetime(2025, 12, 31, 23, 59, 59, 999_998, tzinfo=UTC)
    moments = [start + timedelta(microseconds=step) for step in range(0, 5_000, 7)]
    ids = [new_job_id(moment) for moment in moments]
    assert sorted(ids) == ids
    assert ids[0].startswith("20251231T235959999998Z-")
    assert ids[-1].startswith("20260101T")


def test_job_ids_are_in_utc_whatever_the_clock_zone() -> None:
    berlin_winter = timezone(timedelta(hours=1))
    local = datetime(2025, 12, 6, 15, 0, 0, 123456, tzinfo=berlin_winter)
    assert new_job_id(local).startswith("20251206T140000123456Z-")


def test_job_ids_are_unique_and_never_go_back_in_time() -> None:
    ids = [new_job_id() for _ in range(20_000)]
    assert len(set(ids)) == len(ids)
    stamps = [job_id.split("-")[0] for job_id in ids]
    assert stamps == sorted(stamps)


# -- writing ---------------------------------------------------------------------------------------


def test_add_job_writes_through_tmp_and_renames(queue: FileQueue, monkeypatch: pytest.MonkeyPatch) -> None:
    renames: list[tuple[Path, Path]] = []
    real_replace = os.replace

    def recording_replace(source: str | os.PathLike[str], target: str | os.PathLike[str]) -> None:
        renames.append((Path(source), Path(target)))
        real_replace(source, target)

    monkeypatch.setattr(os, "replace", recording_replace)
    job_id = queue.add_job("Wie verändert Homeoffice Teams?", META)

    target = queue.job_path(INCOMING, job_id)
    assert len(renames) == 1
    assert renames[0][0].parent == queue.folder(TMP)
    assert renames[0][1] == target
    assert list(queue.folder(TMP).iterdir()) == []
    job = parse_job(job_id, target.read_bytes(), MAX_BYTES)
    assert job.prompt == "Wie verändert Homeoffice Teams?"
    assert job.meta.topic == "Klimawandel" and job.meta.generation == 3
    assert sorted(queue.job_ids(INCOMING)) == [job_id]


def test_incoming_ids_are_fifo(queue: FileQueue) -> None:
    base = datetime(2025, 12, 6, 14, 0, tzinfo=UTC)
    ids = [new_job_id(base + timedelta(seconds=offset)) for offset in (30, 10, 20)]
    for job_id in ids:
        queue.add_job("p", JobMeta(), job_id=job_id)
    assert sorted(queue.job_ids(INCOMING)) == sorted(ids)


# -- results ---------------------------------------------------------------------------------------


def test_results_are_immutable(queue: FileQueue) -> None:
    assert queue.write_result(PROCESSED, "job-1", {"status": "passed", "score": 95}) is True
    path = queue.folder(PROCESSED) / "job-1.json"
    before = path.read_bytes()

    assert queue.write_result(PROCESSED, "job-1", {"status": "passed", "score": 10}) is False
    assert queue.write_result(ERROR, "job-1", {"status": "failed"}) is False
    assert path.read_bytes() == before
    assert json.loads(before)["score"] == 95
    assert not (queue.folder(ERROR) / "job-1.json").exists()
    assert list(queue.folder(TMP).iterdir()) == []


def test_a_result_in_the_archive_also_blocks_a_second_write(queue: FileQueue) -> None:
    queue.write_result(PROCESSED, "job-2", {"status": "passed"})
    (queue.folder(PROCESSED) / "job-2.json").rename(queue.folder(ARCHIVE) / "job-2.json")
    assert queue.result_path("job-2") == queue.folder(ARCHIVE) / "job-2.json"
    assert queue.write_result(PROCESSED, "job-2", {"status": "passed"}) is False


def _race(queue: FileQueue, job_id: str) -> tuple[list[str], list[bool]]:
    """A result for ``job_id`` written into processed/ and into error/ by two threads at once; the
    folders holding one afterwards, and what each write returned."""
    start = threading.Barrier(2)
    filed: list[bool] = []

    def write(folder: ResultFolder) -> None:
        start.wait()
        filed.append(queue.write_result(folder, job_id, {"status": folder}))

    writers = [threading.Thread(target=write, args=(folder,)) for folder in (PROCESSED, ERROR)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()
    return [
        folder for folder in (PROCESSED, ERROR) if (queue.folder(folder) / f"{job_id}.json").exists()
    ], filed


def test_two_writers_racing_into_processed_and_error_leave_exactly_one_result(queue: FileQueue) -> None:
    """Both pass the first check at the same moment (two consumers finishing one job whose lease was
    taken over, one passing it, one rejecting it); without the settling step about a quarter of the
    rounds ended with a result in both folders."""
    for number in range(300):
        found, filed = _race(queue, f"race-{number}")
        assert len(found) == 1 and any(filed), (number, found, filed)
        assert found == [PROCESSED] or filed == [False, True] or filed == [True, False], (
            number,
            found,
            filed,
        )
    assert list(queue.folder(TMP).iterdir()) == []


def test_a_result_racing_one_the_producer_archived_meanwhile_yields(
    queue: FileQueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The writer into error/ checked before the other's result landed in processed/ and was archived."""
    queue.write_result(PROCESSED, "job-3", {"status": "passed"})
    queue.archive(queue.folder(PROCESSED) / "job-3.json")
    monkeypatch.setattr(queue, "result_path", lambda job_id: None)  # its first check came too early
    assert queue.write_result(ERROR, "job-3", {"status": "rejected"}) is False
    assert not (queue.folder(ERROR) / "job-3.json").exists()
    assert [path.name for path in queue.archived_results()] == ["job-3.json"]


# -- counting --------------------------------------------------------------------------------------


def test_counts_per_folder_follow_the_counting_rules(queue: FileQueue) -> None:
    files = {
        INCOMING: ["a.txt", "b.txt", "a_response.txt", ".hidden.txt", "a.json", "notes.md"],
        PROCESSING: ["c.txt", "c.json"],
        PROCESSED: ["d.json", "e.json", "d_response.txt", ".f.json"],
        ERROR: ["g.json", "g.txt"],
        ARCHIVE: ["h.json", "h.try-1.json"],
        QUARANTINE: ["broken.json", "broken.json.why.txt", ".x"],
        TMP: ["leftover.part"],
    }
    for folder, names in files.items():
        for name in names:
            (queue.folder(folder) / name).write_text("x", encoding="utf-8")

    assert queue.counts() == {
        INCOMING: 2,
        PROCESSING: 1,
        PROCESSED: 2,
        ERROR: 1,
        ARCHIVE: 2,
        QUARANTINE: 1,
        TMP: 1,
    }
    assert queue.names(INCOMING) == {"a.txt", "b.txt"}
    assert sorted(queue.job_ids(INCOMING)) == ["a", "b"]


@pytest.mark.parametrize(
    ("folder", "name", "counted"),
    [
        (INCOMING, "x.txt", True),
        (INCOMING, "x_response.txt", False),
        (INCOMING, ".x.txt", False),
        (INCOMING, "x.json", False),
        (PROCESSED, "x.json", True),
        (PROCESSED, "x_response.txt", False),
        (ERROR, ".x.json", False),
        (QUARANTINE, "x.md", True),
        (QUARANTINE, "x.md.why.txt", False),
        (TMP, "x.json.1a2b.part", True),
    ],
)
def test_counts_as(folder: str, name: str, counted: bool) -> None:
    assert counts_as(folder, name) is counted


def test_counting_a_missing_folder_is_zero(tmp_path: Path) -> None:
    assert FileQueue(tmp_path / "nowhere").count(INCOMING) == 0


# -- attempts --------------------------------------------------------------------------------------


def test_attempts_round_trip(queue: FileQueue) -> None:
    assert attempts_written(queue, "job-3") == []
    attempts = [
        {"number": 1, "outcome": "backend_error", "error": "timeout", "at": datetime(2025, 1, 1, tzinfo=UTC)},
        {"number": 2, "outcome": "released", "error": None},
    ]
    queue.write_attempts("job-3", attempts)
    assert queue.attempts_path("job-3").parent == queue.folder(ATTEMPTS)
    assert attempts_written(queue, "job-3") == [
        {**attempts[0], "at": "2025-01-01 00:00:00+00:00"},
        attempts[1],
    ]


# -- the job file ----------------------------------------------------------------------------------

HEADER_JOB = (
    "---\ntopic: Klimawandel\ncategory: gesellschaft\nstyle: kreativ\nlanguage: de\n"
    "generation: 3\ncreated: 2025-12-06T14:00:00+00:00\n---\nErkläre kreativ: Klimawandel\n"
)


def test_parse_job_with_header() -> None:
    job = parse_job("j1", HEADER_JOB.encode(), MAX_BYTES)
    assert job.job_id == "j1"
    assert job.prompt == "Erkläre kreativ: Klimawandel"
    assert job.meta.topic == "Klimawandel"
    assert job.meta.category == "gesellschaft"
    assert job.meta.style == "kreativ"
    assert job.meta.language == "de"
    assert job.meta.generation == 3
    assert job.meta.created == datetime(2025, 12, 6, 14, 0, tzinfo=UTC)


def test_parse_job_without_header_is_a_plain_prompt() -> None:
    job = parse_job("j2", "  Was ist Yoga?\n\nErkläre es.  \n".encode(), MAX_BYTES)
    assert job.prompt == "Was ist Yoga?\n\nErkläre es."
    assert job.meta == JobMeta()


def test_parse_job_with_crlf_and_bom() -> None:
    raw = "\ufeff".encode() + HEADER_JOB.replace("\n", "\r\n").encode()
    job = parse_job("j3", raw, MAX_BYTES)
    assert job.prompt == "Erkläre kreativ: Klimawandel"
    assert job.meta.generation == 3 and job.meta.topic == "Klimawandel"
    assert "\r" not in job.prompt


def test_render_and_parse_round_trip() -> None:
    from shared.queue import render_job

    meta = META.model_copy(update={"created": datetime(2025, 12, 6, 14, 0, tzinfo=UTC)})
    job = parse_job("j4", render_job("Ein Prompt: mit --- Strichen", meta).encode(), MAX_BYTES)
    assert job.meta == meta
    assert job.prompt == "Ein Prompt: mit --- Strichen"


def test_parse_job_with_sidecar_of_the_original_layout() -> None:
    sidecar = json.dumps(
        {"topic": "Katzen", "category": "harmlos", "style": "casual", "gpt_quality": 7, "filename": "x.txt"}
    ).encode()
    job = parse_job("j5", "Erkläre locker: Katzen".encode(), MAX_BYTES, sidecar=sidecar)
    assert (job.meta.topic, job.meta.category, job.meta.style) == ("Katzen", "harmlos", "casual")
    assert job.meta.model_extra == {}
    # a header in the .txt wins over the sidecar
    with_header = "---\ntopic: Hunde\n---\nErkläre: Hunde".encode()
    assert parse_job("j6", with_header, MAX_BYTES, sidecar=sidecar).meta.topic == "Hunde"


@pytest.mark.parametrize("sidecar", [b"{broken", b"[1, 2]", b"\xff\xfe"])
def test_an_unreadable_sidecar_is_ignored(sidecar: bytes) -> None:
    job = parse_job("j7", b"A prompt", MAX_BYTES, sidecar=sidecar)
    assert job.prompt == "A prompt" and job.meta == JobMeta()


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"---\ngeneration: drei\n---\nprompt", "job header field generation: "),
        (b"---\ncreated: gestern\n---\nprompt", "job header field created: "),
        (b"abc\x00def", "job file is binary (contains NUL bytes)"),
        (b"Gr\xfc\xdfe", "job file is not valid UTF-8 (byte 2)"),
        (b"", "job file holds no prompt text"),
        (b"  \n\t\n", "job file holds no prompt text"),
        (b"---\ntopic: x\n---\n\n", "job file holds no prompt text"),
        (b"---\ntopic: x\nprompt without a closing fence", "job header opened with '---' is never closed"),
        (b"---\n- a\n- b\n---\nprompt", "job header must be 'key: value' lines"),
        (b"---\ntopic: [unclosed\n---\nprompt", "job header is not valid YAML"),
    ],
)
def test_parse_job_rejects_with_a_precise_message(raw: bytes, message: str) -> None:
    with pytest.raises(JobFileError) as caught:
        parse_job("bad", raw, MAX_BYTES)
    assert str(caught.value).startswith(message)


def test_parse_job_rejects_a_generation_that_is_not_an_int_naming_the_field() -> None:
    with pytest.raises(JobFileError, match=r"^job header field generation: Input should be a valid integer"):
        parse_job("bad", b"---\ngeneration: 1.5\n---\nprompt", MAX_BYTES)


def test_parse_job_rejects_an_oversize_file() -> None:
    raw = b"x" * (MAX_BYTES + 1)
    with pytest.raises(
        JobFileError, match=rf"^job file is {MAX_BYTES + 1} bytes, over the limit of {MAX_BYTES}$"
    ):
        parse_job("big", raw, MAX_BYTES)
    assert parse_job("fits", b"x" * MAX_BYTES, MAX_BYTES).prompt == "x" * MAX_BYTES


# -- the archive's day folders ---------------------------------------------------------------------


def test_archived_results_go_into_the_folder_of_the_day_they_were_archived(queue: FileQueue) -> None:
    job_id = new_job_id(datetime(2026, 11, 29, 23, 30, tzinfo=UTC))
    queue.write_result(PROCESSED, job_id, {"status": "passed"})
    late_evening_in_berlin = datetime(2026, 11, 30, 23, 30, tzinfo=timezone(timedelta(hours=1)))

    target = queue.archive(queue.folder(PROCESSED) / f"{job_id}.json", late_evening_in_berlin)

    assert target == queue.folder(ARCHIVE) / "2026-11-30" / f"{job_id}.json"  # the UTC day
    assert queue.result_path(job_id) == target
    assert queue.write_result(PROCESSED, job_id, {"status": "passed"}) is False  # still immutable
    assert queue.count(ARCHIVE) == 1 and queue.counts()[ARCHIVE] == 1


def test_archived_results_are_listed_across_day_folders_and_the_flat_layout(queue: FileQueue) -> None:
    layout = {"2026-11-02": ["b", "c"], "2026-10-31": ["a"]}
    for day, ids in layout.items():
        for job_id in ids:
            queue.write_result(PROCESSED, job_id, {"status": "passed"})
            queue.archive(queue.folder(PROCESSED) / f"{job_id}.json", datetime.fromisoformat(f"{day}T12:00Z"))
    (queue.folder(ARCHIVE) / "old.json").write_text("{}", encoding="utf-8")  # an earlier version's file
    (queue.folder(ARCHIVE) / "not-a-day").mkdir()
    (queue.folder(ARCHIVE) / "not-a-day" / "x.json").write_text("{}", encoding="utf-8")

    listed = [path.relative_to(queue.folder(ARCHIVE)).as_posix() for path in queue.archived_results()]

    assert listed[0] == "old.json"
    assert listed[1] == "2026-10-31/a.json"
    assert sorted(listed[2:]) == ["2026-11-02/b.json", "2026-11-02/c.json"]
    assert [path.name for path in queue.result_files(ARCHIVE)] == [path.rsplit("/")[-1] for path in listed]
    assert queue.names(ARCHIVE) == {"old.json", "a.json", "b.json", "c.json"}
    assert [name for _, name in queue.archive_days()] == ["2026-10-31", "2026-11-02"]
    assert queue.result_path("old") == queue.folder(ARCHIVE) / "old.json"
    assert queue.result_path("b") == queue.folder(ARCHIVE) / "2026-11-02" / "b.json"  # id without a time


def test_an_archive_lookup_probes_only_the_days_since_the_job_was_created(
    queue: FileQueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    today = datetime(2026, 11, 30, tzinfo=UTC).date()
    for day in range(1, 31):  # a month of day folders
        (queue.folder(ARCHIVE) / f"2026-11-{day:02d}").mkdir()
    created = datetime(2026, 11, 28, 8, 0, tzinfo=UTC)
    job_id = new_job_id(created)
    (queue.folder(ARCHIVE) / "2026-11-29" / f"{job_id}.json").write_text("{}", encoding="utf-8")
    probed: list[str] = []
    real_stat = os.stat

    def counting_stat(path: str, **kwargs: Any) -> os.stat_result:
        probed.append(Path(path).parent.name)
        return real_stat(path, **kwargs)

    monkeypatch.setattr(os, "stat", counting_stat)
    assert queue.archived_path(job_id, today) == queue.folder(ARCHIVE) / "2026-11-29" / f"{job_id}.json"
    assert probed == ["archive", "2026-11-27", "2026-11-28", "2026-11-29"]

    probed.clear()
    missing = new_job_id(created)
    assert queue.archived_path(missing, today) is None
    assert probed == ["archive", "2026-11-27", "2026-11-28", "2026-11-29", "2026-11-30", "2026-12-01"]


def test_an_id_whose_time_is_no_calendar_day_is_looked_for_in_every_day_folder(queue: FileQueue) -> None:
    impossible = "20261331T120000000000Z-000001"  # month 13: made by hand, not by the producer
    (queue.folder(ARCHIVE) / "2020-01-01").mkdir()
    (queue.folder(ARCHIVE) / "2020-01-01" / f"{impossible}.json").write_text("{}", encoding="utf-8")
    assert queue.result_path(impossible) == queue.folder(ARCHIVE) / "2020-01-01" / f"{impossible}.json"


def test_a_whole_day_folder_is_removed_at_once(queue: FileQueue) -> None:
    for job_id in ("x", "y"):
        queue.write_result(ERROR, job_id, {"status": "failed"})
        queue.archive(queue.folder(ERROR) / f"{job_id}.json", datetime(2026, 1, 2, tzinfo=UTC))
    assert queue.remove_archive_day("2026-01-02") == 2
    assert queue.archive_days() == [] and queue.result_path("x") is None
    with pytest.raises(ValueError, match="not an archive day folder"):
        queue.remove_archive_day("..")

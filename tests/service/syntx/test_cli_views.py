"""``syntx logs``, ``results``, ``show``, ``status --watch``, ``run``: called as the operator calls them,
against real files, a real nats-server and real processes (follow and watch end with a real SIGINT)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from queue import Empty, Queue

import pytest

from services.monitor.app import run as run_monitor
from shared.config import CONFIG_ENV, DEFAULT_CONFIG, PROJECT_ROOT, load_settings
from shared.queue import ARCHIVE, ERROR, INCOMING, PROCESSED, Attempt, FileQueue, JobResult, Status
from shared.scoring import load_catalog, parse_response, score_response
from syntx import resultview
from syntx.since import BadSince, since_moment
from tests.support.cli import SIGMA_ANSWER, syntx
from tests.support.harness import HEARTBEATS, observer, running
from tests.support.natsserver import NatsServer
from tests.support.records import result_record

ROOT = PROJECT_ROOT
WAIT_S = 20.0
BERLIN = "+01:00"


# -- a real `syntx` process, for what ends with Ctrl-C or replaces the process -------------------------


class Cli:
    """``syntx ARGS`` as its own process; its stdout lines arrive on a queue."""

    def __init__(self, *argv: str, env: dict[str, str]) -> None:
        code = "import sys; from syntx.main import main; sys.argv[0] = 'syntx'; main()"
        self.process = subprocess.Popen(
            [sys.executable, "-c", code, *argv],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env={**os.environ, **env, "PYTHONUNBUFFERED": "1"},
        )
        self.lines: Queue[str] = Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))

    def wait_for(self, text: str) -> str:
        deadline = datetime.now(UTC) + timedelta(seconds=WAIT_S)
        while (left := (deadline - datetime.now(UTC)).total_seconds()) > 0:
            try:
                line = self.lines.get(timeout=left)
            except Empty:
                break
            if text in line:
                return line
        raise AssertionError(f"no line with {text!r} within {WAIT_S}s")

    def interrupt(self, sig: signal.Signals = signal.SIGINT) -> tuple[int, str]:
        """Ctrl-C (or ``sig``); the exit code and what came on stderr."""
        self.process.send_signal(sig)
        _out, err = self.process.communicate(timeout=WAIT_S)
        return self.process.returncode, err


@pytest.fixture
def cli_env(environment: Path) -> Iterator[dict[str, str]]:
    yield {CONFIG_ENV: str(DEFAULT_CONFIG), "SYNTX_DATA_DIR": str(environment)}


# -- logs ------------------------------------------------------------------------------------------


def log_line(minute: int, service: str, text: str) -> str:
    return f"2026-11-30T14:{minute:02d}:00.000{BERLIN} INFO    {service} x: {text}\n"


def write_logs(logs: Path) -> None:
    logs.mkdir(parents=True)
    (logs / "producer.log.2").write_text(log_line(1, "producer", "oldest"), encoding="utf-8")
    (logs / "producer.log.1").write_text(log_line(3, "producer", "older"), encoding="utf-8")
    (logs / "producer.log").write_text(
        log_line(5, "producer", "crashed")
        + "Traceback (most recent call last):\n"
        + log_line(6, "producer", "new"),
        encoding="utf-8",
    )
    (logs / "consumer.sigma.log").write_text(
        log_line(2, "consumer.sigma", "a") + log_line(4, "consumer.sigma", "b"), encoding="utf-8"
    )
    (logs / "queue_status_hourly.log").write_text("2026-11-30 14:00 | Incoming: 1\n", encoding="utf-8")


def test_logs_merges_every_service_and_rotated_file_by_time(
    environment: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_logs(environment / "logs")
    assert syntx("logs") == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(" | ", 1)[0].rstrip() for line in lines] == [
        "producer", "consumer.sigma", "producer", "consumer.sigma", "producer", "producer", "producer",
    ]  # fmt: skip
    texts = [line.rsplit(": ", 1)[-1] if " x: " in line else line.split(" | ", 1)[1] for line in lines]
    assert texts == ["oldest", "a", "older", "b", "crashed", "Traceback (most recent call last):", "new"]
    assert lines[0].startswith("producer       | 2026-11-30T14:01:00.000+01:00 ")  # padded like compose

    assert syntx("logs", "consumer.sigma", "--since", "2026-11-30T14:03") == 0
    assert [line.rsplit(": ", 1)[-1] for line in capsys.readouterr().out.splitlines()] == ["b"]


def test_logs_show_a_service_s_other_instances_beside_it_each_as_its_own_stream(
    environment: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`syntx up` runs a consumer's second and tenth instance as consumer.sigma-2 and -10, each with its
    own log file: all of them come with the service, in the order of their numbers, rotated files too."""
    logs = environment / "logs"
    write_logs(logs)
    (logs / "consumer.sigma-10.log").write_text(log_line(3, "consumer.sigma", "ten"), encoding="utf-8")
    (logs / "consumer.sigma-2.log.1").write_text(log_line(1, "consumer.sigma", "two old"), encoding="utf-8")
    (logs / "consumer.sigma-2.log").write_text(log_line(5, "consumer.sigma", "two"), encoding="utf-8")
    assert syntx("logs", "consumer.sigma") == 0
    shown = [
        (line.split(" | ", 1)[0].rstrip(), line.rsplit(": ", 1)[-1])
        for line in capsys.readouterr().out.splitlines()
    ]
    assert shown == [
        ("consumer.sigma-2", "two old"), ("consumer.sigma", "a"), ("consumer.sigma-10", "ten"),
        ("consumer.sigma", "b"), ("consumer.sigma-2", "two"),
    ]  # fmt: skip
    assert syntx("logs", "consumer.sigma-2", "--tail", "1") == 0
    assert [line.rsplit(": ", 1)[-1] for line in capsys.readouterr().out.splitlines()] == ["two"]
    assert syntx("logs") == 0
    streams = [line.split(" | ", 1)[0].rstrip() for line in capsys.readouterr().out.splitlines()]
    assert sorted(set(streams)) == ["consumer.sigma", "consumer.sigma-10", "consumer.sigma-2", "producer"]


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["logs", "nosuch"], 2, "syntx logs: unknown service 'nosuch'; name one of: scheduler, producer, "),
        (["logs", "--since", "yesterday"], 2, "syntx logs: --since 'yesterday' is neither a duration nor a "),
    ],
)
def test_logs_refuses_what_it_cannot_show(
    environment: Path, capsys: pytest.CaptureFixture[str], argv: list[str], code: int, message: str
) -> None:
    write_logs(environment / "logs")
    assert syntx(*argv) == code
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith(message)


def test_logs_before_anything_ran_says_how_to_start(
    environment: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert syntx("logs") == 1
    assert capsys.readouterr().err == (
        f"syntx logs: no log files in {environment / 'logs'} yet; start the system with `syntx up`\n"
    )


def test_logs_follow_prints_appended_lines_across_a_rotation_until_ctrl_c(
    environment: Path, cli_env: dict[str, str]
) -> None:
    logs = environment / "logs"
    write_logs(logs)
    cli = Cli("logs", "-f", "--tail", "2", "producer", env=cli_env)
    assert cli.wait_for("producer |").endswith("Traceback (most recent call last):")  # the last two lines
    cli.wait_for("new")
    with (logs / "producer.log").open("a", encoding="utf-8") as handle:
        handle.write(log_line(7, "producer", "appended"))
    assert cli.wait_for("appended").startswith("producer | ")
    (logs / "producer.log").rename(logs / "producer.log.1")  # rotated, like RotatingFileHandler does
    (logs / "producer.log").write_text(log_line(8, "producer", "after rotation"), encoding="utf-8")
    cli.wait_for("after rotation")
    code, err = cli.interrupt()
    assert (code, err) == (0, "")


def test_logs_tail_prints_the_last_lines_merged_reading_only_the_files_ends(
    environment: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    logs = environment / "logs"
    write_logs(logs)
    assert syntx("logs", "--tail", "3") == 0
    shown = [line.split(" | ", 1)[1] for line in capsys.readouterr().out.splitlines()]
    assert shown == [
        log_line(5, "producer", "crashed")[:-1],
        "Traceback (most recent call last):",
        log_line(6, "producer", "new")[:-1],
    ]
    assert syntx("logs", "-n", "2", "consumer.sigma") == 0
    assert [line.rsplit(": ", 1)[-1] for line in capsys.readouterr().out.splitlines()] == ["a", "b"]
    assert syntx("logs", "--tail", "1", "--since", "2026-11-30T14:05:00+01:00", "producer") == 0
    assert capsys.readouterr().out.endswith("new\n")
    assert syntx("logs", "--tail", "-1") == 2
    assert capsys.readouterr().err == "syntx logs: --tail -1 is negative; give 0 or more lines\n"


def test_logs_tail_of_a_file_without_newlines_costs_a_bounded_read(
    environment: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    logs = environment / "logs"
    logs.mkdir(parents=True)
    huge = logs / "producer.log"
    huge.write_text(log_line(1, "producer", "start").rstrip("\n") + "x" * 5_000_000, encoding="utf-8")
    assert syntx("logs", "--tail", "1", "producer") == 0
    [line] = capsys.readouterr().out.splitlines()
    assert line.startswith("producer | 2026-11-30T14:01:00") and len(line) < 70_000


@pytest.mark.parametrize("argv", [["logs"], ["logs", "-f"], ["results"], ["--help"]])
def test_a_closed_pipe_ends_a_command_quietly_with_exit_0(
    environment: Path, cli_env: dict[str, str], argv: list[str]
) -> None:
    """`syntx logs | head -1`: the reader went away; no traceback, exit 0 (as `cat` or `grep` would)."""
    logs = environment / "logs"
    logs.mkdir(parents=True)
    lines = "".join(log_line(minute % 60, "producer", f"line {n}") for n, minute in enumerate(range(50_000)))
    (logs / "producer.log").write_text(lines, encoding="utf-8")
    queue = FileQueue(environment / "queue")
    queue.ensure()
    for n in range(300):
        queue.write_result(
            PROCESSED,
            f"j{n}",
            a_result(f"j{n}", "passed", "sigma", datetime.now(UTC)).model_dump(mode="json"),
        )
    code = "import sys; from syntx.main import main; sys.argv[0] = 'syntx'; main()"
    syntx_process = subprocess.Popen(
        [sys.executable, "-c", code, *argv, *(["--limit", "300"] if argv == ["results"] else [])],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
        env={**os.environ, **cli_env},
    )
    assert syntx_process.stdout is not None
    syntx_process.stdout.readline()
    syntx_process.stdout.close()  # what `head -1` does after its line
    if "-f" in argv:  # like `tail -f | head -1`: the next line written finds the pipe closed
        with (logs / "producer.log").open("a", encoding="utf-8") as handle:
            handle.write(log_line(59, "producer", "appended"))
    _out, err = syntx_process.communicate(timeout=WAIT_S)
    assert (syntx_process.returncode, err) == (0, b"")


# -- results and show -----------------------------------------------------------------------------


def a_result(job_id: str, status: Status, wrapper: str, finished: datetime, **extra: object) -> JobResult:
    record = result_record(job_id, status, reason=f"because {status}", wrapper=wrapper, finished_at=finished)
    return JobResult.model_validate({**record, **extra})


def file_results(environment: Path) -> tuple[FileQueue, datetime]:
    queue = FileQueue(environment / "queue")
    queue.ensure()
    now = datetime.now(UTC)
    results = [
        a_result("j-passed", "passed", "sigma", now - timedelta(minutes=1)),
        a_result("j-rejected", "rejected", "sigma", now - timedelta(minutes=2)),
        a_result("j-failed", "failed", "syntex_system", now - timedelta(hours=3)),
        a_result("j-archived", "passed", "syntex_system", now - timedelta(days=2)),
    ]
    for result in results:
        queue.write_result(result.folder, result.job_id, result.model_dump(mode="json"))
    archived = queue.result_path("j-archived")
    assert archived is not None
    queue.archive(archived)  # into today's day folder
    (queue.folder(ERROR) / "broken.json").write_text("{not json", encoding="utf-8")
    return queue, now


def listed(out: str) -> list[str]:
    return [line.split()[0] for line in out.splitlines()[2:]]


def test_results_lists_every_folder_and_the_archive_newest_first(
    environment: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file_results(environment)
    assert syntx("results") == 0
    captured = capsys.readouterr()
    assert captured.out.splitlines()[0].split() == ["job", "status", "score", "wrapper", "finished", "reason"]
    assert listed(captured.out) == ["j-passed", "j-rejected", "j-failed", "j-archived"]
    assert captured.err == "syntx results: 1 file(s) that are not results skipped\n"

    assert syntx("results", "--status", "failed", "--status", "rejected") == 0
    assert listed(capsys.readouterr().out) == ["j-rejected", "j-failed"]
    assert syntx("results", "--wrapper", "syntex_system", "--limit", "1") == 0
    assert listed(capsys.readouterr().out) == ["j-failed"]
    assert syntx("results", "--since", "1h", "--json") == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(row["job_id"], row["status"]) for row in rows] == [
        ("j-passed", "passed"),
        ("j-rejected", "rejected"),
    ]
    assert syntx("results", "--status", "malformed") == 0
    assert capsys.readouterr().out == "no results match\n"


def test_results_read_the_archive_newest_day_first_and_stop_when_older_days_cannot_win(
    environment: Path,
) -> None:
    """A day folder holds results that finished by that day: once ``limit`` newer ones are found, older
    days are not read at all (their unreadable planted file is never counted)."""
    queue = FileQueue(environment / "queue")
    queue.ensure()
    today = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    for days_ago in range(6):
        finished = today - timedelta(days=days_ago)
        for n in range(2):
            job_id = f"j-{days_ago}-{n}"
            result = a_result(job_id, "passed", "sigma", finished - timedelta(minutes=n))
            queue.write_result(result.folder, job_id, result.model_dump(mode="json"))
            path = queue.result_path(job_id)
            assert path is not None
            queue.archive(path, finished)
    oldest_day = queue.folder(ARCHIVE) / sorted(name for _, name in queue.archive_days())[0]
    (oldest_day / "broken.json").write_text("{not json", encoding="utf-8")
    wanted = resultview.Wanted(frozenset(), None, None)

    found, unreadable = resultview.find(queue, wanted, limit=3, max_bytes=65536)
    assert [item.result.job_id for item in found] == ["j-0-0", "j-0-1", "j-1-0"]
    assert unreadable == 0  # the oldest day was never read

    found, unreadable = resultview.find(queue, wanted, limit=100, max_bytes=65536)
    assert len(found) == 12 and unreadable == 1  # with room for everything, every day is read
    since = resultview.Wanted(frozenset(), None, today - timedelta(days=1, minutes=30))
    found, unreadable = resultview.find(queue, since, limit=100, max_bytes=65536)
    assert [item.result.job_id for item in found] == ["j-0-0", "j-0-1", "j-1-0", "j-1-1"]
    assert unreadable == 0  # days that ended before --since are not read


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["results", "--limit", "0"], "syntx results: --limit 0 is too small; give 1 or more"),
        (
            ["results", "--wrapper", "nope"],
            "syntx results: unknown consumer 'nope'; name one of: sigma, syntex_system",
        ),
        (["results", "--status", "lost"], "syntx results: argument --status: invalid choice: 'lost'"),
        (
            ["show", "../x"],
            "syntx show: '../x' is not a job id (starts with a dot); `syntx results` lists them",
        ),
    ],
)
def test_results_and_show_refuse_wrong_arguments_with_exit_2(
    environment: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert syntx(*argv) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith(message)


def test_show_prints_prompt_answer_breakdown_and_attempts(
    environment: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = load_settings()
    fmt = load_catalog(settings.catalog_dirs).formats["sigma"]
    prompt = "Was passiert bei Überlast?"
    score = score_response(
        SIGMA_ANSWER, parse_response(SIGMA_ANSWER, {"sigma": fmt}, expected="sigma"), fmt, prompt
    )
    started = datetime(2026, 11, 30, 13, 0, tzinfo=UTC)
    attempts = [
        Attempt(number=1, owner="consumer.sigma@a:1", started_at=started, finished_at=started,
                outcome="backend_error", error="HTTP 503", retryable=True),
        Attempt(number=2, owner="consumer.sigma@a:1", started_at=started + timedelta(seconds=5),
                finished_at=started + timedelta(seconds=7), llm_seconds=1.5, outcome="answered"),
    ]  # fmt: skip
    result = a_result(
        "j1", "passed", "sigma", started + timedelta(seconds=7), prompt=prompt, response=SIGMA_ANSWER,
        score=score, format="sigma", backend="offline", threshold=50, attempts=attempts,
    )  # fmt: skip
    queue = FileQueue(environment / "queue")
    queue.ensure()
    queue.write_result(PROCESSED, "j1", result.model_dump(mode="json"))

    assert syntx("show", "j1") == 0
    text = capsys.readouterr().out
    assert text.startswith("job       j1\nstatus    passed: because passed\n")
    assert "finished  2026-11-30 14:00:07 +0100" in text  # the configured zone, with its offset
    assert f"prompt:\n  {prompt}\n" in text
    assert "answer:\n  1. Σ-DRIFTGRADIENT: abrupt - schneller Wechsel.\n" in text
    assert f"score:\n  scorer syntx-2  format sigma  total {score.total}/100\n" in text
    assert all(f"\n  {field.key} (" in text for field in score.fields), text  # every field's row
    assert "  1. backend_error" in text and "error: HTTP 503  (will retry)" in text
    assert "  2. answered      2026-11-30 14:00:05 +0100  llm 1.50s  by consumer.sigma@a:1" in text

    assert syntx("show", "j1", "--json") == 0
    record = json.loads(capsys.readouterr().out)
    assert record["score"]["total"] == score.total and len(record["attempts"]) == 2


def test_show_of_a_job_without_a_result_says_where_it_is(
    environment: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    queue = FileQueue(environment / "queue")
    queue.ensure()
    (queue.folder(INCOMING) / "waiting.txt").write_text("prompt", encoding="utf-8")
    assert syntx("show", "waiting") == 1
    assert capsys.readouterr().err == "syntx show: waiting has no result yet: it is in incoming/\n"
    assert syntx("show", "nowhere") == 1
    assert capsys.readouterr().err == (
        "syntx show: no result for nowhere in processed/, error/ or the archive; `syntx results` lists them\n"
    )


# -- since ---------------------------------------------------------------------------------------------


def test_since_takes_durations_and_moments() -> None:
    zone = load_settings([DEFAULT_CONFIG]).zone
    now = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    assert since_moment("10m", now, zone) == now - timedelta(minutes=10)
    assert since_moment("1.5h", now, zone) == now - timedelta(minutes=90)
    assert since_moment("2d", now, zone) == now - timedelta(days=2)
    assert since_moment("2026-11-30T13:00", now, zone) == now  # Berlin, without an offset
    assert since_moment("2026-11-30T12:00Z", now, zone) == now
    with pytest.raises(BadSince):
        since_moment("10 minutes", now, zone)


# -- status --watch and run ------------------------------------------------------------------------------


async def test_status_watch_refreshes_until_ctrl_c_and_exits_0(
    environment: Path, cli_env: dict[str, str], nats_server: NatsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SYNTX_NATS__URL", nats_server.url)
    monkeypatch.setenv("SYNTX_MONITOR__PORT", "0")
    settings = load_settings()
    async with (
        observer(nats_server.url, HEARTBEATS) as (_nc, events),
        running(settings, {"monitor": run_monitor}, events),
    ):
        env = {**cli_env, "SYNTX_NATS__URL": nats_server.url}
        cli = Cli("status", "--watch", "0.2", env=env)
        for _ in range(2):  # at least two refreshes
            await asyncio.to_thread(cli.wait_for, "every 0.2s, Ctrl-C ends")
            await asyncio.to_thread(cli.wait_for, "queue state ")
        code, err = await asyncio.to_thread(cli.interrupt)
    assert (code, err) == (0, "")


def test_status_watch_needs_a_positive_period(environment: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert syntx("status", "--watch", "0") == 2
    assert capsys.readouterr().err == "syntx status: --watch 0 is too short; give seconds above 0\n"


def test_run_logs_to_stdout_and_its_own_file(
    environment: Path, cli_env: dict[str, str], nats_server: NatsServer
) -> None:
    """The running service's log stays its own: ``syntx run cleanup`` writes logs/cleanup.run.log."""
    cli = Cli("run", "cleanup", env={**cli_env, "SYNTX_NATS__URL": nats_server.url})
    cli.wait_for("cleanup connected and ready")
    code, _err = cli.interrupt(signal.SIGTERM)
    assert code == 0
    logs = environment / "logs"
    assert "cleanup connected and ready" in (logs / "cleanup.run.log").read_text(encoding="utf-8")
    assert not (logs / "cleanup.log").exists()


def test_run_consumer_names_the_wrappers(environment: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert syntx("run", "consumer") == 2
    assert capsys.readouterr().err == (
        "syntx run consumer: name the consumer with --wrapper NAME, one of: sigma, syntex_system\n"
    )

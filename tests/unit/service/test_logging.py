"""Service log lines: one clock (the configured zone, with its offset) and one line per event."""

from __future__ import annotations

import logging
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from shared.config import LoggingSettings
from shared.service.logfile import LogFile
from shared.service.logs import ZonedOneLineFormatter, setup_logging, use_zone_for_command
from tests.support.diskfaults import fill, tmpfs


@pytest.fixture
def restore_root_logging() -> object:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield None
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


@pytest.mark.usefixtures("restore_root_logging")
def test_log_lines_are_in_the_configured_zone_and_never_split(tmp_path: Path) -> None:
    setup_logging("consumer.sigma", LoggingSettings(), tmp_path, ZoneInfo("Asia/Kolkata"))
    logging.getLogger("services.consumer").warning("job %s malformed", "evil\nINFO forged line\r\x1b[31m")
    for handler in logging.getLogger().handlers:
        handler.flush()

    lines = (tmp_path / "consumer.sigma.log").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 1
    stamp, rest = lines[0].split(" ", 1)
    assert datetime.fromisoformat(stamp).utcoffset() == ZoneInfo("Asia/Kolkata").utcoffset(datetime.now())
    assert stamp.endswith("+05:30")
    assert rest == r"WARNING consumer.sigma services.consumer: job evil\nINFO forged line\r\x1b[31m malformed"


@pytest.mark.usefixtures("restore_root_logging")
def test_the_command_s_own_lines_use_the_same_clock(capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    use_zone_for_command(ZoneInfo("America/New_York"), LoggingSettings())
    logging.getLogger("syntx.supervisor").info("started 7 services")
    line = capsys.readouterr().err.strip()
    stamp, rest = line.split(" ", 1)
    assert datetime.fromisoformat(stamp).utcoffset() == ZoneInfo("America/New_York").utcoffset(datetime.now())
    assert rest == "syntx: started 7 services"


def test_a_log_file_on_a_full_disk_is_said_once_not_once_per_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: Python's handler printed "--- Logging error ---" and a traceback for every record it
    could not write (thousands on a full disk). Now: one line when it starts failing, one when it works
    again; the file gets the lines again from then on."""
    with tmpfs(tmp_path / "logs", 256 * 1024) as logs:
        handler = LogFile(str(logs / "consumer.sigma.log"), max_bytes=10 * 1024 * 1024, backups=1)
        logger = logging.getLogger("test.full_disk")
        logger.propagate = False
        logger.addHandler(handler)
        try:
            filler = fill(logs)
            for number in range(1000):
                logger.warning("line %d of a service that goes on", number)
            filler.unlink()
            logger.warning("after the space came back")
        finally:
            logger.removeHandler(handler)
            handler.close()
        written = (logs / "consumer.sigma.log").read_text(encoding="utf-8")
    err = capsys.readouterr().err
    assert "Logging error" not in err and "Traceback" not in err
    said = err.splitlines()
    assert len(said) == 2, said
    assert said[0].startswith("logging: cannot write ") and "No space left on device" in said[0]
    assert said[1].startswith("logging: writing ") and said[1].endswith("lines are only on stdout")
    assert written.endswith("after the space came back\n")


@pytest.mark.usefixtures("restore_root_logging")
def test_a_long_message_and_a_long_traceback_line_are_cut_with_their_full_length(tmp_path: Path) -> None:
    """The line that once outgrew `syntx up`'s line reader: a tick failing on a 70,000-character job id."""
    setup_logging("producer", LoggingSettings(max_message_chars=200), tmp_path, ZoneInfo("UTC"))
    job_id = "x" * 70_000
    try:
        raise OSError(36, "File name too long", job_id)
    except OSError:
        logging.getLogger("services.producer").exception("tick for %s failed", job_id)
    for handler in logging.getLogger().handlers:
        handler.flush()

    lines = (tmp_path / "producer.log").read_text(encoding="utf-8").splitlines()
    assert lines[0].endswith(f"tick for {'x' * 191}… (70016 characters)")
    assert lines[1] == "Traceback (most recent call last):"
    assert lines[-1] == f"OSError: [Errno 36] File name too long: '{'x' * 159}… (70042 characters)"
    assert max(len(line) for line in lines) < 200 + 100


@pytest.mark.usefixtures("restore_root_logging")
def test_a_record_is_formatted_once_for_stdout_the_log_file_and_its_rollover_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    setup_logging("consumer.sigma", LoggingSettings(), tmp_path, ZoneInfo("UTC"))
    made: list[str] = []
    original = ZonedOneLineFormatter.formatMessage

    def counted(self: ZonedOneLineFormatter, record: logging.LogRecord) -> str:
        made.append(record.getMessage())
        return original(self, record)

    monkeypatch.setattr(ZonedOneLineFormatter, "formatMessage", counted)
    logging.getLogger("services.consumer").info("job %s passed", "a")
    logging.getLogger("services.consumer").info("job %s passed", "b")
    for handler in logging.getLogger().handlers:
        handler.flush()

    assert made == ["job a passed", "job b passed"]
    in_file = (tmp_path / "consumer.sigma.log").read_text(encoding="utf-8").splitlines()
    on_stdout = capsys.readouterr().out.splitlines()
    assert in_file == on_stdout and [line.split(": ", 1)[1] for line in in_file] == made


WRITER = """
import logging, sys
from shared.service.logfile import LogFile
handler = LogFile(sys.argv[1], max_bytes=1_000, backups=10_000)
handler.setFormatter(logging.Formatter("%(message)s"))
for number in range(int(sys.argv[3])):
    handler.emit(logging.makeLogRecord({"msg": f"{sys.argv[2]} line {number:05d} " + "x" * 40}))
handler.close()
"""


def test_two_processes_writing_one_log_file_lose_no_line_as_they_rotate_it(tmp_path: Path) -> None:
    """The replicas of one service (``docker compose --scale``) write one file in the shared logs folder:
    every line of both is in the file or a backup, each once, however their rotations interleave."""
    path, lines = tmp_path / "consumer.sigma.log", 1_000
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(path), name, str(lines)], cwd=Path.cwd())
        for name in ("first", "second")
    ]
    assert [writer.wait(timeout=120) for writer in writers] == [0, 0]

    written = [
        line for file in tmp_path.glob("consumer.sigma.log*") for line in file.read_text().splitlines()
    ]
    assert len(list(tmp_path.glob("consumer.sigma.log.*"))) > 50  # they rotated it many times
    assert sorted(written) == sorted(
        f"{name} line {n:05d} " + "x" * 40 for name in ("first", "second") for n in range(lines)
    )

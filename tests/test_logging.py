"""Service log lines: one clock (the configured zone, with its offset) and one line per event."""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from shared.config import LoggingSettings
from shared.service.logs import setup_logging, use_zone_for_command


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

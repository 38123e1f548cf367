"""Logging set-up for a service: one line per event on stdout and in ``logs/<service>.log`` (rotated).

Times are in the configured zone (``timezone``) with its offset, like everything else the system shows.
A message never spans lines: control characters in it (a newline in a file name …) are escaped, so no
input can forge a log line. A message longer than ``logging.max_message_chars`` is cut with its full
length said, and so is each line of a traceback: what a service writes per event is bounded whatever the
input it is about.
"""

from __future__ import annotations

import logging
import re
import sys
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from shared.config import LoggingSettings
from shared.names import clipped
from shared.service.logfile import LogFile

LINE_FORMAT = "%(asctime)s %(levelname)-7s %(service)s %(name)s: %(message)s"
COMMAND_FORMAT = "%(asctime)s syntx: %(message)s"  # the `syntx` command's own lines
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_LINE = "_formatted_line"  # a record's attribute: (id of the formatter, the line it made)


def _escaped(match: re.Match[str]) -> str:
    return repr(match.group())[1:-1]


class ZonedOneLineFormatter(logging.Formatter):
    def __init__(self, zone: ZoneInfo, max_chars: int, line_format: str = LINE_FORMAT) -> None:
        super().__init__(line_format)
        self._zone = zone
        self._max_chars = max_chars

    def format(self, record: logging.LogRecord) -> str:
        """The line, made once per record: every handler (stdout, the log file and its rollover check)
        asks for it, and all share this formatter. Kept on the record, as ``Formatter`` keeps a
        traceback's text there."""
        made = record.__dict__.get(_LINE)
        if made is not None and made[0] == id(self):
            return str(made[1])
        line = super().format(record)
        setattr(record, _LINE, (id(self), line))
        return line

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return datetime.fromtimestamp(record.created, self._zone).isoformat(timespec="milliseconds")

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = clipped(_CONTROL.sub(_escaped, record.message), self._max_chars)
        return super().formatMessage(record)

    def formatException(self, ei: Any) -> str:
        return self._clip_lines(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:
        return self._clip_lines(super().formatStack(stack_info))

    def _clip_lines(self, text: str) -> str:
        return "\n".join(clipped(line, self._max_chars) for line in text.split("\n"))


class _ServiceFilter(logging.Filter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self._service = service

    def filter(self, record: logging.LogRecord) -> bool:
        record.service = self._service
        return True


def setup_logging(
    service: str,
    settings: LoggingSettings,
    logs_dir: Path | None,
    zone: ZoneInfo,
    log_name: str | None = None,
) -> None:
    """Configure the root logger; call once, from a service's ``main()``. The file is
    ``logs/<log_name><file_suffix>.log``, ``log_name`` the service's unless given (one file per process:
    two processes rotating one file lose lines)."""
    formatter = ZonedOneLineFormatter(zone, settings.max_message_chars)
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stdout)]
    if logs_dir is not None:
        logs_dir.mkdir(parents=True, exist_ok=True)
        handlers.append(
            LogFile(
                str(logs_dir / f"{log_name or service}{settings.file_suffix}.log"),
                max_bytes=settings.max_bytes,
                backups=settings.backups,
            )
        )
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        handler.setFormatter(formatter)
        handler.addFilter(_ServiceFilter(service))
        root.addHandler(handler)
    root.setLevel(settings.level)
    for noisy in ("nats", "httpx", "httpcore", "watchdog"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


def use_zone_for_command(zone: ZoneInfo, settings: LoggingSettings) -> None:
    """The ``syntx`` command's own log lines, once its settings are known: the same clock and bounds as the
    services."""
    for handler in logging.getLogger().handlers:
        handler.setFormatter(ZonedOneLineFormatter(zone, settings.max_message_chars, COMMAND_FORMAT))

"""Logging set-up for a service: one line per event on stdout and in ``logs/<service>.log`` (rotated)."""

from __future__ import annotations

import logging
import sys
from logging.handlers import RotatingFileHandler
from pathlib import Path

from shared.config import LoggingSettings

LINE_FORMAT = "%(asctime)s %(levelname)-7s %(service)s %(name)s: %(message)s"
DATE_FORMAT = "%Y-%m-%dT%H:%M:%S%z"


class _ServiceFilter(logging.Filter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self._service = service

    def filter(self, record: logging.LogRecord) -> bool:
        record.service = self._service
        return True


def setup_logging(service: str, settings: LoggingSettings, logs_dir: Path | None) -> None:
    """Configure the root logger; call once, from a service's ``main()``."""
    formatter = logging.Formatter(LINE_FORMAT, DATE_FORMAT)
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stdout)]
    if logs_dir is not None:
        logs_dir.mkdir(parents=True, exist_ok=True)
        handlers.append(
            RotatingFileHandler(
                logs_dir / f"{service}.log",
                maxBytes=settings.max_bytes,
                backupCount=settings.backups,
                encoding="utf-8",
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

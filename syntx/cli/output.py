"""What the commands print: lines on stdout, tables, times in the configured zone, one-line refusals."""

from __future__ import annotations

import json
import sys
from datetime import datetime

from pydantic import BaseModel

from shared.config import Settings
from syntx import exits


def out(text: str = "") -> None:
    sys.stdout.write(text + "\n")


def usage(message: str) -> int:
    """A wrong request: ``message`` on stderr, exit :data:`exits.USAGE`."""
    return fail(message, exits.USAGE)


def fail(message: str, code: int = exits.NOTHING_DONE) -> int:
    sys.stderr.write(message + "\n")
    return code


def short_time(value: datetime, settings: Settings) -> str:
    """A timestamp in the configured time zone, with its offset."""
    return value.astimezone(settings.zone).strftime("%Y-%m-%d %H:%M:%S %z")


def out_json(reply: BaseModel) -> None:
    """A reply as the service sent it, indented."""
    out(json.dumps(reply.model_dump(mode="json"), indent=2, ensure_ascii=False))


def table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in [header, *rows]
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(line.rstrip() for line in lines)

"""What a message body may be before any model reads it: its size, its encoding and the shape of its JSON.

Anyone on the bus can publish anything. A body is read by :func:`json_body` only within these bounds, so
the work and memory one message costs do not grow with what its sender chose: a 900,000-digit number is
refused by its length before Python converts it, a nesting deeper than any message of ours is refused
before a model walks it. Every refusal is a :class:`MalformedMessage` with a one-line reason.
"""

from __future__ import annotations

import json
import math
from typing import Final

# Our largest message (a generation report, a cleanup report with its errors) is a few KiB; this leaves
# room for fifty times that while a hostile body's parse stays in the milliseconds.
BODY_MAX_BYTES: Final = 256 * 1024
# Our deepest message is 3 levels (an event holding a mapping of numbers); a request is 1.
DEPTH_MAX: Final = 8
# An integer of int64 with its sign is 20 characters, a float's shortest spelling at most 24.
NUMBER_MAX_CHARS: Final = 32


class MalformedMessage(ValueError):
    """A body that is not what its subject carries; ``reason`` says why in one line."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def json_body(data: bytes) -> object:
    """``data`` as JSON within the bounds above; raises :class:`MalformedMessage` otherwise."""
    if len(data) > BODY_MAX_BYTES:
        raise MalformedMessage(f"body: {len(data)} bytes, over the limit of {BODY_MAX_BYTES}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedMessage(f"body: not UTF-8 (byte {exc.start})") from None
    try:
        value = json.loads(text, parse_int=_integer, parse_float=_float, parse_constant=_constant)
    except RecursionError:
        raise MalformedMessage(f"body: nested deeper than {DEPTH_MAX} levels") from None
    except json.JSONDecodeError as exc:
        raise MalformedMessage(
            f"body: not JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})"
        ) from None
    if depth_over(value, DEPTH_MAX):
        raise MalformedMessage(f"body: nested deeper than {DEPTH_MAX} levels")
    return value


def _integer(spelled: str) -> int:
    _check_length(spelled)
    return int(spelled)


def _float(spelled: str) -> float:
    _check_length(spelled)
    value = float(spelled)
    if not math.isfinite(value):
        raise MalformedMessage(f"body: the number {spelled} is out of range")
    return value


def _constant(spelled: str) -> float:
    raise MalformedMessage(f"body: {spelled} is not a JSON number")


def _check_length(spelled: str) -> None:
    if len(spelled) > NUMBER_MAX_CHARS:
        raise MalformedMessage(
            f"body: a number of {len(spelled)} characters, over the limit of {NUMBER_MAX_CHARS}"
        )


def depth_over(value: object, limit: int) -> bool:
    """True when ``value`` nests lists and mappings more than ``limit`` levels deep (a scalar is level 0)."""
    containers = [value] if isinstance(value, dict | list) else []
    for _ in range(limit):
        containers = [
            child for item in containers for child in _children(item) if isinstance(child, dict | list)
        ]
        if not containers:
            return False
    return bool(containers)


def _children(container: object) -> list[object]:
    if isinstance(container, dict):
        return list(container.values())
    return list(container) if isinstance(container, list) else []

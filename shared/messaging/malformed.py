"""What a well-formed message on each subject looks like, and a log of malformed ones that cannot flood.

Anyone on the bus can publish anything on any subject. :func:`message_problem` says, for a subject and a body,
why the body is not what the subject carries (None when it is); :class:`MalformedLog` writes at most one
line per subject per interval, with the number it held back.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable

from pydantic import ValidationError

from shared.messaging import subjects
from shared.messaging.messages import decode_event, decode_tick

EVENT_KIND: dict[str, str] = {  # an event's kind is its subject without the prefix
    subject: subject.removeprefix(f"{subjects.PREFIX}.")
    for subject in (*subjects.EVENTS, subjects.SERVICE_HEARTBEAT)
}


def describe(exc: ValidationError) -> str:
    """The first problem of a validation error, as ``where: what``."""
    first = exc.errors(include_url=False)[0]
    where = ".".join(str(part) for part in first["loc"]) or "body"
    return f"{where}: {first['msg']}"


def message_problem(subject: str, data: bytes) -> str | None:
    """Why ``data`` is not a valid message on ``subject``; None if it is."""
    if subject.startswith(subjects.TICK_PREFIX + "."):
        return _validated(lambda: decode_tick(data, subjects.schedule_of(subject)))
    if subject in EVENT_KIND:
        return _event_problem(subject, data)
    if subject in subjects.REQUEST_SUBJECTS:
        return _request_problem(data)
    if subject == subjects.SERVICE_PING:
        return None
    return "no such subject"


def _validated(decode: Callable[[], object]) -> str | None:
    try:
        decode()
    except ValidationError as exc:
        return describe(exc)
    except ValueError as exc:
        return str(exc)
    return None


def _event_problem(subject: str, data: bytes) -> str | None:
    try:
        event = decode_event(data)
    except ValidationError as exc:
        return describe(exc)
    if event.kind != EVENT_KIND[subject]:
        return f"kind: {event.kind!r} does not belong on this subject"
    return None


def _request_problem(data: bytes) -> str | None:
    """Requests carry nothing or a JSON object (the responder checks its fields)."""
    if not data.strip():
        return None
    try:
        body = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return f"body: not JSON ({exc.__class__.__name__})"
    return None if isinstance(body, dict) else "body: not a JSON object"


class MalformedLog:
    """One warning per subject per ``interval_s``; the lines in between are counted, not written."""

    def __init__(self, logger: logging.Logger, interval_s: float) -> None:
        self._log = logger
        self._interval_s = interval_s
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def note(self, subject: str, reason: str) -> None:
        now = time.monotonic()
        key = subject[:200]
        last = self._last.get(key)
        if last is not None and now - last < self._interval_s:
            self._held[key] = self._held.get(key, 0) + 1
            return
        if len(self._last) > 1000:  # made-up subjects: keep the memory bounded
            self._last.clear()
            self._held.clear()
        self._last[key] = now
        held = self._held.pop(key, 0)
        more = f" ({held} more since the last line)" if held else ""
        self._log.warning("dropping malformed message on %r: %s%s", key, reason[:300], more)

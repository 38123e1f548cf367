"""What a well-formed message on each subject looks like, and a log of malformed ones that cannot flood.

Anyone on the bus can publish anything on any subject. :func:`message_problem` says, for a subject and a body,
why the body is not what the subject carries (None when it is), by decoding it as the services do
(:mod:`shared.messaging.decoding`); :class:`MalformedLog` writes at most one line per subject per
interval, with the number it held back.
"""

from __future__ import annotations

import logging
import time

from shared.messaging.bodies import MalformedMessage
from shared.messaging.decoding import decode_on


def message_problem(subject: str, data: bytes) -> str | None:
    """Why ``data`` is not a valid message on ``subject``; None if it is."""
    try:
        decode_on(subject, data)
    except MalformedMessage as exc:
        return exc.reason
    return None


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

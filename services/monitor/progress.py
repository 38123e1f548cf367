"""Whether the loop moves: jobs the consumers were asked to take should turn into results.

The consumers are *asked* when a consumer tick arrives while jobs wait, while jobs are claimed in
``processing/``, and — for a consumer that watches ``incoming/`` — whenever jobs wait. A result landing
in ``processed/`` or ``error/`` (seen by the queue counter, not by events: it holds while NATS does
not) answers every ask before it. Jobs asked for and not answered for ``stalled_after_s`` while jobs
still wait: the loop is stalled — a fault no error reports (a consumer hung, a lost connection nobody
noticed), which the health reason ``stalled`` names.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class Progress:
    def __init__(
        self,
        stalled_after_s: float,
        last_result_at: Callable[[], float],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stalled_after_s = stalled_after_s
        self._last_result_at = last_result_at  # on ``clock``
        self._clock = clock
        self._asked_at: float | None = None  # the first ask no result has answered yet

    def asked(self) -> None:
        """The consumers were asked to take waiting jobs now."""
        if not self._waiting_for_answer():
            self._asked_at = self._clock()

    def stalled_for_s(self, jobs: int) -> float | None:
        """How long an ask has gone unanswered, once that is ``stalled_after_s`` or more while ``jobs``
        (waiting or claimed) remain; None otherwise."""
        if not jobs or not self._waiting_for_answer():
            self._asked_at = None
            return None
        assert self._asked_at is not None  # waiting for an answer
        unanswered = self._clock() - self._asked_at
        return unanswered if unanswered >= self._stalled_after_s else None

    def _waiting_for_answer(self) -> bool:
        return self._asked_at is not None and self._last_result_at() <= self._asked_at

"""Crash points for fault-injection tests: ``SYNTX_FAILPOINTS="after_claim=0.02,after_result=0.01"``
makes the process kill itself (SIGKILL, no clean-up at all) at those points with that probability.

Unset — the normal case — every check is a no-op. Read once, in a service's ``main()``.
"""

from __future__ import annotations

import logging
import os
import random
import signal
from collections.abc import Mapping

from shared.config import FAILPOINTS_ENV

log = logging.getLogger(__name__)

ENV = FAILPOINTS_ENV
POINTS = ("after_claim", "after_call", "after_result")


class FailpointError(ValueError):
    pass


class Failpoints:
    def __init__(self, chances: Mapping[str, float] | None = None, seed: int | None = None) -> None:
        unknown = set(chances or {}) - set(POINTS)
        if unknown:
            raise FailpointError(f"{ENV}: unknown point(s) {sorted(unknown)}; known: {', '.join(POINTS)}")
        self._chances = dict(chances or {})
        self._rng = random.Random(seed)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Failpoints:
        raw = (os.environ if environ is None else environ).get(ENV, "")
        chances: dict[str, float] = {}
        for item in filter(None, (part.strip() for part in raw.split(","))):
            name, _, value = item.partition("=")
            try:
                chances[name] = float(value)
            except ValueError:
                raise FailpointError(f"{ENV}: {item!r} is not name=probability") from None
        return cls(chances)

    def hit(self, point: str) -> None:
        chance = self._chances.get(point)
        if chance and self._rng.random() < chance:
            log.warning("failpoint %s: killing this process", point)  # flushed: handlers write at once
            os.kill(os.getpid(), signal.SIGKILL)


NONE = Failpoints()

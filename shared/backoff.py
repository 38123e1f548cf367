"""The one retry/backoff policy: how long to wait before try ``n`` after failures, as configuration data.

Used by the LLM client between attempts, the consumer's pause while its backend is down, the bus's
publish tries and tick resubscription (and NATS reconnects), and ``syntx up``'s restarts of a service.
"""

from __future__ import annotations

import random

from pydantic import BaseModel, ConfigDict, Field

MAX_EXPONENT = 64  # 2**64 times any base is beyond every cap; keeps the float finite


class Backoff(BaseModel):
    """Wait ``base_s`` after the first failure, doubling after each further one, never more than ``max_s``;
    with ``jitter`` a uniform draw between 0 and that (full jitter: clients that failed together spread)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base_s: float = Field(1.0, ge=0, description="the wait after the first failure")
    max_s: float = Field(60.0, ge=0, description="the longest wait")
    jitter: bool = Field(False, description="full jitter: a uniform draw in [0, delay]")

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after failure number ``attempt`` (1-based)."""
        exponent = min(max(attempt, 1) - 1, MAX_EXPONENT)
        ceiling = min(self.max_s, self.base_s * 2.0**exponent)
        if not self.jitter:
            return ceiling
        return (rng or random.Random()).uniform(0.0, ceiling)

    def capped(self, requested_s: float) -> float:
        """A wait someone asked for (a server's ``Retry-After``), no longer than ``max_s``."""
        return min(requested_s, self.max_s)

"""Back pressure: the queue state from the number of waiting jobs, and what it means for the producer."""

from __future__ import annotations

from typing import Literal

from shared.config import BackPressureSettings

QueueState = Literal["STARVING", "LOW", "BALANCED", "HIGH", "OVERFLOW"]

_BATCH_SHARE: dict[QueueState, float] = {
    "STARVING": 1.0,
    "LOW": 0.75,
    "BALANCED": 0.5,
    "HIGH": 0.0,
    "OVERFLOW": 0.0,
}


def queue_state(incoming: int, limits: BackPressureSettings) -> QueueState:
    if incoming <= 0:
        return "STARVING"
    if incoming < limits.low:
        return "LOW"
    if incoming < limits.high:
        return "BALANCED"
    if incoming < limits.overflow:
        return "HIGH"
    return "OVERFLOW"


def producer_batch(state: QueueState, batch: int) -> int:
    """How many prompts to produce in this state (the original's 20 / 15 / 10 / 0 / 0)."""
    return int(batch * _BATCH_SHARE[state])

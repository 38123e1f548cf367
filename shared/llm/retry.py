"""Retry timing of an HTTP call: the ``Retry-After`` header, else the configured :class:`Backoff`."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from shared.config import RetrySettings


def retry_after_s(value: str | None, now: datetime | None = None) -> float | None:
    """Parse ``Retry-After`` (delay seconds or an HTTP-date) into seconds from ``now``; None if unusable."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds: float | None = float(text)
    except ValueError:
        seconds = _seconds_until(text, now or datetime.now(UTC))
    if seconds is None or not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def _seconds_until(http_date: str, now: datetime) -> float | None:
    try:
        when = parsedate_to_datetime(http_date)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return (when - now).total_seconds()


def next_delay(
    attempt: int, retries: RetrySettings, rng: random.Random, requested_s: float | None = None
) -> float:
    """The wait before the next attempt: the server's request (capped at ``backoff.max_s``) or backoff."""
    if requested_s is not None:
        return retries.backoff.capped(requested_s)
    return retries.backoff.delay(attempt, rng)

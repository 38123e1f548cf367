"""Waiting on an event for at most a while — the one timer every service loop uses — or on the first of
several; and the one clock every recorded time is read from."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime


def utc_now() -> datetime:
    """Now, as an aware UTC time: every time the system records or sends."""
    return datetime.now(UTC)


async def set_within(event: asyncio.Event, seconds: float) -> bool:
    """Wait until ``event`` is set, at most ``seconds``; True if it was set (e.g. "stop requested").

    ``asyncio.timeout``, not ``asyncio.wait_for``: in Python 3.11 a ``wait_for`` cancelled just as its
    event is set returns instead of raising, the cancellation lost — a task told to stop runs on."""
    try:
        async with asyncio.timeout(seconds):
            await event.wait()
    except TimeoutError:
        return False
    return True


async def first_set(*events: asyncio.Event) -> None:
    """Wait until one of ``events`` is set (a stop, or what the caller waits for)."""
    waiters = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()

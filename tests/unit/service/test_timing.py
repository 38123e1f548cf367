"""The one timer every service loop uses: a stop that comes as its event is set is not lost."""

from __future__ import annotations

import asyncio

import pytest

from shared.timing import set_within


async def test_a_cancel_that_comes_as_the_event_is_set_still_cancels() -> None:
    """In Python 3.11 ``asyncio.wait_for`` returns here instead of raising: the task would run on (a
    service's heartbeat went on beating after its stop, and its stop waited forever)."""
    event, forever = asyncio.Event(), asyncio.Event()

    async def loop_body() -> None:
        await set_within(event, 10)
        await forever.wait()  # reached only if the cancellation was lost

    task = asyncio.create_task(loop_body())
    await asyncio.sleep(0)  # a yield: the task starts waiting on the event
    event.set()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, timeout=5)


async def test_set_within_says_whether_the_event_came() -> None:
    event = asyncio.Event()
    assert await set_within(event, 0.01) is False
    event.set()
    assert await set_within(event, 10) is True

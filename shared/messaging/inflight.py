"""Requests handled side by side: a slow one (a recount) never holds up the quick ones behind it; and the
guard every handler runs in, so that a failing one is logged and never stops delivery.

nats-py hands a subscription's messages to its callback one after another; a responder that waits
would make every later request on that subject wait too. Here each request is its own task, at most
:data:`IN_FLIGHT_MAX` at once for all the subjects a service answers — beyond that its subscriptions
wait for a slot, so a flood costs bounded memory. A task's failure is logged, never lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from nats.aio.msg import Msg

log = logging.getLogger(__name__)

IN_FLIGHT_MAX = 1000  # requests a service handles at once (each a task of a few KB)

Handler = Callable[[Msg], Awaitable[None]]


class InFlight:
    def __init__(self, limit: int = IN_FLIGHT_MAX) -> None:
        self._slots = asyncio.Semaphore(limit)
        self._tasks: set[asyncio.Task[None]] = set()

    def side_by_side(self, handle: Handler, what: str) -> Handler:
        """A subscription callback that starts ``handle`` for each message as a task of its own."""

        async def start(msg: Msg) -> None:
            await self._slots.acquire()
            task = asyncio.ensure_future(self._run(handle, msg, what))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        return start

    async def _run(self, handle: Handler, msg: Msg, what: str) -> None:
        try:
            await handle(msg)
        except Exception:
            log.exception("%s failed", what)
        finally:
            self._slots.release()

    async def close(self) -> None:
        """Cancel the requests still being handled (the service stops)."""
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def guarded(work: Awaitable[None], what: str) -> None:
    """Run a handler's ``work``; a failure is logged with its traceback, never raised."""
    try:
        await work
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("%s failed", what)

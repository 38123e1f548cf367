"""Turns between a worker thread and the event loop, so a long count in a thread never holds up a scrape.

A thread that counts a folder of 666,000 entries holds the GIL for most of a second: the event loop, to
answer a scrape, waits for the interpreter's switch interval again and again (scrapes of 20–80 ms where
3 ms is their own cost). A thread that calls a :class:`LoopTurns` every few hundred entries instead
waits there until the loop has run everything that was ready (a scrape that arrived, the notifications
that came in): the loop waits at most for one stretch of work, about a millisecond.
"""

from __future__ import annotations

import asyncio
import threading

# The longest a worker thread waits for its turn: a loop that does not run it this long is busy with
# something else for that long, or closing; the thread goes on rather than hang with it.
TURN_WAIT_S = 0.5


class LoopTurns:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._turn = threading.Event()

    def __call__(self) -> None:
        """On the worker thread: return once the loop has run what was ready when this was called."""
        self._turn.clear()
        try:
            self._loop.call_soon_threadsafe(self._turn.set)
        except RuntimeError:  # the loop is closed: nobody waits for the thread's turn any more
            return
        self._turn.wait(TURN_WAIT_S)


def no_turns() -> None:
    """For work on the loop's own thread (or with no loop): nothing to hand over."""

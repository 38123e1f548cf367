"""Turns between a worker thread and the event loop, so a long count in a thread never holds up a scrape.

A thread that counts a folder of 666,000 entries holds the GIL for most of a second: the event loop, to
answer a scrape, waits for the interpreter's switch interval again and again (scrapes of 20–80 ms where
3 ms is their own cost). A thread that calls a :class:`LoopTurns` every few hundred entries instead
waits there until the loop has run everything that was ready (a scrape that arrived, the notifications
that came in): the loop waits at most for one stretch of work, about a millisecond. While the loop is
answering a request (:class:`Answering`), the thread waits at its turn until the answer is out, up to
:data:`ANSWER_WAIT_S`: a scrape spans several passes of the loop, and each would otherwise give the thread
a stretch of counting.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager

# The longest a worker thread waits for its turn: a loop that does not run it this long is busy with
# something else for that long, or closing; the thread goes on rather than hang with it.
TURN_WAIT_S = 0.5
# The longest a worker thread waits at one turn for answers in progress: a scrape takes about 3 ms; a client
# that reads its answer slowly delays a recount by at most this much per turn (1,000 entries), never stops it.
ANSWER_WAIT_S = 0.02


class Answering:
    """Requests the loop is answering now; a worker thread at its turn waits until there are none."""

    def __init__(self) -> None:
        self._open = 0
        self._idle = threading.Event()
        self._idle.set()

    @contextmanager
    def one(self) -> Iterator[None]:
        """On the loop: around the work of one answer."""
        self._open += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._open -= 1
            if not self._open:
                self._idle.set()

    def wait_idle(self) -> None:
        """On the worker thread."""
        self._idle.wait(ANSWER_WAIT_S)


class LoopTurns:
    def __init__(self, loop: asyncio.AbstractEventLoop, answering: Answering | None = None) -> None:
        self._loop = loop
        self._turn = threading.Event()
        self._answering = answering

    def __call__(self) -> None:
        """On the worker thread: return once the loop has run what was ready when this was called."""
        self._turn.clear()
        try:
            self._loop.call_soon_threadsafe(self._turn.set)
        except RuntimeError:  # the loop is closed: nobody waits for the thread's turn any more
            return
        self._turn.wait(TURN_WAIT_S)
        if self._answering is not None:
            self._answering.wait_idle()


def no_turns() -> None:
    """For work on the loop's own thread (or with no loop): nothing to hand over."""

"""Recounts that requests ask for, shared: however many ask, at most one runs and one waits.

A request that comes while no recount runs starts one; one that comes while a recount runs waits for
the next, which starts when the running one ends and which every request arriving meanwhile shares (each
gets a count begun after it asked). Three hundred ``{"reconcile": true}`` requests cost two recounts,
not three hundred in a row.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable


class SharedRecount:
    def __init__(self, recount: Callable[[], Awaitable[None]]) -> None:
        self._recount = recount
        self._running: asyncio.Task[None] | None = None
        self._next: asyncio.Future[None] | None = None  # the recount the latest requests wait for

    async def after_next(self) -> None:
        """Return once a recount begun after this call has finished (its failure is raised here)."""
        if self._next is None:
            self._next = asyncio.get_running_loop().create_future()
        waiting = self._next
        if self._running is None:
            self._start_next()
        await asyncio.shield(waiting)  # a request that gives up does not cancel the others' recount

    async def close(self) -> None:
        if self._next is not None:
            self._next.cancel()
        if self._running is not None:
            self._running.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._running

    def _start_next(self) -> None:
        done, self._next = self._next, None
        assert done is not None  # started only when a request waits
        self._running = asyncio.ensure_future(self._run(done))

    async def _run(self, done: asyncio.Future[None]) -> None:
        try:
            await self._recount()
        except asyncio.CancelledError:
            done.cancel()
            raise
        except Exception as exc:
            done.set_exception(exc)
        else:
            done.set_result(None)
        finally:
            self._running = None
            if self._next is not None and not done.cancelled():
                self._start_next()

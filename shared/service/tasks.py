"""Long-lived tasks that cannot die silently: a failure is logged with the task's name and stops the whole.

:class:`ServiceTasks` is an ``asyncio.TaskGroup``: when one task fails the others and the body are
cancelled and the failure comes out of the ``async with`` — the service exits non-zero, so ``syntx up``
(or Docker) starts it again. For tests, ``SYNTX_FAIL_TASKS="producer heartbeat,consumer.sigma leases"``
plants a failure at the start of the tasks with those names; unset — the normal case — nothing happens.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Coroutine
from types import TracebackType
from typing import Any, TypeVar

from shared.config import FAIL_TASKS_ENV

log = logging.getLogger(__name__)

FAIL_ENV = FAIL_TASKS_ENV

T = TypeVar("T")


class PlantedFailure(RuntimeError):
    """A failure planted through ``SYNTX_FAIL_TASKS``."""


def _planted(name: str) -> bool:
    return name in {part.strip() for part in os.environ.get(FAIL_ENV, "").split(",")}


async def reported(work: Coroutine[Any, Any, T], name: str) -> T:
    """Run ``work``; an unexpected exception is logged with ``name`` and raised on."""
    try:
        if _planted(name):
            work.close()
            raise PlantedFailure(f"a failure planted by {FAIL_ENV}")
        return await work
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("task %r failed; stopping", name)
        raise


class ServiceTasks:
    """A ``TaskGroup`` of named, reported tasks; a single failure comes out as itself, not as a group."""

    def __init__(self) -> None:
        self._group = asyncio.TaskGroup()

    async def __aenter__(self) -> ServiceTasks:
        await self._group.__aenter__()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        try:
            await self._group.__aexit__(kind, exc, tb)
        except BaseExceptionGroup as group:
            if len(group.exceptions) == 1:
                raise group.exceptions[0] from None
            raise
        return None

    def start(self, work: Coroutine[Any, Any, T], name: str) -> asyncio.Task[T]:
        return self._group.create_task(reported(work, name), name=name)

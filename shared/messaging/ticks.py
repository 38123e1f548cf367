"""Ticks: a schedule's durable subscription, run by run.

A :class:`TickSubscription` pulls the ticks of one schedule from the tick stream, coalesces a backlog
into one run and hands each run to :class:`~shared.messaging.overlap.OverlapGate`, which applies the
schedule's overlap policy. While JetStream cannot answer it subscribes again with the resubscribe
backoff. Paused schedules are :mod:`shared.messaging.pauses`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

import nats.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from shared.config import NatsSettings, Overlap
from shared.messaging.inflight import guarded
from shared.messaging.messages import OverlapOutcome, Tick
from shared.messaging.overlap import OverlapGate
from shared.timing import set_within

log = logging.getLogger(__name__)

TickHandler = Callable[[Tick], Awaitable[None]]
FETCH_BATCH = 16
BACKLOG_FETCH_WAIT_S = 0.1  # ticks counted as waiting may have been taken meanwhile: don't wait long


class TickSource(Protocol):
    """What a subscription needs of the bus: the schedule's pull consumer, a tick acknowledged and
    read, and an overlap reported."""

    async def tick_consumer(self, schedule: str) -> JetStreamContext.PullSubscription: ...

    async def ack_tick(self, msg: Msg, schedule: str) -> Tick | None: ...

    def report_overlap(self, schedule: str, outcome: OverlapOutcome) -> None: ...


class TickSubscription:
    """A schedule's durable pull consumer. A backlog of pending ticks is coalesced into one run; a tick
    that arrives while a run is still running follows the schedule's overlap policy."""

    def __init__(
        self,
        bus: TickSource,
        schedule: str,
        settings: NatsSettings,
        overlap: Overlap,
    ) -> None:
        self._bus = bus
        self._schedule = schedule
        self._pull: JetStreamContext.PullSubscription | None = None
        self._settings = settings
        self._overlap = overlap
        self._failures = 0  # failed fetches and resubscriptions in a row
        self._subscribed = False  # until a subscription succeeds; False again from a failed fetch

    async def run(self, handler: TickHandler, stop: asyncio.Event) -> None:
        async def handle(tick: Tick) -> None:
            await guarded(handler(tick), f"tick handler for {self._schedule}")

        gate = OverlapGate(self._schedule, self._overlap, handle, self._bus.report_overlap)
        try:
            await self._fetch_until(gate, stop)
        finally:
            # Unfetched status replies would keep a later drain() waiting until its timeout.
            await self._unsubscribe()
            await gate.wait()

    async def _fetch_until(self, gate: OverlapGate, stop: asyncio.Event) -> None:
        while not stop.is_set():
            if not self._subscribed:  # the last resubscription failed: try again before fetching
                if await self._pause_after_failure(stop):
                    return
                await self._resubscribe()
                continue
            try:
                messages = await self._fetch()
            except TimeoutError:  # nats-py raises both its own and asyncio's; both mean "no tick"
                self._failures = 0
                continue
            except nats.errors.Error as exc:  # the consumer vanished, JetStream restarted, …
                log.warning("ticks of %s: %s; subscribing again", self._schedule, exc)
                self._subscribed = False
                continue
            self._failures = 0
            ticks = [tick for msg in messages if (tick := await self._bus.ack_tick(msg, self._schedule))]
            if ticks:
                gate.offer(_coalesce(ticks))

    async def _pause_after_failure(self, stop: asyncio.Event) -> bool:
        """Wait the resubscribe backoff for the failures in a row; True if a stop came meanwhile."""
        self._failures += 1
        return await set_within(stop, self._settings.resubscribe.delay(self._failures))

    async def _fetch(self) -> list[Msg]:
        """The next tick as soon as it is stored, plus the ones already waiting behind it.

        One at a time first: nats-py's fetch of a batch waits for the whole batch until its timeout once
        a first message came through a waiting request, which would delay a lone tick by up to that.
        """
        assert self._pull is not None  # fetched only while subscribed
        messages: list[Msg] = await self._pull.fetch(1, timeout=self._settings.tick_fetch_wait_s)
        waiting = messages[-1].metadata.num_pending
        if waiting:  # a backlog: these are there already, so a no-wait fetch returns them at once
            with contextlib.suppress(TimeoutError):
                more = await self._pull.fetch(min(waiting, FETCH_BATCH), timeout=BACKLOG_FETCH_WAIT_S)
                messages.extend(more)
        return messages

    async def _unsubscribe(self) -> None:
        if self._pull is not None:
            with contextlib.suppress(nats.errors.Error):  # already gone after a failed resubscription
                await self._pull.unsubscribe()

    async def subscribe(self) -> bool:
        """Create (or bind to) the durable tick consumer; False, said in the log, while JetStream cannot
        answer (:meth:`run` tries again with the resubscribe backoff)."""
        await self._unsubscribe()
        try:
            self._pull = await self._bus.tick_consumer(self._schedule)
        except (TimeoutError, nats.errors.Error) as exc:
            log.warning("ticks of %s: cannot subscribe yet: %s; trying again", self._schedule, exc)
            return False
        self._subscribed = True
        return True

    async def _resubscribe(self) -> None:
        if await self.subscribe():
            log.info("ticks of %s: subscribed", self._schedule)


def _coalesce(ticks: Sequence[Tick]) -> Tick:
    """Several pending ticks of one schedule run once; an explicit batch override is kept."""
    latest = ticks[-1]
    batch = next((tick.batch for tick in reversed(ticks) if tick.batch is not None), None)
    if len(ticks) > 1:
        log.info("coalesced %d pending ticks for %s into one run", len(ticks), latest.schedule)
    return latest.model_copy(update={"batch": batch})

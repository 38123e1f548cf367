"""Paused schedules, kept in a JetStream key-value bucket: one key per paused schedule.

``syntx schedules pause NAME`` writes the key, ``resume NAME`` deletes it. Every scheduler replica
watches the bucket and skips the slots of a paused schedule from the moment the change reaches it.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import datetime

import nats.errors
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError, NoKeysError
from nats.js.kv import KV_DEL, KV_PURGE, KeyValue

from shared.backoff import Backoff
from shared.messaging.bodies import json_body
from shared.timing import set_within

log = logging.getLogger(__name__)

GONE = (KV_DEL, KV_PURGE)


class PausedSchedules:
    def __init__(self, bucket: KeyValue) -> None:
        self._bucket = bucket
        self._paused: dict[str, datetime | None] = {}
        self.watching = asyncio.Event()  # set once the bucket's current content has been read

    def is_paused(self, schedule: str) -> bool:
        return schedule in self._paused

    def since(self, schedule: str) -> datetime | None:
        return self._paused.get(schedule)

    async def pause(self, schedule: str, at: datetime) -> bool:
        """False when it was paused already (its time of pausing is kept)."""
        try:
            await self._bucket.create(schedule, json.dumps({"paused_at": at.isoformat()}).encode())
        except KeyWrongLastSequenceError:
            return False
        return True

    async def resume(self, schedule: str) -> bool:
        """False when it was not paused."""
        try:
            await self._bucket.get(schedule)
        except KeyNotFoundError:
            return False
        await self._bucket.delete(schedule)
        return True

    async def read(self) -> dict[str, datetime | None]:
        """Every paused schedule with the time it was paused (asked now, not watched)."""
        paused: dict[str, datetime | None] = {}
        try:
            names = await self._bucket.keys()
        except NoKeysError:
            return paused
        for name in names:
            try:
                entry = await self._bucket.get(name)
            except KeyNotFoundError:
                continue
            paused[name] = _paused_at(entry.value)
        return paused

    async def watch(self, stop: asyncio.Event, retry: Backoff) -> None:
        """Keep :meth:`is_paused` current until ``stop``; the bucket's changes arrive as they happen. A
        watch that cannot be set up yet (NATS restarting, a cluster electing leaders) is tried again with
        ``retry`` instead of failing the service."""
        failures = 0
        while True:
            try:
                watcher = await self._bucket.watchall()
                break
            except (TimeoutError, nats.errors.Error) as exc:
                failures += 1
                log.warning("paused schedules cannot be watched yet: %s; trying again", exc)
                if await set_within(stop, retry.delay(failures)):
                    return
        try:
            stopping = asyncio.ensure_future(stop.wait())
            while not stop.is_set():
                update = asyncio.ensure_future(watcher.updates(timeout=None))  # type: ignore[no-untyped-call]
                await asyncio.wait({update, stopping}, return_when=asyncio.FIRST_COMPLETED)
                if not update.done():
                    update.cancel()
                    break
                self._apply(update.result())
            stopping.cancel()
        finally:
            await watcher.stop()  # type: ignore[no-untyped-call]

    def _apply(self, entry: KeyValue.Entry | None) -> None:
        if entry is None:  # the end of what the bucket held when the watch began
            self.watching.set()
            return
        if entry.operation in GONE:
            if self._paused.pop(entry.key, None) is not None:
                log.info("schedule %s resumed", entry.key)
            return
        self._paused[entry.key] = _paused_at(entry.value)
        log.info("schedule %s paused: its slots are skipped until it is resumed", entry.key)


def _paused_at(value: bytes | None) -> datetime | None:
    """When the schedule was paused; None for a value written by hand (``nats kv put``), however odd: the
    schedule is paused all the same. Read as bounded JSON, like every message."""
    try:
        body = json_body(value or b"{}")
        stamp = body.get("paused_at") if isinstance(body, dict) else None
        return datetime.fromisoformat(stamp) if isinstance(stamp, str) else None
    except ValueError:  # not JSON within bounds (MalformedMessage), not a time
        return None

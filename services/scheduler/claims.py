"""Which scheduler replica fires a slot: the one that creates the slot's key in a JetStream key-value
bucket. The create is atomic in the stream (expected last sequence 0), so of several replicas exactly one
succeeds; the others see the key and stand aside. There is no leader, so no hand-over gap: a replica that
dies leaves the next slot to whichever survivor reaches it first.
"""

from __future__ import annotations

import logging
from datetime import datetime

import nats.errors
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

log = logging.getLogger(__name__)


class SlotClaims:
    def __init__(self, bucket: KeyValue, replica: str) -> None:
        self._bucket = bucket
        self._replica = replica
        self._mine: set[str] = set()  # claimed here, tick not stored yet: still ours on the next try

    async def claim(self, schedule: str, slot: datetime) -> bool | None:
        """True: this replica fires ``slot``; False: another replica does; None: the bucket cannot answer
        now (a cluster electing a new leader for it) — ask again soon."""
        key = slot_key(schedule, slot)
        if key in self._mine:
            return True
        try:
            await self._bucket.create(key, self._replica.encode())
        except (KeyWrongLastSequenceError, KeyNotFoundError):
            # KeyNotFoundError: the create was refused (the key exists) and nats-py's look at the key
            # went to a copy of the bucket that had not seen it yet; either way another replica has it.
            return False
        except (TimeoutError, nats.errors.Error) as exc:
            log.warning("claim of %s not possible yet: %s", key, exc)
            return None
        self._mine.add(key)
        return True

    def fired(self, schedule: str, slot: datetime) -> None:
        """The tick of ``slot`` is stored: nothing left to remember."""
        self._mine.discard(slot_key(schedule, slot))


def slot_key(schedule: str, slot: datetime) -> str:
    """``consumer.sigma`` at 2026-11-30T04:00:00+01:00 → ``consumer.sigma.1764471600``."""
    return f"{schedule}.{int(slot.timestamp())}"

"""Which scheduler replica fires a slot: the one that creates the slot's key in a JetStream key-value
bucket. The create is atomic in the stream (expected last sequence 0), so of several replicas exactly one
succeeds; the others see the key and stand aside. There is no leader, so no hand-over gap: a replica that
dies leaves the next slot to whichever survivor reaches it first.

A claim is made a little before its slot (``scheduler.claim_ahead_s``), so at the slot only the tick's
publish is left to do. The replica that fired marks the claim ``fired``; the others look at the claim
``scheduler.takeover_after_s`` after the slot, and if it is still unfired (its replica died, or lost its
node, between claiming and storing the tick), one of them takes the claim over and fires the slot itself.
The tick's message id keeps the stream at one copy even when a slow replica and a taker both publish.
"""

from __future__ import annotations

import enum
import logging
import time
from dataclasses import dataclass
from datetime import datetime

from pydantic import BaseModel, ConfigDict, ValidationError

from shared.messaging import Bucket, BusError, KeyExists, KeyMissing

log = logging.getLogger(__name__)


class SlotClaim(BaseModel):
    """A claim's value in the bucket: who fires the slot, and whether its tick is stored."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    replica: str
    fired: bool = False
    taken_over_from: str | None = None


class Look(enum.Enum):
    """What a replica that did not claim a slot finds when it looks at the claim."""

    FIRED = "fired"  # the tick is stored: nothing left to do
    WAITING = "waiting"  # claimed, not fired yet: look again later
    TAKEN_OVER = "taken over"  # this replica now owns the claim and must fire the slot


@dataclass
class Watch:
    """A slot another replica claimed: its claim's revision when first seen unchanged, and since when."""

    revision: int
    since: float


class SlotClaims:
    def __init__(self, bucket: Bucket, replica: str) -> None:
        self._bucket = bucket
        self._replica = replica
        self._mine: dict[str, int] = {}  # claimed here, tick not stored yet: key -> claim revision
        self._theirs: dict[str, Watch] = {}  # claimed by another replica, not seen fired yet

    @property
    def replica(self) -> str:
        return self._replica

    async def claim(self, schedule: str, slot: datetime) -> bool | None:
        """True: this replica fires ``slot``; False: another replica does; None: the bucket cannot answer
        now (a cluster electing a new leader for it) — ask again soon."""
        key = slot_key(schedule, slot)
        if key in self._mine:
            return True
        if key in self._theirs:
            return False
        try:
            self._mine[key] = await self._bucket.create(key, self._value(SlotClaim(replica=self._replica)))
            return True
        except KeyExists:
            return await self._claimed_before(key)
        except KeyMissing:
            # The create was refused (the key exists) and nats-py's look at the key went to a copy of the
            # bucket that had not seen it yet: ask again, the copies agree within moments.
            return None
        except (TimeoutError, BusError) as exc:
            log.warning("claim of %s not possible yet: %s", key, exc)
            return None

    async def _claimed_before(self, key: str) -> bool | None:
        """The key exists: ours (an earlier create was stored though its answer was lost) or another's."""
        try:
            entry = await self._bucket.get(key)
        except (TimeoutError, BusError) as exc:
            log.warning("claim of %s cannot be read yet: %s", key, exc)
            return None
        claim = _decode(entry.value)
        if claim is not None and claim.replica == self._replica:
            self._mine[key] = entry.revision or 0
            return True
        self._theirs[key] = Watch(entry.revision or 0, time.time())
        return False

    async def fired(self, schedule: str, slot: datetime) -> None:
        """The tick of ``slot`` is stored: mark the claim so no other replica takes it over."""
        key = slot_key(schedule, slot)
        revision = self._mine.pop(key, None)
        if revision is None:
            return
        try:
            fired = SlotClaim(replica=self._replica, fired=True)
            await self._bucket.update(key, self._value(fired), revision)
        except (TimeoutError, BusError) as exc:
            # Another replica may take the slot over and publish it again; the stream keeps one copy.
            log.warning("claim of %s not marked fired: %s", key, exc)

    async def look(self, schedule: str, slot: datetime, takeover_after_s: float) -> Look | None:
        """For a slot another replica claimed: is it fired yet? A claim that stayed unfired and unchanged
        for ``takeover_after_s`` is taken over (by one replica: the update expects the revision seen).
        None: the bucket cannot answer now."""
        key = slot_key(schedule, slot)
        watch = self._theirs.get(key)
        if watch is None:
            return Look.FIRED
        try:
            entry = await self._bucket.get(key)
        except KeyMissing:
            return self._forget(key, Look.FIRED)  # expired: long past any catch-up
        except (TimeoutError, BusError) as exc:
            log.warning("claim of %s cannot be read yet: %s", key, exc)
            return None
        claim = _decode(entry.value)
        if claim is not None and claim.fired:
            return self._forget(key, Look.FIRED)
        revision = entry.revision or 0
        if revision != watch.revision:  # changed hands (another taker): give it its own time
            self._theirs[key] = Watch(revision, time.time())
            return Look.WAITING
        if time.time() - watch.since < takeover_after_s:
            return Look.WAITING
        return await self._take_over(key, revision, claim)

    async def _take_over(self, key: str, revision: int, claim: SlotClaim | None) -> Look | None:
        holder = claim.replica if claim is not None else "an unreadable claim"
        taken = SlotClaim(replica=self._replica, taken_over_from=holder)
        try:
            new_revision = await self._bucket.update(key, self._value(taken), revision)
        except KeyExists:
            return Look.WAITING  # fired or taken over meanwhile: the next look tells
        except (TimeoutError, BusError) as exc:
            log.warning("claim of %s cannot be taken over yet: %s", key, exc)
            return None
        log.warning("slot %s claimed by %s was not fired: this replica fires it", key, holder)
        del self._theirs[key]
        self._mine[key] = new_revision
        return Look.TAKEN_OVER

    def forget(self, schedule: str, slot: datetime) -> None:
        """Stop tracking ``slot`` (given up after the catch-up window)."""
        key = slot_key(schedule, slot)
        self._mine.pop(key, None)
        self._theirs.pop(key, None)

    def _forget(self, key: str, look: Look) -> Look:
        self._theirs.pop(key, None)
        return look

    @staticmethod
    def _value(claim: SlotClaim) -> bytes:
        return claim.model_dump_json(exclude_defaults=True).encode()


def _decode(value: bytes | None) -> SlotClaim | None:
    """A claim as written by a replica; None for anything else (an older version wrote the bare name)."""
    try:
        return SlotClaim.model_validate_json(value or b"")
    except ValidationError:
        return None


def slot_key(schedule: str, slot: datetime) -> str:
    """``consumer.sigma`` at 2026-11-30T04:00:00+01:00 → ``consumer.sigma.1764471600``."""
    return f"{schedule}.{int(slot.timestamp())}"

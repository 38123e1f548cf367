"""Which scheduler replica fires a slot: the one that creates the slot's key in a JetStream key-value
bucket. The create is atomic in the stream (expected last sequence 0), so of several replicas exactly one
succeeds; the others see the key and stand aside. There is no leader, so no hand-over gap: a replica that
dies leaves the next slot to whichever survivor reaches it first.
"""

from __future__ import annotations

import logging
from datetime import datetime

import nats.errors
from nats.js.errors import KeyWrongLastSequenceError
from nats.js.kv import KeyValue

log = logging.getLogger(__name__)


class SlotClaims:
    def __init__(self, bucket: KeyValue, replica: str) -> None:
        self._bucket = bucket
        self._replica = replica

    async def claim(self, schedule: str, slot: datetime) -> bool:
        """True: this replica fires ``slot``. When the bucket cannot answer, True as well: the tick's
        message id still keeps it out of the stream twice, and no slot is lost to a key-value outage."""
        try:
            await self._bucket.create(slot_key(schedule, slot), self._replica.encode())
        except KeyWrongLastSequenceError:
            return False
        except (TimeoutError, nats.errors.Error) as exc:
            log.warning("claim of %s for slot %s failed (%s); firing anyway", schedule, slot.isoformat(), exc)
        return True


def slot_key(schedule: str, slot: datetime) -> str:
    """``consumer.sigma`` at 2026-11-30T04:00:00+01:00 → ``consumer.sigma.1764471600``."""
    return f"{schedule}.{int(slot.timestamp())}"

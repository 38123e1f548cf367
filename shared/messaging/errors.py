"""The failures of NATS that code outside :mod:`shared.messaging` catches, each named once here, so that
no module outside this package imports nats-py. Each is nats-py's own class under a name of ours.
"""

from __future__ import annotations

import nats.errors
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

BusError = nats.errors.Error  # whatever the client or JetStream raises (not answering in time, too)
NoResponders = nats.errors.NoRespondersError  # a request nobody subscribes to
RequestTimeout = nats.errors.TimeoutError  # a request not answered in time (an asyncio.TimeoutError too)
KeyExists = KeyWrongLastSequenceError  # a key-value create or update that lost the race for the key
KeyMissing = KeyNotFoundError  # a key-value key that is not (or not yet, on this copy) in the bucket
Bucket = KeyValue  # a JetStream key-value bucket, as :meth:`shared.messaging.Bus.key_value` hands it out

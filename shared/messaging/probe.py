"""Is a service alive? Connect once, ask every service for a heartbeat, wait for one that is wanted.

A probe (``syntx health``) gives a verdict rather than waiting for NATS: it connects without
reconnecting and without the streams a service sets up, so its answer takes at most its wait.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from nats.aio.msg import Msg

from shared.config import NatsSettings
from shared.messaging import subjects
from shared.messaging.bodies import MalformedMessage
from shared.messaging.bus import connect_options
from shared.messaging.connection import Client
from shared.messaging.decoding import decode_event
from shared.messaging.messages import ServiceHeartbeat
from shared.timing import set_within

Wanted = Callable[[ServiceHeartbeat], bool]


async def heartbeat_heard(settings: NatsSettings, name: str, wanted: Wanted, wait_s: float) -> bool:
    """True once a heartbeat ``wanted`` accepts arrives within ``wait_s``. Raises ``OSError``,
    ``TimeoutError`` or :data:`~shared.messaging.errors.BusError` when NATS cannot be reached."""
    options = connect_options(settings, name)
    # One retry (0 would mean "forever" to the client), then a verdict.
    options.update(allow_reconnect=False, max_reconnect_attempts=1, error_cb=_quiet, connect_timeout=wait_s)
    client = Client()
    try:
        await client.connect(**options)
        return await _heard(client, wanted, wait_s)
    finally:
        await client.close()  # also after a refused connect: the client may hold the socket


async def _heard(client: Client, wanted: Wanted, wait_s: float) -> bool:
    heard = asyncio.Event()

    async def on_beat(msg: Msg) -> None:
        try:
            beat = decode_event(msg.data, subjects.SERVICE_HEARTBEAT)
        except MalformedMessage:
            return  # not a heartbeat this version understands; others may still answer
        if isinstance(beat, ServiceHeartbeat) and wanted(beat):
            heard.set()

    await client.subscribe(subjects.SERVICE_HEARTBEAT, cb=on_beat)
    await client.publish(subjects.SERVICE_PING, b"")
    await client.flush(timeout=max(1, round(wait_s)))
    return await set_within(heard, wait_s)


async def _quiet(_exc: Exception) -> None:
    """Connection errors end in one line from the caller; the client's own reports would repeat it."""

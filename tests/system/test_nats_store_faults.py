"""The embedded nats-server on a data disk that fills up (a real tmpfs; skipped where mounting is not
permitted).

Once a write to its JetStream store failed, nats-server refuses every later write to that stream — or
disables JetStream — until it restarts: it never tries again by itself, even when the space is back (the
first test shows it, and fails once nats-server recovers by itself; then the workaround can go). Found by
tests/system/test_chaos_faults.py: after a full disk, no tick could be stored any more and the loop stopped
but
for watching consumers. ``syntx up`` now restarts its embedded server as soon as the store can be
written again (the second test).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import nats
import nats.errors
import pytest
from nats.js import JetStreamContext
from nats.js import api as js_api

from shared.backoff import Backoff
from syntx.embedded_nats import EmbeddedNats
from tests.support.diskfaults import fill, tmpfs
from tests.support.harness import free_port

pytestmark = pytest.mark.timeout(120)

DISK_BYTES = 16 * 1024 * 1024
PROBE = Backoff(base_s=0.1, max_s=0.5)
MESSAGE = b"x" * 1024  # a tick is smaller; a few fill the last partial block sooner
FAILED_WITHIN_S = 30.0
PUBLISH_WAIT_S = 1.0


@asynccontextmanager
async def embedded(disk: Path) -> AsyncIterator[tuple[EmbeddedNats, JetStreamContext]]:
    """``syntx up``'s embedded server with its store on ``disk``, a client and a file-backed stream."""
    server = EmbeddedNats(
        disk / "nats", free_port(), start_timeout_s=20, stop_timeout_s=10, store_probe=PROBE
    )
    await server.start()
    client = await nats.connect(server.url, reconnect_time_wait=0.1, max_reconnect_attempts=-1)
    try:
        js = client.jetstream()
        await js.add_stream(name="TICKS", subjects=["ticks.>"], storage=js_api.StorageType.FILE)
        yield server, js
    finally:
        await client.close()
        await server.stop()


async def stored(js: JetStreamContext) -> bool:
    try:
        await js.publish("ticks.a", MESSAGE, timeout=PUBLISH_WAIT_S)
    except (TimeoutError, nats.errors.Error):
        return False
    return True


async def publish_until_the_store_fails(server: EmbeddedNats, js: JetStreamContext) -> None:
    """Publish until the server says a write to its store failed (the first few may still be acked: it
    writes behind)."""
    async with asyncio.timeout(FAILED_WITHIN_S):
        while server.store_failure is None:
            await stored(js)


async def test_nats_server_refuses_every_write_after_a_failed_one_even_when_the_space_is_back(
    tmp_path: Path,
) -> None:
    with tmpfs(tmp_path / "disk", DISK_BYTES) as disk:
        async with embedded(disk) as (server, js):
            assert await stored(js)
            filler = await asyncio.to_thread(fill, disk)
            await publish_until_the_store_fails(server, js)
            filler.unlink()
            refused = [not await stored(js) for _ in range(3)]
    assert all(refused), "nats-server stores again by itself: the restart in EmbeddedNats.wait can go"
    assert "critical write error" in (server.store_failure or "").lower(), server.store_failure


async def test_the_embedded_server_is_restarted_once_its_store_can_be_written_and_stores_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    with tmpfs(tmp_path / "disk", DISK_BYTES) as disk:
        async with embedded(disk) as (server, js):
            filler = await asyncio.to_thread(fill, disk)
            await publish_until_the_store_fails(server, js)
            waiting = asyncio.create_task(server.wait())
            try:
                async with asyncio.timeout(FAILED_WITHIN_S):  # the first probe fails: the disk is full
                    while "cannot be written yet" not in caplog.text:  # noqa: ASYNC110 - a log line
                        await asyncio.sleep(0.05)
                assert not waiting.done(), "stopped while the store still cannot be written"
                filler.unlink()
                await asyncio.wait_for(waiting, timeout=10 * PROBE.max_s)
            finally:
                waiting.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await waiting
            await server.start()  # what syntx up does when its server ended
            async with asyncio.timeout(FAILED_WITHIN_S):
                while not await stored(js):  # the client reconnects meanwhile
                    pass
    said = [r.getMessage() for r in caplog.records if r.name == "syntx.embedded_nats"]
    assert any("cannot write its JetStream store" in line for line in said), said
    assert any("restarting the embedded nats-server" in line for line in said), said

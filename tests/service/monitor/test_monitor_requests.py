"""Requests to the monitor are bounded work: recounts are shared, a plain status never waits behind them."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from shared.messaging import subjects
from tests.support.monitors import monitor_serving, monitor_settings
from tests.support.natsserver import NatsServer

RECOUNT_REQUESTS = 300  # the flood as it was found: it held a plain status up for 34 s


async def test_recount_requests_share_recounts_and_a_plain_status_never_waits_behind_them(
    tmp_path: Path, nats_server: NatsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with monitor_serving(monitor_settings(tmp_path, nats_server, 0)) as (monitor, nc):
        counter = monitor.counter
        recount = counter.reconcile_in_thread
        gate, recounts = asyncio.Event(), []

        async def held_recount() -> int:  # a recount as slow as the test wants: until the gate opens
            recounts.append(1)
            await gate.wait()
            return await recount()

        monkeypatch.setattr(counter, "reconcile_in_thread", held_recount)
        asking = [
            asyncio.ensure_future(nc.request(subjects.STATUS, b'{"reconcile": true}', timeout=30))
            for _ in range(RECOUNT_REQUESTS)
        ]
        plain = json.loads((await nc.request(subjects.STATUS, b"", timeout=5)).data)
        assert plain["counts"]["incoming"] == 0
        assert not any(request.done() for request in asking)  # answered while every recount waits
        gate.set()
        replies = await asyncio.gather(*asking)
    assert len(replies) == RECOUNT_REQUESTS
    assert len(recounts) == 2  # the first request's, and one shared by all that came during it

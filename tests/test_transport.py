"""The asyncio HTTP/1.1 transport for http:// backends, against a real loopback server."""

from __future__ import annotations

import asyncio

import httpx

from shared.llm.transport import AsyncioTransport, transport_for
from tests.llm_server import Reply, ScriptedServer

LIMITS = httpx.Limits(max_connections=4, max_keepalive_connections=4)


async def test_sequential_requests_reuse_one_keep_alive_connection(server: ScriptedServer) -> None:
    server.default = Reply(json={"response": "ja"})
    async with httpx.AsyncClient(transport=AsyncioTransport(LIMITS), timeout=5) as client:
        for number in range(5):
            reply = await client.post(f"{server.url}/api/chat", json={"n": number})
            assert (reply.status_code, reply.json()) == (200, {"response": "ja"})
    assert server.connections == 1
    assert [request.json() for request in server.requests] == [{"n": n} for n in range(5)]
    assert server.requests[0].headers["content-length"] == str(len(server.requests[0].body))


async def test_a_connection_the_server_closed_is_not_reused(server: ScriptedServer) -> None:
    server.default = Reply(json={"ok": True}, action="reply_and_close")
    async with httpx.AsyncClient(transport=AsyncioTransport(LIMITS), timeout=5) as client:
        for _ in range(3):
            assert (await client.post(f"{server.url}/x", json={})).json() == {"ok": True}
    assert server.connections == 3


async def test_concurrent_requests_stay_within_the_connection_limit(server: ScriptedServer) -> None:
    server.default = Reply(json={"ok": True}, delay_s=0.05)  # a slow answer, so requests overlap
    limits = httpx.Limits(max_connections=2, max_keepalive_connections=2)
    async with httpx.AsyncClient(transport=AsyncioTransport(limits), timeout=5) as client:
        replies = await asyncio.gather(*(client.post(f"{server.url}/x", json={}) for _ in range(8)))
    assert all(reply.status_code == 200 for reply in replies)
    assert server.max_in_flight == 2 and server.connections == 2


async def test_errors_are_httpx_errors(server: ScriptedServer) -> None:
    server.script(Reply(action="truncate", json={"response": "abgeschnitten"}), Reply(action="reset"))
    server.default = Reply(action="hang")
    async with httpx.AsyncClient(
        transport=AsyncioTransport(LIMITS), timeout=httpx.Timeout(5, read=0.2)
    ) as client:
        for expected in (httpx.RemoteProtocolError, httpx.ReadError, httpx.ReadTimeout):
            try:
                await client.post(f"{server.url}/x", json={})
            except expected:
                continue
            raise AssertionError(f"expected {expected.__name__}")


def test_https_keeps_the_default_transport() -> None:
    assert transport_for("https://api.example.invalid/v1", LIMITS) is None
    assert isinstance(transport_for("http://127.0.0.1:8000/v1", LIMITS), AsyncioTransport)


async def test_a_body_is_streamed_and_a_reply_left_unread_frees_its_slot() -> None:
    """A reply is read as it arrives; closing it early closes its connection and frees its slot."""
    from benchmarks.hostile_backend import HostileBackend

    backend = HostileBackend("huge", size_mb=50)
    await backend.start()
    one = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    try:
        async with httpx.AsyncClient(transport=AsyncioTransport(one), timeout=5) as client:
            for _ in range(3):  # with the slot kept, the second request would wait for the pool forever
                async with client.stream("POST", f"{backend.url}/api/chat", json={}) as reply:
                    first = await anext(reply.aiter_bytes())
                    assert first.startswith(b'{"response": "')
    finally:
        await backend.close()
    assert backend.requests == 3
    assert backend.sent_bytes < 3 * 50 * 1024 * 1024 / 2  # each reply was cut short, not buffered whole

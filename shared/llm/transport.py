"""An httpx transport for ``http://`` backends (loopback, LAN): HTTP/1.1 with h11 on asyncio streams.

httpx's default transport goes through httpcore and anyio, whose cancel scopes, locks and per-request
pool checks cost more CPU than the rest of a consumer's work per job against a fast local backend
(see BENCHMARKS.md). This transport keeps httpx as the client (timeouts, auth, headers, errors) and does
only what an LLM call needs: keep-alive connections up to a limit, whole bodies, no TLS, no HTTP/2.
``https://`` backends keep httpx's default transport: their latency dwarfs the difference.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Awaitable
from typing import Any, TypeVar

import h11
import httpx

Origin = tuple[str, int]
T = TypeVar("T")


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.h11 = h11.Connection(our_role=h11.CLIENT)

    def usable(self) -> bool:
        """An idle connection the server has not closed meanwhile."""
        return not (self.writer.transport.is_closing() or self.reader.at_eof())

    def close(self) -> None:
        self.writer.close()

    async def exchange(self, request: httpx.Request, body: bytes, timeouts: dict[str, Any]) -> httpx.Response:
        headers = [(name, value) for name, value in request.headers.raw if name.lower() != b"content-length"]
        headers.append((b"Content-Length", str(len(body)).encode()))
        target = request.url.raw_path
        data = self.h11.send(h11.Request(method=request.method, target=target, headers=headers))
        data += self.h11.send(h11.Data(data=body)) + self.h11.send(h11.EndOfMessage())
        await _io(self._write(data), timeouts.get("write"), httpx.WriteTimeout, httpx.WriteError, request)
        return await _io(
            self._read_response(request), timeouts.get("read"), httpx.ReadTimeout, httpx.ReadError, request
        )

    async def _write(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def _read_response(self, request: httpx.Request) -> httpx.Response:
        head = await self._next_event(request)
        if not isinstance(head, h11.Response):
            raise httpx.RemoteProtocolError(
                f"unexpected {type(head).__name__} from the server", request=request
            )
        chunks = []
        while isinstance(event := await self._next_event(request), h11.Data):
            chunks.append(bytes(event.data))
        return httpx.Response(
            status_code=head.status_code,
            headers=[(bytes(name), bytes(value)) for name, value in head.headers],
            content=b"".join(chunks),
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": bytes(head.reason)},
        )

    async def _next_event(self, request: httpx.Request) -> Any:
        while True:
            try:
                event = self.h11.next_event()
            except h11.RemoteProtocolError as exc:
                raise httpx.RemoteProtocolError(str(exc), request=request) from exc
            if event is not h11.NEED_DATA:
                return event
            data = await self.reader.read(65536)
            if not data and self.h11.their_state is h11.SEND_RESPONSE:
                raise httpx.RemoteProtocolError(
                    "server disconnected without sending a response", request=request
                )
            self.h11.receive_data(data)

    def reusable(self) -> bool:
        if self.h11.our_state is h11.DONE and self.h11.their_state is h11.DONE:
            self.h11.start_next_cycle()
            return self.usable()
        return False


async def _io(
    work: Awaitable[T],
    limit_s: float | None,
    timed_out: type[httpx.TimeoutException],
    failed: type[httpx.TransportError],
    request: httpx.Request,
) -> T:
    """``work`` within ``limit_s``; timeouts and socket errors become the given httpx errors."""
    try:
        return await asyncio.wait_for(work, limit_s)
    except TimeoutError as exc:
        raise timed_out(f"no progress within {limit_s}s", request=request) from exc
    except OSError as exc:
        raise failed(str(exc) or type(exc).__name__, request=request) from exc


class AsyncioTransport(httpx.AsyncBaseTransport):
    """Keep-alive HTTP/1.1 over asyncio streams, at most ``limits.max_connections`` at once."""

    def __init__(self, limits: httpx.Limits) -> None:
        self._slots = asyncio.Semaphore(limits.max_connections or 100)
        self._keep = limits.max_keepalive_connections or 0
        self._idle: dict[Origin, list[_Connection]] = {}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeouts: dict[str, Any] = request.extensions.get("timeout", {})
        body = b"".join([chunk async for chunk in request.stream])  # type: ignore[union-attr]
        origin = (request.url.host, request.url.port or 80)
        await _io(self._slots.acquire(), timeouts.get("pool"), httpx.PoolTimeout, httpx.ConnectError, request)
        try:
            connection = self._idle_connection(origin) or await self._connect(origin, request, timeouts)
            try:
                response = await connection.exchange(request, body, timeouts)
            except BaseException:
                connection.close()
                raise
            self._put_back(origin, connection)
            return response
        finally:
            self._slots.release()

    def _idle_connection(self, origin: Origin) -> _Connection | None:
        idle = self._idle.get(origin, [])
        while idle:
            connection = idle.pop()
            if connection.usable():
                return connection
            connection.close()
        return None

    async def _connect(self, origin: Origin, request: httpx.Request, timeouts: dict[str, Any]) -> _Connection:
        opening = asyncio.open_connection(*origin)
        reader, writer = await _io(
            opening, timeouts.get("connect"), httpx.ConnectTimeout, httpx.ConnectError, request
        )
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return _Connection(reader, writer)

    def _put_back(self, origin: Origin, connection: _Connection) -> None:
        idle = self._idle.setdefault(origin, [])
        if connection.reusable() and len(idle) < self._keep:
            idle.append(connection)
        else:
            connection.close()

    async def aclose(self) -> None:
        for idle in self._idle.values():
            for connection in idle:
                connection.close()
                with contextlib.suppress(OSError):
                    await connection.writer.wait_closed()
        self._idle.clear()


def transport_for(url: str, limits: httpx.Limits) -> httpx.AsyncBaseTransport | None:
    """:class:`AsyncioTransport` for ``http://`` URLs; ``None`` (httpx's default) otherwise."""
    return AsyncioTransport(limits) if httpx.URL(url).scheme == "http" else None

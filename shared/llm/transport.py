"""An httpx transport for ``http://`` backends (loopback, LAN): HTTP/1.1 with h11 on asyncio streams.

httpx's default transport goes through httpcore and anyio, whose cancel scopes, locks and per-request
pool checks cost more CPU than the rest of a consumer's work per job against a fast local backend
(see BENCHMARKS.md). This transport keeps httpx as the client (timeouts, auth, headers, errors) and does
only what an LLM call needs: keep-alive connections up to a limit, bodies streamed to the caller (who
bounds them), no TLS, no HTTP/2.
``https://`` backends keep httpx's default transport: their latency dwarfs the difference.
"""

from __future__ import annotations

import asyncio
import contextlib
import select
import socket
from collections.abc import AsyncIterator, Awaitable
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
        """An idle connection the server has not closed meanwhile.

        Also asks the socket itself: an idle connection with something to read has been closed by the
        server (or is out of step), even when the event loop has not yet delivered that to the reader.
        """
        if self.writer.transport.is_closing() or self.reader.at_eof():
            return False
        try:
            readable, _, _ = select.select([self.writer.get_extra_info("socket")], [], [], 0)
        except (OSError, ValueError):
            return False
        return not readable

    def close(self) -> None:
        self.writer.close()

    async def send(self, request: httpx.Request, body: bytes, timeouts: dict[str, Any]) -> h11.Response:
        """Send ``request`` and read the head of the reply; the body is read by :class:`_Body`."""
        headers = [(name, value) for name, value in request.headers.raw if name.lower() != b"content-length"]
        headers.append((b"Content-Length", str(len(body)).encode()))
        target = request.url.raw_path
        data = self.h11.send(h11.Request(method=request.method, target=target, headers=headers))
        data += self.h11.send(h11.Data(data=body)) + self.h11.send(h11.EndOfMessage())
        await _io(self._write(data), timeouts.get("write"), httpx.WriteTimeout, httpx.WriteError, request)
        head = await self.read_event(request, timeouts)
        if not isinstance(head, h11.Response):
            raise httpx.RemoteProtocolError(
                f"unexpected {type(head).__name__} from the server", request=request
            )
        return head

    async def _write(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def read_event(self, request: httpx.Request, timeouts: dict[str, Any]) -> Any:
        """The next HTTP event; the read timeout applies to each wait for data, as in httpx."""
        while True:
            try:
                event = self.h11.next_event()
            except h11.RemoteProtocolError as exc:
                raise httpx.RemoteProtocolError(str(exc), request=request) from exc
            if event is not h11.NEED_DATA:
                return event
            reading = self.reader.read(65536)
            data = await _io(reading, timeouts.get("read"), httpx.ReadTimeout, httpx.ReadError, request)
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
        async with asyncio.timeout(limit_s):  # no task per call, unlike asyncio.wait_for before 3.12
            return await work
    except TimeoutError as exc:
        raise timed_out(f"no progress within {limit_s}s", request=request) from exc
    except OSError as exc:
        raise failed(str(exc) or type(exc).__name__, request=request) from exc


class _Body(httpx.AsyncByteStream):
    """A reply body read as it arrives (the caller decides how much it takes); closing it gives the
    connection back (a finished exchange) or closes it (a body not read to its end), and frees the slot."""

    def __init__(
        self,
        transport: AsyncioTransport,
        origin: Origin,
        connection: _Connection,
        request: httpx.Request,
        timeouts: dict[str, Any],
    ) -> None:
        self._transport = transport
        self._origin = origin
        self._connection = connection
        self._request = request
        self._timeouts = timeouts
        self._finished = False
        self._closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while not self._finished:
            event = await self._connection.read_event(self._request, self._timeouts)
            if isinstance(event, h11.Data):
                yield bytes(event.data)
            else:
                self._finished = True

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._transport.done_with(self._origin, self._connection, reusable=self._finished)


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
        except BaseException:
            self._slots.release()
            raise
        try:
            head = await connection.send(request, body, timeouts)
        except BaseException:
            self.done_with(origin, connection, reusable=False)
            raise
        return httpx.Response(
            status_code=head.status_code,
            headers=[(bytes(name), bytes(value)) for name, value in head.headers],
            stream=_Body(self, origin, connection, request, timeouts),
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": bytes(head.reason)},
        )

    def done_with(self, origin: Origin, connection: _Connection, *, reusable: bool) -> None:
        """An exchange ended: keep its connection for the next one if it can be, free its slot."""
        if reusable:
            self._put_back(origin, connection)
        else:
            connection.close()
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

"""``/metrics`` and ``/healthz`` over HTTP/1.1: h11 reads the requests, this module bounds the clients.

The monitor's endpoint is the one listener of the system a network can reach, so what a client can hold
is bounded, and a slow or oversized client cannot keep a scrape out:

- connections: at most ``monitor.max_connections`` open; one more arriving when full drops the connection
  that has waited longest without sending a whole request (a slowloris holds nothing for long), or, if
  every one is being answered, is itself closed at once;
- the request line and headers together: at most :data:`MAX_HEAD_BYTES` (h11's own buffer bound; more is
  answered 431, a malformed head 400);
- time: the whole exchange within ``monitor.request_timeout_s``, a request trickled byte by byte or a
  reply never read included;
- one request per connection (``Connection: close``): nothing is kept between scrapes.

The parsing is h11's (python-hyper's HTTP/1.1 state machine, which httpx already brings); the bodies are
prometheus_client's (:mod:`services.monitor.exposition`). HEAD is answered with GET's headers and no body,
other methods with 405 and ``Allow``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus

import h11

log = logging.getLogger(__name__)

# h11's bound on a request's head (request line + headers) before it is complete: 16 KiB, as h11 ships
# it; Prometheus, curl and load balancers send a few hundred bytes.
MAX_HEAD_BYTES = 16 * 1024
READ_BYTES = 4096  # one read from a client: a whole scrape request fits
ALLOWED = "GET, HEAD"
SERVER = "syntx-monitor"


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]  # names in lower case; a repeated header's values joined by ", "

    def header(self, name: str) -> str:
        return self.headers.get(name, "")


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    content_type: str = "text/plain; charset=utf-8"
    headers: tuple[tuple[str, str], ...] = ()


Route = Callable[[Request], Reply]


@dataclass
class _Clients:
    """The open connections, and of them those still sending their request (oldest first)."""

    limit: int
    open: set[asyncio.StreamWriter] = field(default_factory=set)
    reading: dict[asyncio.StreamWriter, None] = field(default_factory=dict)  # insertion order: oldest first

    def admit(self, writer: asyncio.StreamWriter) -> bool:
        """Make room for ``writer`` by dropping the oldest client still sending its request; False (the
        newcomer is not taken) when every open connection is being answered."""
        if len(self.open) >= self.limit:
            if not self.reading:
                return False
            oldest = next(iter(self.reading))
            self.forget(oldest)
            oldest.transport.abort()
        self.open.add(writer)
        self.reading[writer] = None
        return True

    def answering(self, writer: asyncio.StreamWriter) -> None:
        self.reading.pop(writer, None)

    def forget(self, writer: asyncio.StreamWriter) -> None:
        self.open.discard(writer)
        self.reading.pop(writer, None)


class HttpEndpoint:
    def __init__(self, routes: dict[str, Route], timeout_s: float, max_connections: int) -> None:
        self._routes = routes
        self._timeout_s = timeout_s
        self._clients = _Clients(max_connections)
        self._server: asyncio.Server | None = None

    async def start(self, host: str, port: int) -> int:
        backlog = self._clients.limit  # a burst of scrapes waits in the kernel, not refused
        self._server = await asyncio.start_server(self._handle, host, port, backlog=backlog)
        bound: int = self._server.sockets[0].getsockname()[1]
        return bound

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in list(self._clients.open):
                writer.transport.abort()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self._clients.admit(writer):
            writer.transport.abort()
            return
        try:
            async with asyncio.timeout(self._timeout_s):
                await self._exchange(reader, writer)
        except (TimeoutError, ConnectionError, h11.LocalProtocolError) as exc:
            log.debug("http connection dropped: %s", exc or type(exc).__name__)
        finally:
            self._clients.forget(writer)
            writer.close()

    async def _exchange(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connection = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD_BYTES)
        try:
            request = await _request(connection, reader)
        except h11.RemoteProtocolError as exc:
            reply = _plain(exc.error_status_hint, f"bad request: {exc}")
            if connection.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                await _send(connection, writer, reply, head_only=False)
            return
        if request is None:
            return  # the client went away before it asked
        self._clients.answering(writer)
        head_only = request.method == "HEAD"
        await _send(connection, writer, self._reply(request), head_only)

    def _reply(self, request: Request) -> Reply:
        route = self._routes.get(request.path)
        if route is None:
            return _plain(HTTPStatus.NOT_FOUND, f"not found; try {', '.join(sorted(self._routes))}")
        if request.method not in ("GET", "HEAD"):
            return _plain(HTTPStatus.METHOD_NOT_ALLOWED, "method not allowed", (("Allow", ALLOWED),))
        return route(request)


async def _request(connection: h11.Connection, reader: asyncio.StreamReader) -> Request | None:
    """The request's head, read until h11 has it whole; None when the client closed first."""
    while True:
        event = connection.next_event()
        if isinstance(event, h11.Request):
            headers: dict[str, str] = {}
            for name, value in event.headers:
                key = name.decode("latin-1").lower()
                text = value.decode("latin-1")
                headers[key] = f"{headers[key]}, {text}" if key in headers else text
            path = event.target.decode("latin-1").split("?", 1)[0]
            return Request(event.method.decode("latin-1"), path, headers)
        if isinstance(event, h11.ConnectionClosed):
            return None
        if event is h11.NEED_DATA:
            connection.receive_data(await reader.read(READ_BYTES))


async def _send(
    connection: h11.Connection, writer: asyncio.StreamWriter, reply: Reply, head_only: bool
) -> None:
    headers = [
        ("Content-Type", reply.content_type),
        ("Content-Length", str(len(reply.body))),
        ("Connection", "close"),
        ("Server", SERVER),
        *reply.headers,
    ]
    reason = HTTPStatus(reply.status).phrase.encode()
    data = connection.send(h11.Response(status_code=reply.status, headers=headers, reason=reason)) or b""
    if not head_only:
        data += connection.send(h11.Data(data=reply.body)) or b""
    data += connection.send(h11.EndOfMessage()) or b""
    writer.write(data)
    with contextlib.suppress(ConnectionError):
        await writer.drain()


def _plain(status: int, text: str, headers: tuple[tuple[str, str], ...] = ()) -> Reply:
    return Reply(status, f"{text}\n".encode(), headers=headers)

"""A minimal HTTP endpoint for ``/metrics`` and ``/healthz`` on asyncio (no extra thread)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)

MAX_REQUEST_LINE = 8192
REASONS = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    content_type: str = "text/plain; charset=utf-8"


Route = Callable[[], Reply]


class HttpEndpoint:
    def __init__(self, routes: dict[str, Route], read_timeout_s: float) -> None:
        self._routes = routes
        self._read_timeout_s = read_timeout_s
        self._server: asyncio.Server | None = None

    async def start(self, host: str, port: int) -> int:
        self._server = await asyncio.start_server(self._handle, host, port)
        bound: int = self._server.sockets[0].getsockname()[1]
        return bound

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            reply = await asyncio.wait_for(self._reply_for(reader), self._read_timeout_s)
            head = (
                f"HTTP/1.1 {reply.status} {REASONS.get(reply.status, '')}\r\n"
                f"Content-Type: {reply.content_type}\r\nContent-Length: {len(reply.body)}\r\n"
                "Connection: close\r\n\r\n"
            )
            writer.write(head.encode("latin-1") + reply.body)
            await writer.drain()
        except (TimeoutError, ConnectionError, asyncio.IncompleteReadError, ValueError) as exc:
            log.debug("http request dropped: %s", exc)
        finally:
            writer.close()

    async def _reply_for(self, reader: asyncio.StreamReader) -> Reply:
        request_line = (await reader.readline())[:MAX_REQUEST_LINE].decode("latin-1").split()
        while (await reader.readline()) not in (b"\r\n", b"\n", b""):
            pass  # headers are not needed
        if len(request_line) < 2:
            raise ValueError("bad request line")
        method, target = request_line[0], request_line[1].split("?", 1)[0]
        route = self._routes.get(target)
        if route is None:
            return Reply(404, b"not found\n")
        if method not in ("GET", "HEAD"):
            return Reply(405, b"method not allowed\n")
        return route()

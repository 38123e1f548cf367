"""A scriptable HTTP/1.1 server on 127.0.0.1 for backend tests: each request gets the next scripted Reply."""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Literal

Action = Literal["reply", "reply_and_close", "hang", "truncate", "reset"]


@dataclass(frozen=True)
class Reply:
    """What the server does with one request.

    ``reply`` answers normally (keeping the connection); ``reply_and_close`` answers, then closes;
    ``hang`` never answers; ``truncate`` announces a longer Content-Length than it
    sends and closes; ``reset`` closes the connection with a TCP RST instead of answering.
    """

    status: int = 200
    json: Any = None
    body: bytes | None = None
    content_type: str = "application/json"
    headers: Mapping[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    action: Action = "reply"

    def encoded(self) -> bytes:
        return self.body if self.body is not None else json.dumps(self.json).encode()


@dataclass(frozen=True)
class Recorded:
    """One request as the server read it; ``at`` is ``time.monotonic()`` when it had been read."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    def json(self) -> Any:
        return json.loads(self.body)


UNSCRIPTED = Reply(status=500, body=b"unscripted request", content_type="text/plain")


class ScriptedServer:
    """``script(...)`` queues replies; requests beyond the script get ``default``."""

    def __init__(
        self, default: Reply = UNSCRIPTED, chooser: Callable[[Recorded], Reply] | None = None
    ) -> None:
        self.default = default
        self.chooser = chooser
        self.requests: list[Recorded] = []
        self.max_in_flight = 0
        self.connections = 0
        self._in_flight = 0
        self._script: deque[Reply] = deque()
        self._seen = asyncio.Condition()
        self._closing = asyncio.Event()
        self._handlers: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def script(self, *replies: Reply) -> None:
        self._script.extend(replies)

    async def wait_for_requests(self, count: int, timeout_s: float = 5.0) -> list[Recorded]:
        async with asyncio.timeout(timeout_s), self._seen:
            await self._seen.wait_for(lambda: len(self.requests) >= count)
        return list(self.requests)

    async def close(self) -> None:
        """Stop listening, end hanging replies, close every connection and wait for the handlers."""
        self._closing.set()
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()
        handlers = list(self._handlers)
        if handlers:
            await asyncio.wait(handlers, timeout=5.0)
        if self._server is not None:
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self._writers.add(writer)
        self.connections += 1
        try:
            while await self._one_exchange(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._handlers.discard(task)
            self._writers.discard(writer)
            writer.close()

    async def _one_exchange(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        request = await _read_request(reader)
        if request is None:
            return False
        async with self._seen:
            self.requests.append(request)
            self._seen.notify_all()
        if self._script:
            reply = self._script.popleft()
        else:
            reply = self.chooser(request) if self.chooser else self.default
        self._in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self._in_flight)
        try:
            return await self._answer(reply, writer)
        finally:
            self._in_flight -= 1

    async def _answer(self, reply: Reply, writer: asyncio.StreamWriter) -> bool:
        if reply.delay_s:
            await asyncio.sleep(reply.delay_s)  # models a slow server, not a wait for a condition
        if reply.action == "hang":
            await self._closing.wait()
            return False
        if reply.action == "reset":
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
            return False
        body = reply.encoded()
        declared = len(body) + 100 if reply.action == "truncate" else len(body)
        writer.write(_head(reply, declared) + body)
        await writer.drain()
        return reply.action == "reply"


def _head(reply: Reply, content_length: int) -> bytes:
    try:
        phrase = HTTPStatus(reply.status).phrase
    except ValueError:
        phrase = "Other"
    lines = [f"HTTP/1.1 {reply.status} {phrase}", f"Content-Type: {reply.content_type}"]
    lines += [f"Content-Length: {content_length}", *(f"{k}: {v}" for k, v in reply.headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def _read_request(reader: asyncio.StreamReader) -> Recorded | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    request_line, *header_lines = head.decode("latin-1").split("\r\n")
    method, path, _version = request_line.split(" ", 2)
    headers = {}
    for line in header_lines:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return Recorded(method, path, headers, body, time.monotonic())


class HeldServer(ScriptedServer):
    """Answers every request with ``reply`` — once ``open`` is set (cleared, it holds the answers back,
    as a slow LLM would); counts the requests whose body holds a text."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(default=reply)
        self.open = asyncio.Event()
        self.open.set()

    async def _answer(self, reply: Reply, writer: asyncio.StreamWriter) -> bool:
        await self.open.wait()
        return await super()._answer(reply, writer)

    def calls(self, text: str) -> int:
        return sum(text in request.body.decode("utf-8", "replace") for request in self.requests)

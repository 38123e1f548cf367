"""A hostile loopback LLM for the bad-input suite and ``python -m benchmarks.hostile``: it speaks the
``syntx`` protocol (``POST /api/chat``) but answers badly on purpose.

Modes: ``huge`` streams a valid JSON answer of ``--size-mb`` MB (chunked, so only counting bytes can
stop it), ``huge_declared`` the same with its ``Content-Length`` announced up front, ``drip`` sends a
valid answer one byte every ``--drip-s`` seconds. The body is generated as it is sent: the server never
holds it in memory. ``python -m benchmarks.hostile_backend --mode huge --port 0`` writes ``port N``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import Iterator
from typing import Literal

Mode = Literal["huge", "huge_declared", "drip"]
MODES: tuple[Mode, ...] = ("huge", "huge_declared", "drip")
CHUNK = 64 * 1024
_PREFIX = b'{"response": "'
_SUFFIX = b'"}'


class HostileBackend:
    """``start()`` listens on 127.0.0.1 (``port`` 0: any free port); ``requests`` counts what came in."""

    def __init__(self, mode: Mode, *, size_mb: float = 200.0, drip_s: float = 1.0, port: int = 0) -> None:
        self.mode = mode
        self.size = int(size_mb * 1024 * 1024)
        self.drip_s = drip_s
        self.port = port
        self.requests = 0
        self.sent_bytes = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()
        if self._server is not None:
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while await _read_request(reader):
                self.requests += 1
                await self._answer(writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _answer(self, writer: asyncio.StreamWriter) -> None:
        if self.mode == "drip":
            body = json.dumps({"response": "### 1. Kern\nEin Satz."}).encode()
            writer.write(_head(f"Content-Length: {len(body)}"))
            for index in range(len(body)):
                await asyncio.sleep(self.drip_s)  # the drip is the behaviour under test, not a wait
                writer.write(body[index : index + 1])
                await writer.drain()
                self.sent_bytes += 1
            return
        declared = len(_PREFIX) + self.size + len(_SUFFIX)
        chunked = self.mode == "huge"
        writer.write(_head("Transfer-Encoding: chunked" if chunked else f"Content-Length: {declared}"))
        for part in _body_parts(self.size):
            writer.write(f"{len(part):x}\r\n".encode() + part + b"\r\n" if chunked else part)
            await writer.drain()
            self.sent_bytes += len(part)
        if chunked:
            writer.write(b"0\r\n\r\n")
            await writer.drain()


def _body_parts(size: int) -> Iterator[bytes]:
    """The body in ``CHUNK``-sized parts, made as they are sent."""
    yield _PREFIX
    filler, left = b"x" * CHUNK, size
    while left > 0:
        part = filler[: min(CHUNK, left)]
        left -= len(part)
        yield part
    yield _SUFFIX


def _head(length_header: str) -> bytes:
    return f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n{length_header}\r\n\r\n".encode()


async def _read_request(reader: asyncio.StreamReader) -> bool:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return False
    length = 0
    for line in head.decode("latin-1").split("\r\n"):
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    await reader.readexactly(length)
    return True


async def _main(mode: Mode, port: int, size_mb: float, drip_s: float) -> None:
    backend = HostileBackend(mode, size_mb=size_mb, drip_s=drip_s, port=port)
    await backend.start()
    sys.stdout.write(f"port {backend.port}\n")
    sys.stdout.flush()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    with contextlib.suppress(Exception):
        await backend.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.hostile_backend")
    parser.add_argument("--mode", choices=MODES, default="huge")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--size-mb", type=float, default=200.0)
    parser.add_argument("--drip-s", type=float, default=1.0)
    args = parser.parse_args()
    asyncio.run(_main(args.mode, args.port, args.size_mb, args.drip_s))


if __name__ == "__main__":
    main()

"""A fast loopback LLM for benchmarks: speaks the ``syntx`` backend protocol, HTTP/1.1 with keep-alive.

``python -m benchmarks.llm_stub --port 0 --delay 0.2`` answers every ``POST /api/chat`` with the same
complete ``syntex_system`` answer, after ``--delay`` seconds (a timer on the event loop, like
``asyncio.sleep``: the simulated LLM latency costs no CPU). It writes ``port N`` on stdout once it listens.
Raw ``asyncio.Protocol``, no framework: the stub must never be what a benchmark measures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys

from benchmarks.workload import answer_text

log = logging.getLogger(__name__)

_HEAD_END = b"\r\n\r\n"
_CONTENT_LENGTH = b"\r\ncontent-length:"
_NOT_FOUND = b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 9\r\n\r\nnot found"
_BAD_REQUEST = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


def chat_reply(text: str) -> bytes:
    """The whole HTTP response for a chat request, built once."""
    body = json.dumps({"response": text, "metadata": {"wrapper_chain": ["bench"]}}).encode("utf-8")
    head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    return head.encode("ascii") + body


class _Connection(asyncio.Protocol):
    def __init__(self, reply: bytes, delay_s: float, stats: list[int]) -> None:
        self._reply = reply
        self._delay_s = delay_s
        self._stats = stats
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while (end := self._buffer.find(_HEAD_END)) >= 0:
            head = bytes(self._buffer[:end]).lower()
            length = _content_length(head)
            if length is None:
                self._send(_BAD_REQUEST, close=True)
                return
            total = end + len(_HEAD_END) + length
            if len(self._buffer) < total:
                return  # the body is still on its way
            del self._buffer[:total]
            close = b"\r\nconnection: close" in head
            reply = self._reply if head.startswith(b"post /api/chat ") else _NOT_FOUND
            self._stats[0] += 1
            if self._delay_s > 0:
                asyncio.get_running_loop().call_later(self._delay_s, self._send, reply, close)
            else:
                self._send(reply, close)

    def _send(self, reply: bytes, close: bool) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        transport.write(reply)
        if close:
            transport.close()


def _content_length(head: bytes) -> int | None:
    at = head.find(_CONTENT_LENGTH)
    if at < 0:
        return 0
    start = at + len(_CONTENT_LENGTH)
    stop = head.find(b"\r\n", start)
    try:
        return int(head[start : stop if stop >= 0 else len(head)])
    except ValueError:
        return None


async def serve(port: int, delay_s: float, host: str = "127.0.0.1") -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    reply, stats = chat_reply(answer_text()), [0]
    server = await loop.create_server(
        lambda: _Connection(reply, delay_s, stats), host, port, backlog=1024, reuse_address=True
    )
    bound = server.sockets[0].getsockname()[1]
    sys.stdout.write(f"port {bound}\n")
    sys.stdout.flush()
    log.info("llm stub on %s:%d, delay %.3f s", host, bound, delay_s)
    async with server:
        await stop.wait()
    log.info("llm stub stopping after %d requests", stats[0])


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.llm_stub", description=__doc__)
    parser.add_argument("--port", type=int, default=0, help="0: any free port (written to stdout)")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before each answer")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s llm_stub: %(message)s")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.port, args.delay))


if __name__ == "__main__":
    main()

"""Capacity check for the LLM stub, from its own process: keep-alive connections, one request at a time each.

``python -m benchmarks.loadgen --port P --connections 8 --seconds 2`` writes ``rps N`` on stdout.
The client is raw asyncio streams, so the figure is a lower bound on what the stub can serve.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

from benchmarks.workload import PROMPT

_LENGTH = b"content-length:"


def request_bytes(port: int) -> bytes:
    body = json.dumps({"prompt": PROMPT, "max_new_tokens": 1024, "temperature": 0.3}).encode("utf-8")
    head = (
        f"POST /api/chat HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("ascii") + body


async def _one_connection(port: int, request: bytes, until: float, counter: list[int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.monotonic() < until:
            writer.write(request)
            head = (await reader.readuntil(b"\r\n\r\n")).lower()
            at = head.index(_LENGTH) + len(_LENGTH)
            await reader.readexactly(int(head[at : head.index(b"\r\n", at)]))
            counter[0] += 1
    finally:
        writer.close()
        await writer.wait_closed()


async def measure(port: int, connections: int, seconds: float) -> float:
    request, counter = request_bytes(port), [0]
    started = time.monotonic()
    until = started + seconds
    await asyncio.gather(*(_one_connection(port, request, until, counter) for _ in range(connections)))
    return counter[0] / (time.monotonic() - started)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.loadgen", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    rate = asyncio.run(measure(args.port, args.connections, args.seconds))
    sys.stdout.write(f"rps {rate:.0f}\n")


if __name__ == "__main__":
    main()

"""The monitor's HTTP endpoint on a real loopback socket: content negotiation (OpenMetrics, gzip), HEAD, and
the bounds a slow, silent or oversized client meets while scrapes go on."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator
from http import HTTPStatus
from pathlib import Path

import pytest

from services.monitor.app import Monitor
from services.monitor.http import MAX_HEAD_BYTES
from shared.config import DEFAULT_CONFIG, load_settings

WAIT_S = 10.0
PROMETHEUS_ACCEPT = (  # what Prometheus 2.42 sends
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
    "text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)


@pytest.fixture
async def port(tmp_path: Path) -> AsyncIterator[int]:
    """A monitor's endpoint (no NATS: only what it serves matters here) with small bounds."""
    settings = load_settings(
        [DEFAULT_CONFIG],
        data_dir=tmp_path / "data",
        monitor={"request_timeout_s": 1.0, "max_connections": 50},
    )
    endpoint = Monitor(settings).endpoint()
    bound = await endpoint.start("127.0.0.1", 0)
    try:
        yield bound
    finally:
        await endpoint.close()


async def exchange(port: int, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send ``request`` raw; the status, the headers (lower-case names) and the body as received."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), WAIT_S)  # the server closes after its answer
    finally:
        writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, value in (line.split(":", 1) for line in lines)}
    _version, code, reason = status_line.split(" ", 2)
    assert reason == HTTPStatus(int(code)).phrase  # `HTTP/1.1 200 OK`, as curl -I shows it
    return int(code), headers, body


def get(path: str = "/metrics", method: str = "GET", **headers: str) -> bytes:
    fields = "".join(f"{name.replace('_', '-')}: {value}\r\n" for name, value in headers.items())
    return f"{method} {path} HTTP/1.1\r\nHost: monitor\r\n{fields}\r\n".encode()


async def test_a_scrape_gets_the_format_it_asks_for_gzipped_if_it_may(port: int) -> None:
    status, headers, plain = await exchange(port, get())
    assert status == 200 and headers["content-type"].startswith("text/plain; version=")
    assert b'syntx_queue_jobs{folder="incoming"} 0.0' in plain
    status, headers, body = await exchange(port, get(Accept=PROMETHEUS_ACCEPT, Accept_Encoding="gzip"))
    assert status == 200 and headers["content-type"].startswith("application/openmetrics-text; version=1.0.0")
    assert headers["content-encoding"] == "gzip" and headers["vary"] == "Accept, Accept-Encoding"
    text = gzip.decompress(body)
    assert text.endswith(b"# EOF\n") and b'syntx_queue_jobs{folder="incoming"} 0.0' in text
    assert int(headers["content-length"]) == len(body) < len(plain) / 3


async def test_head_is_answered_with_the_headers_of_get_and_no_body(port: int) -> None:
    _, got, body = await exchange(port, get())
    status, headed, nothing = await exchange(port, get(method="HEAD"))
    assert (status, nothing) == (200, b"")
    assert headed["content-length"] == got["content-length"] == str(len(body))
    assert headed["content-type"] == got["content-type"]


async def test_other_methods_and_paths_get_405_with_allow_and_404(port: int) -> None:
    status, headers, _ = await exchange(port, get(method="POST"))
    assert (status, headers["allow"]) == (405, "GET, HEAD")
    status, _, body = await exchange(port, get("/nothing"))
    assert status == 404 and b"/healthz, /metrics" in body


async def test_an_oversized_or_malformed_head_is_refused_in_one_answer(port: int) -> None:
    status, _, _ = await exchange(port, get(Cookie="x" * 2 * MAX_HEAD_BYTES))
    assert status == 431
    status, _, _ = await exchange(port, b"NOT HTTP AT ALL\r\n\r\n")
    assert status == 400


async def test_a_client_that_never_finishes_its_request_is_dropped_after_the_timeout(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")  # and never the blank line
    await writer.drain()
    assert await asyncio.wait_for(reader.read(), WAIT_S) == b""  # closed by the server (timeout 1 s)
    writer.close()


async def test_slow_clients_filling_every_connection_cannot_keep_a_scrape_out(port: int) -> None:
    """Twice ``max_connections`` clients each holding a request open: the newest push the oldest out, and
    a scrape among them is answered at once, not after the request timeout."""
    held = []
    for _ in range(100):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /metrics HTTP/1.1\r\nX-Slow: ")
        held.append((reader, writer))
    await asyncio.gather(*(writer.drain() for _, writer in held))
    async with asyncio.timeout(0.9):  # less than the request timeout: nothing waited for a slot to expire
        status, _, _ = await exchange(port, get())
    assert status == 200
    dropped = await asyncio.gather(*(asyncio.wait_for(reader.read(), WAIT_S) for reader, _ in held[:50]))
    assert dropped == [b""] * 50  # the oldest 50 were closed to make room
    for _, writer in held:
        writer.close()

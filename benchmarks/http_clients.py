"""``python -m benchmarks.http_clients``: HTTP clients side by side against the loopback LLM stub.

Starts ``benchmarks.llm_stub`` twice in their own processes (an instant one and one answering after
50 ms), then, in this process, one client per row posting the consumer's real request (wrapper +
prompt as JSON) and reading each reply as ``shared/llm/http.py`` does (streamed, bounded, then parsed)
from ``c`` tasks at once for ``--seconds``. Per row: requests per second, the share of the ideal rate
(50 ms backend: ``c / 0.05``), and this process's CPU per request (the stub runs elsewhere).

Candidates: httpx's default transport (httpcore's pool), httpx over aiohttp (``httpx-aiohttp``'s
transport, a dev dependency for this row), aiohttp directly, httpcore's pool tuned (keep-alive expiry
off, so the pool skips its per-connection expiry work — still a walk over every connection per
request), and what the backends use: ``shared.llm.http.JsonHttp`` (aiohttp's pool asked directly, with
its retries, deadline, bounded read and error mapping). Everything it starts it stops. ``--seconds``
per row (default 2.5; 40 rows).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import shutil
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport

from benchmarks.procs import Children, start_stub
from benchmarks.report import load_average, machine
from benchmarks.workload import PROMPT, wrapper_template
from shared.config import BackendSettings
from shared.llm.http import JsonHttp

log = logging.getLogger("benchmarks.http_clients")

CONCURRENCIES = (1, 16, 64, 256)
SLOW_DELAY_S = 0.05
WARMUP_S = 0.3
LIMIT = BackendSettings().max_response_bytes

Post = Callable[[], Awaitable[int]]
Client = Callable[[str, int], AbstractAsyncContextManager[Post]]


def _payload() -> dict[str, Any]:
    settings = BackendSettings()
    prompt = wrapper_template().replace("{prompt}", PROMPT)
    return {
        "prompt": prompt,
        "max_new_tokens": settings.max_new_tokens,
        "temperature": settings.temperature,
        "top_p": settings.top_p,
        "do_sample": True,
    }


def _parsed(chunks: list[bytes]) -> int:
    data = json.loads(b"".join(chunks))
    return len(data["response"])


async def _bounded(chunks: AsyncIterator[bytes]) -> list[bytes]:
    kept: list[bytes] = []
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > LIMIT:
            raise ValueError("body too large")
        kept.append(chunk)
    return kept


def _httpx_post(client: httpx.AsyncClient, url: str, payload: dict[str, Any]) -> Post:
    async def post() -> int:
        async with client.stream("POST", url, json=payload) as response:
            return _parsed(await _bounded(response.aiter_bytes()))

    return post


@asynccontextmanager
async def httpx_default(url: str, c: int) -> AsyncIterator[Post]:
    limits = httpx.Limits(max_connections=c, max_keepalive_connections=c)
    async with httpx.AsyncClient(limits=limits, headers={"Accept-Encoding": "identity"}) as client:
        yield _httpx_post(client, url, _payload())


@asynccontextmanager
async def httpx_tuned_httpcore(url: str, c: int) -> AsyncIterator[Post]:
    limits = httpx.Limits(max_connections=c, max_keepalive_connections=c, keepalive_expiry=None)
    transport = httpx.AsyncHTTPTransport(limits=limits, verify=False)
    async with httpx.AsyncClient(transport=transport, headers={"Accept-Encoding": "identity"}) as client:
        yield _httpx_post(client, url, _payload())


@asynccontextmanager
async def httpx_aiohttp(url: str, c: int) -> AsyncIterator[Post]:
    limits = httpx.Limits(max_connections=c, max_keepalive_connections=c)
    transport = AiohttpTransport(limits=limits)
    async with httpx.AsyncClient(transport=transport, headers={"Accept-Encoding": "identity"}) as client:
        yield _httpx_post(client, url, _payload())


@asynccontextmanager
async def aiohttp_direct(url: str, c: int) -> AsyncIterator[Post]:
    payload = _payload()
    connector = aiohttp.TCPConnector(limit=c)
    headers = {"Accept-Encoding": "identity"}
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:

        async def post() -> int:
            async with session.post(url, json=payload, auto_decompress=False) as response:
                return _parsed(await _bounded(response.content.iter_any()))

        yield post


@asynccontextmanager
async def backends_pool(url: str, c: int) -> AsyncIterator[Post]:
    settings = BackendSettings()
    http = JsonHttp(
        url,
        backend="syntx",
        timeouts=settings.timeouts,
        retries=settings.retries,
        concurrency=c,
        max_response_bytes=LIMIT,
    )
    payload = _payload()

    async def post() -> int:
        reply = await http.post(payload)
        return len(reply.data["response"])

    try:
        yield post
    finally:
        await http.aclose()


CANDIDATES: dict[str, Client] = {
    "JsonHttp (shared/llm)": backends_pool,
    "httpx default": httpx_default,
    "httpx + aiohttp transport": httpx_aiohttp,
    "aiohttp directly": aiohttp_direct,
    "httpx + httpcore tuned": httpx_tuned_httpcore,
}


@dataclass(frozen=True)
class Row:
    client: str
    delay_s: float
    concurrency: int
    requests: int
    seconds: float
    cpu_s: float

    @property
    def per_s(self) -> float:
        return self.requests / self.seconds

    @property
    def cpu_ms(self) -> float:
        return self.cpu_s * 1000 / max(1, self.requests)

    @property
    def ideal(self) -> float | None:
        return self.concurrency / self.delay_s if self.delay_s > 0 else None


async def _drive(post: Post, c: int, seconds: float) -> tuple[int, float, float]:
    """``c`` tasks posting until ``seconds`` passed; requests, wall and CPU seconds after the warm-up."""
    counted = [0]
    counting = asyncio.Event()
    stop = time.monotonic() + WARMUP_S + seconds

    async def worker() -> None:
        while time.monotonic() < stop:
            await post()
            if counting.is_set():
                counted[0] += 1

    tasks = [asyncio.create_task(worker()) for _ in range(c)]
    await asyncio.sleep(WARMUP_S)
    counting.set()
    wall, cpu = time.monotonic(), time.process_time()
    await asyncio.gather(*tasks)
    return counted[0], time.monotonic() - wall, time.process_time() - cpu


async def measure(name: str, client: Client, url: str, delay_s: float, c: int, seconds: float) -> Row:
    async with client(url, c) as post:
        requests, wall, cpu = await _drive(post, c, seconds)
    row = Row(name, delay_s, c, requests, wall, cpu)
    log.info("%s, %g ms, c=%d: %.0f req/s, %.3f ms CPU", name, delay_s * 1000, c, row.per_s, row.cpu_ms)
    return row


def render(rows: list[Row], about: str) -> str:
    lines = [
        "| backend | c | client | req/s | of ideal | CPU per request |",
        "|---|---:|---|---:|---:|---:|",
    ]
    for row in rows:
        ideal = f"{row.per_s / row.ideal:.0%}" if row.ideal else "–"
        lines.append(
            f"| {row.delay_s * 1000:g} ms | {row.concurrency} | {row.client} | {row.per_s:,.0f} | {ideal} "
            f"| {row.cpu_ms:.3f} ms |"
        )
    lines.append("")
    lines.append("Against httpx's default transport in the same run (req/s):")
    for row in rows:
        base = next(
            r
            for r in rows
            if (r.delay_s, r.concurrency, r.client) == (row.delay_s, row.concurrency, "httpx default")
        )
        if row.client != "httpx default":
            ratio = row.per_s / base.per_s
            lines.append(f"- {row.delay_s * 1000:g} ms, c={row.concurrency}, {row.client}: {ratio:.2f}×")
    return "\n".join(lines) + "\n\n" + about + "\n"


async def run_all(children: Children, workdir: Path, seconds: float, names: list[str]) -> list[Row]:
    rows: list[Row] = []
    for delay_s in (0.0, SLOW_DELAY_S):
        _process, port = start_stub(children, workdir, delay_s)
        url = f"http://127.0.0.1:{port}/api/chat"
        for c in CONCURRENCIES:
            for name in names:
                rows.append(await measure(name, CANDIDATES[name], url, delay_s, c, seconds))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.http_clients", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--seconds", type=float, default=2.5, help="measured seconds per row")
    parser.add_argument("--only", default="", help=f"comma-separated subset of: {', '.join(CANDIDATES)}")
    args = parser.parse_args(argv)
    names = [name.strip() for name in args.only.split(",") if name.strip()] or list(CANDIDATES)
    if unknown := set(names) - set(CANDIDATES):
        parser.error(f"unknown client(s): {', '.join(sorted(unknown))} (known: {', '.join(CANDIDATES)})")
    if "httpx default" not in names:
        parser.error("'httpx default' is the baseline of every ratio: keep it in --only")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    load_at_start = load_average()
    workdir = Path(tempfile.mkdtemp(prefix="syntx-http-"))
    children = Children()
    try:
        rows = asyncio.run(run_all(children, workdir, args.seconds, names))
    except KeyboardInterrupt:
        return 130
    finally:
        children.close()
        shutil.rmtree(workdir, ignore_errors=True)
    sys.stdout.write(render(rows, machine(workdir.parent, load_at_start)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

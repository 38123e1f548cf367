"""The HTTP transport under every backend (httpx's transport interface): aiohttp's connection pool.

httpx's own pool (httpcore) walks every pooled connection on each request and each finished response
(an expiry check with a system call per connection), so its CPU per request grows with the concurrency:
0.6 ms at 1, 6.7 ms at 64 and 17 ms at 256 connections, where aiohttp's pool stays at 0.3 ms
(``python -m benchmarks.http_clients``; BENCHMARKS.md). ``httpx-aiohttp`` puts that pool under httpx's
API; this module only corrects which httpx error an aiohttp error becomes — the library's own mapping
takes the first match in a table, so a refused connection arrives as a *connect timeout* and a server
that hangs up as one too — so that reasons and retry decisions read as they did with httpcore — and
sends a request once more on a new connection when the pooled one it went out on turns out to have
been closed by the server (httpcore looked before reusing a connection; aiohttp finds out on writing).
That resend is the browsers' rule: only on a reused connection, only when not a byte of a reply came
back, only once — a server that drops a request it did receive sees it twice, as it would under the
retry policy, but the job counts one attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import weakref
from collections.abc import AsyncIterator, Iterator
from contextvars import ContextVar
from typing import Any

import aiohttp
import httpx
from aiohttp.connector import Connection
from aiohttp.tracing import Trace
from httpx_aiohttp import AiohttpTransport

# Most specific first: the first class an error is an instance of decides.
_ERRORS: tuple[tuple[type[BaseException], type[httpx.TransportError]], ...] = (
    (aiohttp.ConnectionTimeoutError, httpx.ConnectTimeout),  # sock_connect, or no pooled connection in time
    (aiohttp.SocketTimeoutError, httpx.ReadTimeout),  # sock_read: no byte for read_s
    (aiohttp.ServerTimeoutError, httpx.ReadTimeout),
    (aiohttp.ClientConnectorError, httpx.ConnectError),  # refused, unreachable, name not resolved
    (aiohttp.ServerDisconnectedError, httpx.RemoteProtocolError),  # hung up before or within the reply
    (aiohttp.ClientPayloadError, httpx.RemoteProtocolError),  # body cut short or malformed framing
    (aiohttp.ClientResponseError, httpx.RemoteProtocolError),  # a status line or header it cannot parse
    (aiohttp.ClientOSError, httpx.ReadError),  # reset by peer, broken pipe
    (aiohttp.ClientConnectionError, httpx.NetworkError),
    (aiohttp.InvalidURL, httpx.UnsupportedProtocol),
)


# What a pooled connection the server closed while it sat idle fails with, before any reply arrived.
_STALE = (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)
# The variables by which an environment names a proxy (urllib's and curl's spellings, as aiohttp reads them).
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")
# Set (in the request's own task) when aiohttp hands the request a connection that served one before.
_reused: ContextVar[bool] = ContextVar("reused", default=False)


def transport(limits: httpx.Limits) -> httpx.AsyncBaseTransport:
    """A transport with ``limits.max_connections`` pooled keep-alive connections."""
    return _Transport(limits=limits)


class _Transport(AiohttpTransport):
    def __init__(self, *, limits: httpx.Limits) -> None:
        super().__init__(limits=limits)
        self.client = self._session

    def _session(self) -> aiohttp.ClientSession:
        connector = _Connector(
            limit=self.limits.max_connections or 0,
            keepalive_timeout=self.limits.keepalive_expiry,
            ssl=self.ssl_context,
        )
        return aiohttp.ClientSession(connector=connector, trust_env=_proxy_configured())

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        with _mapped(request):
            response = await self._send(request)
        assert isinstance(response.stream, httpx.AsyncByteStream)
        response.stream = _Body(response.stream, request)
        return response

    async def _send(self, request: httpx.Request) -> httpx.Response:
        _reused.set(False)
        try:
            return await super().handle_async_request(request)
        except (httpx.TransportError, aiohttp.ClientError) as exc:
            cause = exc.__cause__ if isinstance(exc, httpx.TransportError) else exc
            if not (_reused.get() and isinstance(cause, _STALE)):
                raise
        _reused.set(False)  # the stale connection is gone from the pool: this one is new or still open
        return await super().handle_async_request(request)


def _proxy_configured() -> bool:
    """Whether the environment names a proxy: then aiohttp honours HTTP(S)_PROXY and NO_PROXY as httpx's
    own client did. Asked once per pool: aiohttp's lookup per request costs ~90 µs of CPU (scanning the
    whole environment), which a process without a proxy should not pay."""
    return any(os.environ.get(name) for name in PROXY_VARIABLES)


class _Connector(aiohttp.TCPConnector):
    """aiohttp's pool, telling the request (``_reused``) whether its connection served one before —
    without request tracing, whose signals cost every request ~40 µs of CPU (benchmarks.budget)."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._served: weakref.WeakSet[asyncio.BaseProtocol] = weakref.WeakSet()

    async def connect(
        self,
        req: aiohttp.ClientRequest,
        traces: list[Trace],
        timeout: aiohttp.ClientTimeout,  # noqa: ASYNC109 - aiohttp's own signature, overridden
    ) -> Connection:
        connection = await super().connect(req, traces, timeout)
        protocol = connection.protocol
        if protocol is not None:
            _reused.set(protocol in self._served)
            self._served.add(protocol)
        return connection


class _Body(httpx.AsyncByteStream):
    def __init__(self, stream: httpx.AsyncByteStream, request: httpx.Request) -> None:
        self._stream = stream
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _mapped(self._request):
            async for chunk in self._stream:
                yield chunk

    async def aclose(self) -> None:
        with _mapped(self._request):
            await self._stream.aclose()


@contextlib.contextmanager
def _mapped(request: httpx.Request) -> Iterator[None]:
    """aiohttp's errors (raw, or as the library mapped them) as the httpx error that says what happened."""
    try:
        yield
    except (httpx.TransportError, aiohttp.ClientError) as exc:
        cause = exc.__cause__ if isinstance(exc, httpx.TransportError) else exc
        if not isinstance(cause, aiohttp.ClientError):
            raise
        kind = next((kind for known, kind in _ERRORS if isinstance(cause, known)), httpx.TransportError)
        raise kind(str(cause) or type(cause).__name__, request=request) from cause

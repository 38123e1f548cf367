"""The connection pool under every HTTP backend: aiohttp's, asked directly.

httpx's own pool (httpcore) walks every pooled connection on each request and each finished response
(an expiry check with a system call per connection), so its CPU per request grows with the concurrency:
0.6 ms at 1, 6.7 ms at 64 and 17 ms at 256 connections, where aiohttp's pool stays flat. A request goes
to aiohttp as it is — not as an ``httpx.Request`` that an adapter (``httpx-aiohttp``) converts and whose
reply it wraps in an ``httpx.Response``: those objects cost ~0.25 ms of CPU per request, more than
aiohttp's own work (``python -m benchmarks.http_clients``; BENCHMARKS.md).

What httpx's client gave the backends is kept here: an aiohttp error becomes the httpx error that says
what happened (so reasons and retry decisions read as before — a refused connection is a connect error,
not a *connect timeout*); a proxy named by the environment carries the requests; and a request goes once
more on a new connection when the pooled one it went out on turns out to have been closed by the server
(httpcore looked before reusing a connection; aiohttp finds out on writing). That resend is the browsers'
rule: only on a reused connection, only when not a byte of a reply came back, only once — a server that
drops a request it did receive sees it twice, as it would under the retry policy, but the job counts one
attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import weakref
from collections.abc import AsyncIterator, Iterator, Mapping
from contextvars import ContextVar
from typing import Any

import aiohttp
import httpx
from aiohttp.connector import Connection
from aiohttp.tracing import Trace

from shared.config import TimeoutSettings

# Most specific first: the first class an error is an instance of decides.
_ERRORS: tuple[tuple[type[BaseException], type[httpx.TransportError]], ...] = (
    (aiohttp.ConnectionTimeoutError, httpx.ConnectTimeout),  # sock_connect, or no pooled connection in time
    (aiohttp.SocketTimeoutError, httpx.ReadTimeout),  # sock_read: no byte for read_s
    (aiohttp.ServerTimeoutError, httpx.ReadTimeout),
    (aiohttp.ClientProxyConnectionError, httpx.ProxyError),
    (aiohttp.ClientHttpProxyError, httpx.ProxyError),
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
# An idle pooled connection is closed after this long: httpx's default, which the backends always had.
KEEPALIVE_S = 5.0
# Set (in the request's own task) when aiohttp hands the request a connection that served one before.
_reused: ContextVar[bool] = ContextVar("reused", default=False)


class Pool:
    """Up to ``connections`` kept-alive connections to the backend's server; :meth:`post` sends one
    request on one of them. Made on the event loop it serves (the session is opened at the first post)."""

    def __init__(self, *, connections: int, timeouts: TimeoutSettings) -> None:
        self._connections = connections
        self._session: aiohttp.ClientSession | None = None
        self._timeout = aiohttp.ClientTimeout(
            sock_connect=timeouts.connect_s, sock_read=timeouts.read_s, connect=timeouts.total_s
        )

    @contextlib.asynccontextmanager
    async def post(
        self, url: str, headers: Mapping[str, str], body: bytes
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """POST ``body`` to ``url``; the reply whose status and headers arrived, its body to be read in
        the block. Raises the httpx error that says what went wrong, during the request or the reading."""
        with _mapped():
            response = await self._send(url, headers, body)
            try:
                yield response
            finally:
                response.release()

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def _send(self, url: str, headers: Mapping[str, str], body: bytes) -> aiohttp.ClientResponse:
        _reused.set(False)
        try:
            return await self._request(url, headers, body)
        except _STALE:
            if not _reused.get():
                raise
        _reused.set(False)  # the stale connection is gone from the pool: this one is new or still open
        return await self._request(url, headers, body)

    async def _request(self, url: str, headers: Mapping[str, str], body: bytes) -> aiohttp.ClientResponse:
        return await self._opened().post(
            url,
            data=body,
            headers=headers,
            timeout=self._timeout,
            allow_redirects=False,
            auto_decompress=False,  # asked for identity; the size limit is on what arrives
        )

    def _opened(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = _Connector(
                limit=self._connections, keepalive_timeout=KEEPALIVE_S, ssl=httpx.create_ssl_context()
            )
            self._session = aiohttp.ClientSession(connector=connector, trust_env=_proxy_configured())
        return self._session


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


@contextlib.contextmanager
def _mapped() -> Iterator[None]:
    """An aiohttp error as the httpx error that says what happened."""
    try:
        yield
    except aiohttp.ClientError as exc:
        kind = next((kind for known, kind in _ERRORS if isinstance(exc, known)), httpx.TransportError)
        raise kind(str(exc) or type(exc).__name__) from exc

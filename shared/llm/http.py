"""Shared HTTP machinery: one connection pool per backend (aiohttp's, see :mod:`shared.llm.transport`),
JSON POST with retries and a deadline.

A request is made here from headers made once and the payload's JSON, not through ``httpx.AsyncClient``:
the client's per-request work (merging its headers, the auth flow, redirect and cookie handling) cost
~0.15 ms of CPU per request, a tenth of a job, for nothing a backend uses — redirects are not followed
either way, Basic auth is one header made once, and no LLM API keeps a session in cookies. httpx still
reads the URLs and names the errors.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import httpx
from multidict import CIMultiDict

from shared.config import RetrySettings, TimeoutSettings
from shared.llm.base import BackendError
from shared.llm.replies import Failure, HttpReply, JsonReply, judge
from shared.llm.retry import next_delay
from shared.llm.transport import Pool

log = logging.getLogger(__name__)


@dataclass
class _Progress:
    attempts: int = 0
    last: Failure | None = None
    in_flight: bool = False  # a request is out and its reply not finished

    def stalled(self) -> bool:
        """The backend holds a request without finishing the reply, or the last one timed out reading."""
        return self.in_flight or (self.last is not None and self.last.stalled)


def endpoint(url: str | None, path: str) -> str:
    """``url`` + ``path`` unless ``url`` already ends with ``path`` (both spellings are accepted).

    Raises ValueError for a missing URL or one httpx could never send to.
    """
    if not url:
        raise ValueError("this backend needs a url")
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise ValueError(f"backend url is not a valid URL: {exc}") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ValueError(
            "backend url must look like http(s)://host[:port][/path] "
            f"(got scheme {parsed.scheme!r}, host {parsed.host!r})"
        )
    base = url.rstrip("/")
    return base if base.endswith(path) else base + path


class JsonHttp:
    """POST JSON to one URL, get a JSON object back; retries timeouts, connection errors, 429 and 5xx.

    User and password in the URL become Basic auth, so the URL put in reasons carries no credentials;
    ``secret`` (an API key) and that password are redacted as ``***``.
    """

    def __init__(
        self,
        url: str,
        *,
        backend: str,
        timeouts: TimeoutSettings,
        retries: RetrySettings,
        concurrency: int,
        headers: Mapping[str, str] | None = None,
        secret: str | None = None,
        max_response_bytes: int,
    ) -> None:
        parsed = httpx.URL(url)
        self.url = str(parsed.copy_with(username=None, password=None))  # parsed once, not per request
        self._backend = backend
        self._retries = retries
        self._total_s = timeouts.total_s
        self._max_response_bytes = max_response_bytes
        self._secrets = [value for value in (secret, parsed.password) if value]
        self._rng = random.Random()
        self._pool = Pool(connections=concurrency, timeouts=timeouts)
        self._headers = _request_headers(parsed, headers)

    def __repr__(self) -> str:
        return f"JsonHttp(url={self.url!r}, backend={self._backend!r})"

    async def aclose(self) -> None:
        await self._pool.aclose()

    def redact(self, text: str) -> str:
        """``text`` with every secret replaced by ``***``."""
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    async def post(self, payload: Mapping[str, Any]) -> JsonReply:
        """POST ``payload``; the reply's JSON object, or :class:`BackendError`."""
        progress = _Progress()
        try:
            async with asyncio.timeout(self._total_s) as deadline:
                return await self._attempts(payload, progress)
        except TimeoutError:
            if not deadline.expired():
                raise
            last = progress.last.what if progress.last else "none finished"
            reason = (
                f"no reply from {self.url} within the overall deadline of {self._total_s:g} s "
                f"({_count(progress.attempts)}; last failure: {last})"
            )
            status = progress.last.status if progress.last else None
            raise BackendError(
                self.redact(reason),
                retryable=True,
                attempts=progress.attempts,
                status=status,
                stalled=progress.stalled(),
            ) from None

    async def _attempts(self, payload: Mapping[str, Any], progress: _Progress) -> JsonReply:
        max_attempts = self._retries.max_attempts
        for attempt in range(1, max_attempts + 1):
            progress.attempts = attempt
            outcome = await self._once(payload, progress)
            if isinstance(outcome, JsonReply):
                return JsonReply(outcome.data, attempt, outcome.status)
            progress.last = outcome
            if not outcome.retryable:
                raise BackendError(
                    self.redact(outcome.what + outcome.detail),
                    retryable=False,
                    attempts=attempt,
                    status=outcome.status,
                )
            if attempt == max_attempts:
                break
            delay = next_delay(attempt, self._retries, self._rng, outcome.wait_s)
            log.warning(
                "%s backend: attempt %d/%d failed: %s; retrying in %.2f s",
                self._backend,
                attempt,
                max_attempts,
                self.redact(outcome.what + outcome.detail),
                delay,
            )
            await asyncio.sleep(delay)
        last = progress.last
        assert last is not None  # the loop ran at least once and did not return
        raise BackendError(
            self.redact(f"{last.what} after {_count(max_attempts)}{last.detail}"),
            retryable=True,
            attempts=max_attempts,
            status=last.status,
            stalled=last.stalled,
        )

    async def _once(self, payload: Mapping[str, Any], progress: _Progress) -> JsonReply | Failure:
        progress.in_flight = True  # stays set when the overall deadline cancels the exchange
        outcome = await self._exchange(payload)
        progress.in_flight = False
        return outcome

    async def _exchange(self, payload: Mapping[str, Any]) -> JsonReply | Failure:
        where = self.url
        try:
            async with self._pool.post(self.url, self._headers, _encoded(payload)) as response:
                reply = await self._read(response)
        except httpx.TimeoutException as exc:
            kind = _timeout_kind(exc)
            return Failure(f"{kind} from {where}", retryable=True, stalled=kind == "read timeout")
        except (httpx.NetworkError, httpx.RemoteProtocolError) as exc:
            return Failure(f"connection error with {where} ({_describe(exc)})", retryable=True)
        except httpx.HTTPError as exc:
            return Failure(f"request to {where} failed ({_describe(exc)})", retryable=False)
        return reply if isinstance(reply, Failure) else judge(reply, where)

    async def _read(self, response: aiohttp.ClientResponse) -> HttpReply | Failure:
        """The reply, its body read as it arrives, never more than ``max_response_bytes``.

        An answer (2xx) over the limit fails the attempt; of an error reply only the start is kept (it
        is quoted, not parsed), so a 503 with a huge page still counts as the backend being down.
        """
        limit = self._max_response_bytes
        status = response.status
        answer = 200 <= status < 300
        declared = response.content_length
        if answer and declared is not None and declared > limit:
            return _too_big(f"announced {declared} bytes", limit, status)
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.content.iter_any():
            size += len(chunk)
            if size > limit:
                if answer:
                    return _too_big(f"more than {limit} bytes arrived", limit, status)
                chunks.append(chunk[: limit - size + len(chunk)])
                break
            chunks.append(chunk)
        return HttpReply(status, response.headers, b"".join(chunks))


def _encoded(payload: Mapping[str, Any]) -> bytes:
    """``payload`` as JSON, encoded as ``httpx.AsyncClient(json=...)`` would."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


def _request_headers(url: httpx.URL, extra: Mapping[str, str] | None) -> CIMultiDict[str]:
    """Sent with every request: httpx's own defaults, no compression (the size cap is on what arrives),
    JSON, Basic auth when the URL carries a user, and the backend's own (an API key)."""
    headers = {
        "Accept": "*/*",
        "Accept-Encoding": "identity",
        "Connection": "keep-alive",
        "User-Agent": f"python-httpx/{httpx.__version__}",
        "Content-Type": "application/json",
    }
    if url.username:
        credentials = f"{url.username}:{url.password or ''}".encode()
        headers["Authorization"] = f"Basic {base64.b64encode(credentials).decode('ascii')}"
    merged = CIMultiDict(headers)
    merged.update(extra or {})  # a backend's own header replaces one of these whatever its case
    return merged


def _too_big(what: str, limit: int, status: int) -> Failure:
    return Failure(
        f"invalid reply: body too large ({what}; backend.max_response_bytes is {limit})", False, status
    )


def _timeout_kind(exc: httpx.TimeoutException) -> str:
    kinds = {
        httpx.ConnectTimeout: "connect timeout",
        httpx.ReadTimeout: "read timeout",
        httpx.WriteTimeout: "write timeout",
        httpx.PoolTimeout: "timeout waiting for a free connection",
    }
    return kinds.get(type(exc), "timeout")


def _describe(exc: Exception) -> str:
    """``Type: message``; the message may sit in a wrapped cause (httpx wraps httpcore wraps OSError)."""
    detail = str(exc).strip()
    inner: BaseException | None = exc.__cause__ or exc.__context__
    for _ in range(5):
        if detail or inner is None:
            break
        detail = str(inner).strip()
        inner = inner.__cause__ or inner.__context__
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__


def _count(attempts: int) -> str:
    return f"{attempts} attempt" if attempts == 1 else f"{attempts} attempts"

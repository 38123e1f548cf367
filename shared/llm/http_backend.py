"""The skeleton every HTTP backend shares: one client, the API key, timing, closing.

A backend of a new kind subclasses :class:`HttpBackend` and says only what differs: the ``path`` it
POSTs to, the ``payload`` it sends and how a ``completion`` is read from the reply (and, if its server
takes the key another way, the ``headers``). Register its kind in ``shared/config/backends.py``.
"""

from __future__ import annotations

import os
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar

from shared.config import BackendSettings
from shared.llm.base import Completion, PromptContext
from shared.llm.http import JsonHttp, endpoint
from shared.llm.replies import JsonReply


class HttpBackend(ABC):
    """``complete`` POSTs :meth:`payload` as JSON (retries, limits: :class:`JsonHttp`) and reads the
    reply with :meth:`completion`.

    ``key_env``: the environment variable the API key is read from when ``api_key_env`` is unset; None:
    this kind sends no key.
    """

    kind: ClassVar[str]
    path: ClassVar[str]
    key_env: ClassVar[str | None] = None

    def __init__(self, settings: BackendSettings, *, concurrency: int) -> None:
        self.name = self.kind
        self.model = settings.model
        self._settings = settings
        self._key_env = (settings.api_key_env or self.key_env) if self.key_env else None
        key = (os.environ.get(self._key_env) or None) if self._key_env else None
        self._has_key = key is not None
        self._http = self._client(concurrency, key)

    def _client(self, concurrency: int, key: str | None) -> JsonHttp:
        """The one place a backend's client is made: its URL + ``path``, timeouts, retries, limits."""
        settings = self._settings
        return JsonHttp(
            endpoint(settings.url, self.path),
            backend=self.name,
            timeouts=settings.timeouts,
            retries=settings.retries,
            concurrency=concurrency,
            headers=self.headers(key),
            secret=key,
            max_response_bytes=settings.max_response_bytes,
        )

    def headers(self, key: str | None) -> dict[str, str]:
        """Sent with every request: the API key (if set) as a bearer token, unless the kind says otherwise."""
        return {"Authorization": f"Bearer {key}"} if key else {}

    def __repr__(self) -> str:
        key = f", key={self._shown_key()!r}" if self._key_env else ""
        return f"{type(self).__name__}(url={self._http.url!r}, model={self.model!r}{key})"

    def _shown_key(self) -> str | None:
        """The key's variable, never its value; None when the variable is unset."""
        return f"${self._key_env}" if self._has_key else None

    async def complete(
        self, prompt: str, *, expected_headers: Sequence[str] = (), context: PromptContext | None = None
    ) -> Completion:
        started = time.monotonic()
        reply = await self._http.post(self.payload(prompt))
        return self.completion(reply, time.monotonic() - started)

    @abstractmethod
    def payload(self, prompt: str) -> dict[str, Any]:
        """The JSON body asking for an answer to ``prompt``."""

    @abstractmethod
    def completion(self, reply: JsonReply, duration_s: float) -> Completion:
        """The answer in ``reply``; a non-retryable BackendError when it is not there (``text_at``)."""

    async def aclose(self) -> None:
        await self._http.aclose()

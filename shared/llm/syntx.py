"""Backend ``syntx``: the original wrapper service, ``POST /api/chat`` → ``{"response": str}``."""

from __future__ import annotations

import time
from collections.abc import Sequence

from shared.config import BackendSettings
from shared.llm.base import Completion, PromptContext
from shared.llm.http import JsonHttp
from shared.llm.replies import text_at


class SyntxBackend:
    """Sends the whole prompt; the service adds its own wrapper and calls its model."""

    def __init__(self, settings: BackendSettings, *, concurrency: int) -> None:
        self.name = "syntx"
        self.model = settings.model
        self._settings = settings
        self._http = JsonHttp.for_backend(
            settings, backend=self.name, path="/api/chat", concurrency=concurrency
        )

    def __repr__(self) -> str:
        return f"SyntxBackend(url={self._http.url!r}, model={self.model!r})"

    async def complete(
        self, prompt: str, *, expected_headers: Sequence[str] = (), context: PromptContext | None = None
    ) -> Completion:
        started = time.monotonic()
        payload = {
            "prompt": prompt,
            "max_new_tokens": self._settings.max_new_tokens,
            "temperature": self._settings.temperature,
            "top_p": self._settings.top_p,
            "do_sample": True,
        }
        reply = await self._http.post(payload)
        text = text_at(reply, "response")
        return Completion(text, self.name, self.model, time.monotonic() - started, reply.attempts)

    async def aclose(self) -> None:
        await self._http.aclose()

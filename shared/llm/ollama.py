"""Backend ``ollama``: ``POST {url}/api/chat`` without streaming → ``message.content``."""

from __future__ import annotations

import time
from collections.abc import Sequence

from shared.config import BackendSettings
from shared.llm.base import Completion, PromptContext
from shared.llm.http import JsonHttp
from shared.llm.replies import optional_at, text_at


class OllamaBackend:
    """Talks to an Ollama server (default port 11434); ``num_predict`` is ``max_new_tokens``."""

    def __init__(self, settings: BackendSettings, *, concurrency: int) -> None:
        self.name = "ollama"
        self.model = settings.model
        self._settings = settings
        self._http = JsonHttp.for_backend(
            settings, backend=self.name, path="/api/chat", concurrency=concurrency
        )

    def __repr__(self) -> str:
        return f"OllamaBackend(url={self._http.url!r}, model={self.model!r})"

    async def complete(
        self, prompt: str, *, expected_headers: Sequence[str] = (), context: PromptContext | None = None
    ) -> Completion:
        started = time.monotonic()
        payload = {
            "model": self.model,
            "messages": [{"role": "user", "content": prompt}],
            "stream": False,
            "options": {
                "temperature": self._settings.temperature,
                "top_p": self._settings.top_p,
                "num_predict": self._settings.max_new_tokens,
            },
        }
        reply = await self._http.post(payload)
        text = text_at(reply, "message", "content")
        truncated = optional_at(reply.data, "done_reason") == "length"
        duration_s = time.monotonic() - started
        return Completion(text, self.name, self.model, duration_s, reply.attempts, truncated=truncated)

    async def aclose(self) -> None:
        await self._http.aclose()

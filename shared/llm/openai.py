"""Backend ``openai``: any OpenAI-compatible server (OpenAI, vLLM, llama.cpp, LM Studio)."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence

from shared.config import BackendSettings
from shared.llm.base import Completion, PromptContext
from shared.llm.http import JsonHttp
from shared.llm.replies import optional_at, text_at


class OpenAIBackend:
    """``POST {url}/chat/completions``; sends ``Authorization: Bearer`` only if the key variable is set."""

    def __init__(self, settings: BackendSettings, *, concurrency: int) -> None:
        self.name = "openai"
        self.model = settings.model
        self._settings = settings
        key = os.environ.get(settings.api_key_env) or None
        self._has_key = key is not None
        self._http = JsonHttp.for_backend(
            settings, backend=self.name, path="/chat/completions", concurrency=concurrency, key=key
        )

    def __repr__(self) -> str:
        key = f"${self._settings.api_key_env}" if self._has_key else None
        return f"OpenAIBackend(url={self._http.url!r}, model={self.model!r}, key={key!r})"

    async def complete(
        self, prompt: str, *, expected_headers: Sequence[str] = (), context: PromptContext | None = None
    ) -> Completion:
        started = time.monotonic()
        payload = {
            "model": self.model,
            "messages": [{"role": "user", "content": prompt}],
            "max_tokens": self._settings.max_new_tokens,
            "temperature": self._settings.temperature,
            "top_p": self._settings.top_p,
        }
        reply = await self._http.post(payload)
        text = text_at(reply, "choices", 0, "message", "content")
        truncated = optional_at(reply.data, "choices", 0, "finish_reason") == "length"
        duration_s = time.monotonic() - started
        return Completion(
            text,
            self.name,
            self.model,
            duration_s,
            reply.attempts,
            truncated=truncated,
            input_tokens=_tokens(reply.data, "prompt_tokens"),
            output_tokens=_tokens(reply.data, "completion_tokens"),
        )

    async def aclose(self) -> None:
        await self._http.aclose()


def _tokens(data: dict[str, object], key: str) -> int | None:
    """A token count from the reply's ``usage``; None when missing or not a count."""
    value = optional_at(data, "usage", key)
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None

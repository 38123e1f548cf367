"""Backend ``ollama``: ``POST {url}/api/chat`` without streaming → ``message.content``."""

from __future__ import annotations

from typing import Any

from shared.llm.base import Completion
from shared.llm.http_backend import HttpBackend
from shared.llm.replies import JsonReply, optional_at, text_at


class OllamaBackend(HttpBackend):
    """Talks to an Ollama server (default port 11434); ``num_predict`` is ``max_new_tokens``."""

    kind = "ollama"
    path = "/api/chat"

    def payload(self, prompt: str) -> dict[str, Any]:
        return {
            "model": self.model,
            "messages": [{"role": "user", "content": prompt}],
            "stream": False,
            "options": {
                "temperature": self._settings.temperature,
                "top_p": self._settings.top_p,
                "num_predict": self._settings.max_new_tokens,
            },
        }

    def completion(self, reply: JsonReply, duration_s: float) -> Completion:
        text = text_at(reply, "message", "content")
        truncated = optional_at(reply.data, "done_reason") == "length"
        return Completion(text, self.name, self.model, duration_s, reply.attempts, truncated=truncated)

"""Backend ``syntx``: the original wrapper service, ``POST /api/chat`` → ``{"response": str}``."""

from __future__ import annotations

from typing import Any

from shared.llm.base import Completion
from shared.llm.http_backend import HttpBackend
from shared.llm.replies import JsonReply, text_at


class SyntxBackend(HttpBackend):
    """Sends the whole prompt; the service adds its own wrapper and calls its model."""

    kind = "syntx"
    path = "/api/chat"

    def payload(self, prompt: str) -> dict[str, Any]:
        return {
            "prompt": prompt,
            "max_new_tokens": self._settings.max_new_tokens,
            "temperature": self._settings.temperature,
            "top_p": self._settings.top_p,
            "do_sample": True,
        }

    def completion(self, reply: JsonReply, duration_s: float) -> Completion:
        text = text_at(reply, "response")
        return Completion(text, self.name, self.model, duration_s, reply.attempts)

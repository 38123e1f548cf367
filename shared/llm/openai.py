"""Backend ``openai``: any OpenAI-compatible server (OpenAI, vLLM, llama.cpp, LM Studio)."""

from __future__ import annotations

from typing import Any

from shared.llm.base import Completion
from shared.llm.http_backend import HttpBackend
from shared.llm.replies import JsonReply, optional_at, text_at, token_count


class OpenAIBackend(HttpBackend):
    """``POST {url}/chat/completions``; sends ``Authorization: Bearer`` only if the key variable is set."""

    kind = "openai"
    path = "/chat/completions"
    key_env = "OPENAI_API_KEY"

    def payload(self, prompt: str) -> dict[str, Any]:
        return {
            "model": self.model,
            "messages": [{"role": "user", "content": prompt}],
            "max_tokens": self._settings.max_new_tokens,
            "temperature": self._settings.temperature,
            "top_p": self._settings.top_p,
        }

    def completion(self, reply: JsonReply, duration_s: float) -> Completion:
        return Completion(
            text_at(reply, "choices", 0, "message", "content"),
            self.name,
            self.model,
            duration_s,
            reply.attempts,
            truncated=optional_at(reply.data, "choices", 0, "finish_reason") == "length",
            input_tokens=token_count(reply.data, "usage", "prompt_tokens"),
            output_tokens=token_count(reply.data, "usage", "completion_tokens"),
        )

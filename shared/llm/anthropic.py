"""Backend ``anthropic``: the Anthropic Messages API, ``POST {url}/v1/messages`` → the reply's text blocks."""

from __future__ import annotations

from typing import Any

from shared.llm.base import BackendError, Completion
from shared.llm.http_backend import HttpBackend
from shared.llm.replies import JsonReply, json_type, optional_at, text_at, token_count

# The API version the request and reply shapes here are written against; Anthropic requires one on every
# request, and 2023-06-01 is the version its Messages API documents.
API_VERSION = "2023-06-01"


class AnthropicBackend(HttpBackend):
    """Sends the prompt as the one user message (the wrapper is inside it, as with every backend).

    The key goes in ``x-api-key`` (``ANTHROPIC_API_KEY`` unless ``api_key_env`` names another); only
    ``temperature`` is sent, as newer models refuse it together with ``top_p``. A reply that stopped at
    ``max_tokens`` is truncated.
    """

    kind = "anthropic"
    path = "/v1/messages"
    key_env = "ANTHROPIC_API_KEY"

    def headers(self, key: str | None) -> dict[str, str]:
        return {"anthropic-version": API_VERSION, **({"x-api-key": key} if key else {})}

    def payload(self, prompt: str) -> dict[str, Any]:
        return {
            "model": self.model,
            "max_tokens": self._settings.max_new_tokens,
            "messages": [{"role": "user", "content": prompt}],
            "temperature": self._settings.temperature,
        }

    def completion(self, reply: JsonReply, duration_s: float) -> Completion:
        return Completion(
            _text(reply),
            self.name,
            self.model,
            duration_s,
            reply.attempts,
            truncated=optional_at(reply.data, "stop_reason") == "max_tokens",
            input_tokens=token_count(reply.data, "usage", "input_tokens"),
            output_tokens=token_count(reply.data, "usage", "output_tokens"),
        )


def _text(reply: JsonReply) -> str:
    """The text blocks of ``content``, joined; other blocks (tool use, thinking) are not the answer."""
    if "content" not in reply.data:
        raise _invalid(reply, "missing key 'content'")
    blocks = reply.data["content"]
    if not isinstance(blocks, list):
        raise _invalid(reply, f"'content' is {json_type(blocks)}, not an array")
    texts = [
        text_at(reply, "content", index, "text")
        for index, block in enumerate(blocks)
        if isinstance(block, dict) and block.get("type") == "text"
    ]
    if not texts:
        raise _invalid(reply, f"'content' holds no text block ({len(blocks)} blocks)")
    return "".join(texts)


def _invalid(reply: JsonReply, what: str) -> BackendError:
    return BackendError(
        f"invalid reply: {what}", retryable=False, attempts=reply.attempts, status=reply.status
    )

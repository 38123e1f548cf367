"""The LLM backends there are: a kind (the name ``backend.kind`` takes) → where its class lives.

The one place a backend is registered. It is data, not an import: the settings read the kinds from it
without loading any backend, and :func:`shared.llm.make_backend` imports the class a kind names.
"""

from __future__ import annotations

BACKENDS: dict[str, str] = {
    "offline": "shared.llm.offline:OfflineBackend",
    "syntx": "shared.llm.syntx:SyntxBackend",
    "openai": "shared.llm.openai:OpenAIBackend",
    "ollama": "shared.llm.ollama:OllamaBackend",
    "anthropic": "shared.llm.anthropic:AnthropicBackend",
}
BACKEND_KINDS: tuple[str, ...] = tuple(BACKENDS)
# Kinds that answer without being told a model: the offline responder, the syntx service (its own model).
MODEL_OPTIONAL = frozenset({"offline", "syntx"})

"""LLM backends: ``make_backend(settings)`` → something with ``await complete(prompt)``.

Kinds: ``syntx`` (the original wrapper service), ``openai`` (OpenAI-compatible servers), ``ollama``,
``offline`` (a deterministic, clearly labelled local responder; no LLM is called).
"""

from __future__ import annotations

from shared.config import BackendSettings
from shared.llm.base import BackendError, Completion, LLMBackend, PromptContext

__all__ = ["BackendError", "Completion", "LLMBackend", "PromptContext", "make_backend"]

DEFAULT_CONCURRENCY = 8


def make_backend(settings: BackendSettings, *, concurrency: int = DEFAULT_CONCURRENCY) -> LLMBackend:
    """Build the backend ``settings.kind`` names; HTTP backends keep up to ``concurrency`` connections.

    Raises ValueError for an unusable URL. Reads the API key variable (``openai`` only) now.
    """
    if settings.kind == "offline":
        from shared.llm.offline import OfflineBackend

        return OfflineBackend(settings)
    if settings.kind == "syntx":
        from shared.llm.syntx import SyntxBackend

        return SyntxBackend(settings, concurrency=concurrency)
    if settings.kind == "openai":
        from shared.llm.openai import OpenAIBackend

        return OpenAIBackend(settings, concurrency=concurrency)
    from shared.llm.ollama import OllamaBackend

    return OllamaBackend(settings, concurrency=concurrency)

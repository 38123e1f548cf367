"""LLM backends: ``make_backend(settings)`` → something with ``await complete(prompt)``.

Kinds: ``syntx`` (the original wrapper service), ``openai`` (OpenAI-compatible servers), ``ollama``,
``offline`` (a deterministic, clearly labelled local responder; no LLM is called) — every kind in
``shared/config/backends.py``, where a new one is registered.
"""

from __future__ import annotations

import importlib

from shared.config import BACKENDS, BackendSettings
from shared.llm.base import BackendError, Completion, LLMBackend, PromptContext

__all__ = ["BackendError", "Completion", "LLMBackend", "PromptContext", "make_backend"]

DEFAULT_CONCURRENCY = 8


def make_backend(settings: BackendSettings, *, concurrency: int = DEFAULT_CONCURRENCY) -> LLMBackend:
    """Build the backend ``settings.kind`` names; HTTP backends keep up to ``concurrency`` connections.

    Raises ValueError for an unusable URL. Reads the API key variable (kinds that send one) now.
    """
    module, name = BACKENDS[settings.kind].split(":")
    backend: LLMBackend = getattr(importlib.import_module(module), name)(settings, concurrency=concurrency)
    return backend

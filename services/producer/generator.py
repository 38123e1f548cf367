"""Prompt generators: an offline template generator, and any OpenAI-compatible chat server."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Protocol

from shared.config import BackendSettings, GeneratorSettings
from shared.llm import LLMBackend, make_backend


@dataclass(frozen=True)
class PromptRequest:
    topic: str
    category: str
    style: str
    style_phrase: str
    language: str


class PromptGenerator(Protocol):
    name: str

    async def generate(self, request: PromptRequest) -> str: ...

    async def aclose(self) -> None: ...


class TemplateGenerator:
    """Offline: fills the configured templates of the request's language (falls back to any language)."""

    name = "template"

    def __init__(self, templates: dict[str, list[str]], rng: random.Random) -> None:
        if not any(templates.values()):
            raise ValueError("producer.templates holds no template")
        self._templates = templates
        self._rng = rng

    async def generate(self, request: PromptRequest) -> str:
        choices = self._templates.get(request.language) or next(t for t in self._templates.values() if t)
        template = self._rng.choice(choices)
        return template.format(style=request.style_phrase, topic=request.topic, category=request.category)

    async def aclose(self) -> None:
        return None


class ChatGenerator:
    """Asks an LLM to write the meta-prompt (``generator.kind: openai``)."""

    name = "openai"

    def __init__(self, settings: GeneratorSettings) -> None:
        self._backend: LLMBackend = make_backend(
            BackendSettings(
                kind="openai",
                url=settings.url,
                model=settings.model,
                api_key_env=settings.api_key_env,
                max_new_tokens=settings.max_tokens,
                temperature=settings.temperature,
                timeouts=settings.timeouts,
                retries=settings.retries,
            )
        )

    async def generate(self, request: PromptRequest) -> str:
        instruction = (
            f"Schreibe einen einzelnen Meta-Prompt (Sprache: {request.language}) zum Thema "
            f"„{request.topic}“ aus dem Bereich {request.category}. Stil: {request.style_phrase.strip()} "
            "Antworte nur mit dem Prompt selbst."
        )
        completion = await self._backend.complete(instruction)
        return completion.text.strip()

    async def aclose(self) -> None:
        await self._backend.aclose()


def make_generator(
    settings: GeneratorSettings, templates: dict[str, list[str]], rng: random.Random
) -> PromptGenerator:
    if settings.kind == "openai":
        return ChatGenerator(settings)
    return TemplateGenerator(templates, rng)

"""The producer's prompt generators: offline templates, and an OpenAI-compatible server on loopback."""

from __future__ import annotations

import random

from services.producer.generator import PromptRequest, make_generator
from shared.config import GeneratorSettings
from tests.llm_server import Reply, ScriptedServer

REQUEST = PromptRequest(
    topic="Katzen", category="harmlos", style="casual", style_phrase="Erkläre locker: ", language="de"
)


async def test_the_template_generator_fills_a_template_of_the_language() -> None:
    templates = {"de": ["{style}Was ist „{topic}“ ({category})?"], "en": ["{style}What is {topic}?"]}
    generator = make_generator(GeneratorSettings(), templates, random.Random(1))
    assert await generator.generate(REQUEST) == "Erkläre locker: Was ist „Katzen“ (harmlos)?"
    await generator.aclose()


async def test_the_openai_generator_asks_the_model_for_the_prompt(server: ScriptedServer) -> None:
    answer = {
        "choices": [{"message": {"content": "  Erkläre, wie Katzen jagen.  "}, "finish_reason": "stop"}]
    }
    server.default = Reply(json=answer)
    settings = GeneratorSettings(kind="openai", url=f"{server.url}/v1", model="prompt-writer")
    generator = make_generator(settings, {}, random.Random(1))
    try:
        assert await generator.generate(REQUEST) == "Erkläre, wie Katzen jagen."
    finally:
        await generator.aclose()
    [request] = server.requests
    assert request.path == "/v1/chat/completions"
    body = request.json()
    assert body["model"] == "prompt-writer"
    assert "Katzen" in body["messages"][0]["content"] and "harmlos" in body["messages"][0]["content"]

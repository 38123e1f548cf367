"""The producer's prompt generators: offline templates, and an OpenAI-compatible server on loopback.

The LLM generator is tested against a real HTTP server on 127.0.0.1 speaking the chat-completions
protocol (tests/support/llm_server.py): OPRO meta-prompts, refusals, truncation, token and cost accounting,
the
daily budget and the fall back to templates.
"""

from __future__ import annotations

import json
import logging
import random
import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from services.producer.generator import (
    ExampleStore,
    PromptGenerator,
    PromptRequest,
    ScoredPrompt,
    make_generator,
    refusal,
)
from shared.config import GeneratorSettings
from shared.messaging import GeneratorBudgetExhausted, GeneratorCall, subjects
from tests.support.llm_server import Reply, ScriptedServer

REQUEST = PromptRequest(
    topic="Katzen", category="harmlos", style="casual", style_phrase="Erkläre locker: ", language="de"
)
TEMPLATES = {"de": ["{style}Was ist „{topic}“ ({category})?"], "en": ["{style}What is {topic}?"]}
FROM_TEMPLATE = "Erkläre locker: Was ist „Katzen“ (harmlos)?"
PRICES = {"prompt-writer": {"input_per_million": 2.0, "output_per_million": 8.0}}


def chat_reply(text: str, finish: str = "stop", usage: dict[str, int] | None = None) -> Reply:
    body: dict[str, Any] = {
        "choices": [{"message": {"role": "assistant", "content": text}, "finish_reason": finish}]
    }
    if usage is not None:
        body["usage"] = usage
    return Reply(json=body)


class Published:
    """What the generator published, in order (the bus's ``emit`` stand-in: same signature)."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, BaseModel]] = []

    async def __call__(self, subject: str, message: BaseModel) -> None:
        self.messages.append((subject, message))

    def calls(self) -> list[GeneratorCall]:
        return [m for _, m in self.messages if isinstance(m, GeneratorCall)]

    def budget(self) -> list[GeneratorBudgetExhausted]:
        return [m for _, m in self.messages if isinstance(m, GeneratorBudgetExhausted)]


def llm_generator(
    server: ScriptedServer, published: Published | None = None, spend_file: Path | None = None, **extra: Any
) -> PromptGenerator:
    settings = GeneratorSettings.model_validate(
        {
            "kind": "openai",
            "url": f"{server.url}/v1",
            "model": "prompt-writer",
            "retries": {"max_attempts": 1},
        }
        | extra
    )
    return make_generator(settings, TEMPLATES, random.Random(1), publish=published, spend_file=spend_file)


async def test_the_template_generator_fills_a_template_of_the_language() -> None:
    generator = make_generator(GeneratorSettings(), TEMPLATES, random.Random(1))
    assert await generator.generate(REQUEST) == FROM_TEMPLATE
    await generator.aclose()


async def test_the_openai_generator_asks_the_model_for_the_prompt(server: ScriptedServer) -> None:
    answer = {
        "choices": [{"message": {"content": "  Erkläre, wie Katzen jagen.  "}, "finish_reason": "stop"}]
    }
    server.default = Reply(json=answer)
    backend = {"url": f"{server.url}/v1", "model": "prompt-writer"}
    settings = GeneratorSettings.model_validate({"kind": "openai", "backend": backend})
    generator = make_generator(settings, TEMPLATES, random.Random(1))  # templates: the fall back
    try:
        assert await generator.generate(REQUEST) == "Erkläre, wie Katzen jagen."
    finally:
        await generator.aclose()
    [request] = server.requests
    assert request.path == "/v1/chat/completions"
    body = request.json()
    assert body["model"] == "prompt-writer"
    assert "Katzen" in body["messages"][0]["content"] and "harmlos" in body["messages"][0]["content"]


# -- OPRO meta-prompt ------------------------------------------------------------------------------


async def test_the_meta_prompt_shows_the_arms_best_and_worst_prompts_with_scores_lowest_first(
    server: ScriptedServer,
) -> None:
    server.default = chat_reply("Beschreibe, wie Katzen die Welt sehen.")
    generator = llm_generator(server, examples=2)
    for score in (71, 95, 40, 88, 99, 60):
        generator.remember(ScoredPrompt(score, f"Prompt mit Wert {score}", "harmlos", "casual"))
    generator.remember(ScoredPrompt(100, "Prompt eines anderen Arms", "bildung", "casual"))
    try:
        await generator.generate(REQUEST)
    finally:
        await generator.aclose()

    content = server.requests[0].json()["messages"][0]["content"]
    shown = [int(line.split(": ")[1]) for line in content.splitlines() if line.startswith("Bewertung: ")]
    assert shown == [40, 60, 95, 99]  # the two worst and the two best, lowest first
    assert "Prompt mit Wert 40" in content and "Prompt mit Wert 99" in content
    assert "Wert 71" not in content and "anderen Arms" not in content
    assert "höhere Bewertung" in content and "„Katzen“" in content


def test_the_example_store_is_bounded_and_keeps_the_extremes() -> None:
    store = ExampleStore(keep=3)
    for score in range(100, -1, -1):
        store.add(ScoredPrompt(score, f"p{score}", "a", "b"))
    store.add(ScoredPrompt(100, "p100", "a", "b"))  # the same prompt again: kept once
    assert [e.score for e in store.extremes(("a", "b"))] == [0, 1, 2, 98, 99, 100]
    assert store.extremes(("x", "y")) == []


# -- refusals and truncation -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "I’m sorry, but I can’t help with that.",  # typographic apostrophes
        "I can't assist with this request.",
        "As an AI language model, I cannot write that.",
        "Es tut mir leid, aber dabei kann ich nicht helfen.",
        "Leider kann ich diese Anfrage nicht erfüllen.",
        "Ich kann dir dabei leider nicht helfen.",
        "Als KI darf ich das nicht.",
        "Désolé, je ne peux pas répondre.",
        "Lo siento, no puedo ayudar con eso.",
        "  „Es tut mir leid“ – das geht nicht.",
    ],
)
async def test_a_refusal_is_not_used_and_the_template_writes_the_prompt(
    server: ScriptedServer, text: str, caplog: pytest.LogCaptureFixture
) -> None:
    server.default = chat_reply(text, usage={"prompt_tokens": 50, "completion_tokens": 12})
    published = Published()
    generator = llm_generator(server, published)
    caplog.set_level(logging.INFO, logger="services.producer.generator")
    try:
        assert await generator.generate(REQUEST) == FROM_TEMPLATE
    finally:
        await generator.aclose()
    [call] = published.calls()
    assert (call.outcome, call.input_tokens, call.output_tokens) == ("refused", 50, 12)
    assert any("declined" in m and "template generator writes it" in m for m in caplog.messages)


@pytest.mark.parametrize(
    "text",
    [
        "Erkläre, warum Katzen nicht gern baden und was ich tun kann.",
        "Describe why cats can't resist boxes.",
        "Sorryness as a theme: write about apologies in cat culture.",
    ],
)
def test_prompts_that_merely_contain_negations_are_no_refusals(text: str) -> None:
    patterns = GeneratorSettings().refusal_patterns
    assert refusal(text, [re.compile(p, re.IGNORECASE) for p in patterns], 300) is None


async def test_a_reply_cut_at_the_token_limit_is_not_used(server: ScriptedServer) -> None:
    server.default = chat_reply("Beschreibe ausführlich, wie Katzen", finish="length")
    published = Published()
    generator = llm_generator(server, published)
    try:
        assert await generator.generate(REQUEST) == FROM_TEMPLATE
    finally:
        await generator.aclose()
    assert [call.outcome for call in published.calls()] == ["truncated"]


async def test_a_backend_that_fails_costs_no_prompt(server: ScriptedServer) -> None:
    server.default = Reply(status=400, json={"error": {"message": "bad request"}})
    published = Published()
    generator = llm_generator(server, published)
    try:
        assert await generator.generate(REQUEST) == FROM_TEMPLATE
    finally:
        await generator.aclose()
    assert [call.outcome for call in published.calls()] == ["error"]


# -- tokens, cost and the daily budget -------------------------------------------------------------


async def test_tokens_and_cost_are_accounted_from_the_usage_and_the_price_table(
    server: ScriptedServer,
) -> None:
    server.default = chat_reply(
        "Schreibe über Katzen.", usage={"prompt_tokens": 1000, "completion_tokens": 500}
    )
    published = Published()
    generator = llm_generator(server, published, prices=PRICES)
    try:
        for _ in range(2):
            assert await generator.generate(REQUEST) == "Schreibe über Katzen."
    finally:
        await generator.aclose()
    first, second = published.calls()
    assert (first.outcome, first.input_tokens, first.output_tokens) == ("used", 1000, 500)
    assert first.cost == pytest.approx(1000 * 2.0 / 1e6 + 500 * 8.0 / 1e6)  # 0.006
    assert second.spent_today == pytest.approx(0.012)
    assert not first.tokens_estimated


async def test_a_reply_without_usage_is_estimated_from_its_characters(server: ScriptedServer) -> None:
    server.default = chat_reply("x" * 400)
    published = Published()
    generator = llm_generator(server, published, prices=PRICES, chars_per_token=4.0)
    try:
        await generator.generate(REQUEST)
    finally:
        await generator.aclose()
    [call] = published.calls()
    assert call.tokens_estimated and call.output_tokens == 100 and call.input_tokens > 0
    assert call.cost > 0


async def test_the_daily_budget_stops_calls_with_a_log_line_an_event_and_survives_a_restart(
    server: ScriptedServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server.default = chat_reply(
        "Schreibe über Katzen.", usage={"prompt_tokens": 1000, "completion_tokens": 500}
    )
    published = Published()
    spend_file = tmp_path / "state" / "generator_spend.json"
    # each call costs 0.006; a call is made only if even a reply of max_tokens (500) stays within budget
    generator = llm_generator(server, published, spend_file, prices=PRICES, daily_budget=0.015)
    caplog.set_level(logging.INFO, logger="services.producer.generator")
    try:
        prompts = [await generator.generate(REQUEST) for _ in range(5)]
    finally:
        await generator.aclose()

    assert prompts == ["Schreibe über Katzen."] * 2 + [FROM_TEMPLATE] * 3
    assert len(server.requests) == 2
    assert [call.outcome for call in published.calls()] == ["used", "used", *["over_budget"] * 3]
    [exhausted] = published.budget()
    assert exhausted.spent == pytest.approx(0.012)
    assert (exhausted.daily_budget, exhausted.calls) == (0.015, 2)
    assert [subject for subject, m in published.messages if m is exhausted] == [subjects.PRODUCER_BUDGET]
    assert sum("daily budget exhausted" in m for m in caplog.messages) == 1
    assert json.loads(spend_file.read_text(encoding="utf-8"))["cost"] == pytest.approx(0.012)

    restarted = llm_generator(server, Published(), spend_file, prices=PRICES, daily_budget=0.015)
    try:
        assert await restarted.generate(REQUEST) == FROM_TEMPLATE
    finally:
        await restarted.aclose()
    assert len(server.requests) == 2  # the day's spend was kept: no new call


def test_a_budget_needs_a_price_for_the_model() -> None:
    with pytest.raises(ValidationError, match="needs a price for the model"):
        backend = {"url": "http://127.0.0.1:1/v1", "model": "m"}
        GeneratorSettings.model_validate({"kind": "openai", "backend": backend, "daily_budget": 1.0})
    with pytest.raises(ValidationError, match="not a regular expression"):
        GeneratorSettings(refusal_patterns=["(unclosed"])


async def test_a_server_that_is_down_is_not_asked_again_for_the_rest_of_the_pause(
    server: ScriptedServer,
) -> None:
    server.default = Reply(status=503, json={"error": "overloaded"})
    published = Published()
    generator = llm_generator(server, published, error_pause_s=600)
    try:
        prompts = [await generator.generate(REQUEST) for _ in range(3)]
    finally:
        await generator.aclose()
    assert prompts == [FROM_TEMPLATE] * 3
    assert len(server.requests) == 1  # retries: max_attempts 1
    assert [call.outcome for call in published.calls()] == ["error"] * 3

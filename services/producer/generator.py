"""Prompt generators: an offline template generator, and any OpenAI-compatible chat server.

The LLM generator writes its meta-prompt OPRO-style: the best and the worst scored prompts of the
chosen arm, with their scores, lowest first, and the request to write a better one. It refuses to use
a reply that is a refusal (several languages, any apostrophe) or was cut off at the token limit,
accounts each call's tokens and cost from the configured price table, and stops calling at the daily
budget (UTC day). Whatever it declines, the template generator writes that prompt instead — the
producer never loses a prompt to the LLM.
"""

from __future__ import annotations

import heapq
import json
import logging
import random
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel, ValidationError

from shared.config import GeneratorSettings
from shared.llm import BackendError, Completion, LLMBackend, make_backend
from shared.messaging import (
    GeneratorBudgetExhausted,
    GeneratorCall,
    GeneratorOutcome,
    subjects,
)
from shared.service.statefile import StateFile

log = logging.getLogger(__name__)

Publish = Callable[[str, BaseModel], Awaitable[None]]
APOSTROPHES = str.maketrans({"’": "'", "‘": "'", "ʼ": "'", "′": "'", "`": "'", "´": "'"})
TOKENS_PER_PRICE_UNIT = 1_000_000


@dataclass(frozen=True)
class PromptRequest:
    topic: str
    category: str
    style: str
    style_phrase: str
    language: str


@dataclass(frozen=True, order=True)
class ScoredPrompt:
    """A prompt the system produced and the score its answer got (what the generator learns from)."""

    score: int
    prompt: str = field(compare=False)
    category: str = field(compare=False)
    style: str = field(compare=False)


class PromptGenerator(Protocol):
    name: str

    async def generate(self, request: PromptRequest) -> str: ...

    def remember(self, example: ScoredPrompt) -> None:
        """A scored prompt of an arm; generators that learn from examples keep the extremes."""
        ...

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

    def remember(self, example: ScoredPrompt) -> None:
        return None

    async def aclose(self) -> None:
        return None


class ExampleStore:
    """Per (category, style) arm: only its ``keep`` best and ``keep`` worst scored prompts (bounded)."""

    def __init__(self, keep: int) -> None:
        self._keep = keep
        self._best: dict[tuple[str, str], list[ScoredPrompt]] = {}  # min-heap: the weakest of the best
        self._worst: dict[tuple[str, str], list[tuple[int, ScoredPrompt]]] = {}  # by negated score

    def add(self, example: ScoredPrompt) -> None:
        if self._keep == 0 or not example.prompt.strip():
            return
        arm = (example.category, example.style)
        if any(kept.prompt == example.prompt for kept in self.extremes(arm)):
            return
        best = self._best.setdefault(arm, [])
        _push_bounded(best, example, self._keep)
        worst = self._worst.setdefault(arm, [])
        _push_bounded(worst, (-example.score, example), self._keep)

    def extremes(self, arm: tuple[str, str]) -> list[ScoredPrompt]:
        """The arm's worst and best prompts, each once, lowest score first (the OPRO order)."""
        chosen = {id(e): e for e in self._best.get(arm, [])}
        chosen.update({id(e): e for _, e in self._worst.get(arm, [])})
        return sorted(chosen.values())


def _push_bounded(heap: list[Any], item: Any, size: int) -> None:
    """Keep the ``size`` largest items: a min-heap whose smallest gives way to a larger newcomer."""
    if len(heap) < size:
        heapq.heappush(heap, item)
    elif item > heap[0]:
        heapq.heapreplace(heap, item)


class DailySpend(BaseModel):
    """What the generator spent on one UTC day (kept in a file, so a restart does not reset it)."""

    day: str
    cost: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    calls: int = 0
    exhausted: bool = False


class SpendLedger:
    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._file = None if path is None else StateFile(path, "the generator's spend today")
        self._spend = self._load()

    def today(self, now: datetime | None = None) -> DailySpend:
        day = (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%d")
        if self._spend is None or self._spend.day != day:
            self._spend = DailySpend(day=day)
        return self._spend

    def save(self) -> None:
        """On disk when it can be (a full disk: kept in memory, written by the next save)."""
        if self._file is None or self._spend is None:
            return
        self._file.replace(self._spend.model_dump_json().encode("utf-8"))

    def _load(self) -> DailySpend | None:
        if self._path is None:
            return None
        try:
            return DailySpend.model_validate_json(self._path.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValidationError, json.JSONDecodeError) as exc:
            log.warning(
                "generator spend file %s unreadable (%s): counting today's spend from 0", self._path, exc
            )
            return None


@dataclass(frozen=True)
class Usage:
    """One call's tokens (as the server reported them, else estimated from characters) and cost."""

    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0
    estimated: bool = False


NO_CALL = Usage()


class GeneratorDeclined(Exception):
    """The LLM generator did not produce a usable prompt; ``outcome`` says why."""

    def __init__(self, outcome: GeneratorOutcome, detail: str) -> None:
        super().__init__(f"{outcome}: {detail}")
        self.outcome = outcome
        self.detail = detail


def refusal(text: str, patterns: list[re.Pattern[str]], window: int) -> str | None:
    """The refusal pattern the reply's start matches (apostrophes normalised), or None."""
    start = " ".join(text.translate(APOSTROPHES).split())[:window].lower().lstrip("\"'«»„“”*#> ")
    return next((pattern.pattern for pattern in patterns if pattern.search(start)), None)


def meta_prompt(request: PromptRequest, examples: list[ScoredPrompt], cut: int) -> str:
    """The instruction to the prompt-writing model; with examples, OPRO-style (scores lowest first)."""
    task = (
        f"Schreibe einen einzelnen Meta-Prompt (Sprache: {request.language}) zum Thema "
        f"„{request.topic}“ aus dem Bereich {request.category}. Stil: {request.style_phrase.strip()}"
    )
    if not examples:
        return f"{task} Antworte nur mit dem Prompt selbst."
    shown = "\n\n".join(f"Prompt:\n{_cut(e.prompt, cut)}\nBewertung: {e.score}" for e in examples)
    return (
        f"Du verbesserst Prompts. Hier sind frühere Prompts aus dem Bereich {request.category} im Stil "
        f"„{request.style}“ mit der Bewertung (0–100), die ihre Antworten bekamen, aufsteigend sortiert:\n\n"
        f"{shown}\n\n{task} Der neue Prompt soll sich von allen obigen unterscheiden und eine höhere "
        "Bewertung erreichen als jeder von ihnen. Antworte nur mit dem Prompt selbst."
    )


def _cut(text: str, limit: int) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


class ChatGenerator:
    """Asks an LLM to write the meta-prompt (``generator.kind: openai``); raises GeneratorDeclined for
    anything it cannot use."""

    name = "openai"

    def __init__(
        self, settings: GeneratorSettings, publish: Publish | None = None, ledger: SpendLedger | None = None
    ) -> None:
        self._settings = settings
        self._publish = publish
        self._ledger = ledger or SpendLedger(None)
        self._examples = ExampleStore(settings.examples)
        self._paused_until = 0.0  # monotonic; after a retryable backend error
        self._refusals = [re.compile(pattern, re.IGNORECASE) for pattern in settings.refusal_patterns]
        self._backend: LLMBackend = make_backend(settings.backend)

    def remember(self, example: ScoredPrompt) -> None:
        self._examples.add(example)

    async def generate(self, request: PromptRequest) -> str:
        examples = self._examples.extremes((request.category, request.style))
        instruction = meta_prompt(request, examples, self._settings.example_chars)
        spend = self._ledger.today()
        if self._over_budget(spend, instruction):
            await self._announce_exhausted(spend)
            await self._report(request, "over_budget")
            raise GeneratorDeclined("over_budget", f"daily budget {self._settings.daily_budget} reached")
        if time.monotonic() < self._paused_until:
            await self._report(request, "error")
            raise GeneratorDeclined("error", "the server looked down a moment ago; not asked again yet")
        try:
            completion = await self._backend.complete(instruction)
        except BackendError as exc:
            if exc.retryable:  # down, not wrong: spare the rest of the batch the timeouts
                self._paused_until = time.monotonic() + self._settings.error_pause_s
            await self._report(request, "error")
            raise GeneratorDeclined("error", str(exc)) from exc
        usage = self._account(spend, instruction, completion)
        outcome, detail = self._judge(completion)
        await self._report(request, outcome, usage)
        if outcome != "used":
            raise GeneratorDeclined(outcome, detail)
        return completion.text.strip()

    def _judge(self, completion: Completion) -> tuple[GeneratorOutcome, str]:
        text = completion.text.strip()
        if completion.truncated:
            return "truncated", f"the reply stopped at max_tokens {self._settings.backend.max_new_tokens}"
        if not text:
            return "empty", "the reply was empty"
        matched = refusal(text, self._refusals, self._settings.refusal_window_chars)
        if matched:
            return "refused", f"the reply reads as a refusal ({text[:60]!r} matches {matched!r})"
        return "used", ""

    def _estimate(self, text: str) -> int:
        return max(1, round(len(text) / self._settings.chars_per_token))

    def _cost(self, input_tokens: int, output_tokens: int) -> float:
        price = self._settings.prices.get(self._settings.backend.model)
        if price is None:
            return 0.0
        return (
            input_tokens * price.input_per_million + output_tokens * price.output_per_million
        ) / TOKENS_PER_PRICE_UNIT

    def _over_budget(self, spend: DailySpend, instruction: str) -> bool:
        """Whether this call could take the day's spend over the budget (its reply at max_tokens)."""
        budget = self._settings.daily_budget
        if budget is None:
            return False
        worst = self._cost(self._estimate(instruction), self._settings.backend.max_new_tokens)
        return spend.cost + worst > budget

    def _account(self, spend: DailySpend, instruction: str, completion: Completion) -> Usage:
        estimated = completion.input_tokens is None or completion.output_tokens is None
        input_tokens = completion.input_tokens
        if input_tokens is None:
            input_tokens = self._estimate(instruction)
        output_tokens = completion.output_tokens
        if output_tokens is None:
            output_tokens = self._estimate(completion.text)
        if estimated:
            log.warning(
                "generator reply carried no token usage: estimated %d in, %d out", input_tokens, output_tokens
            )
        usage = Usage(input_tokens, output_tokens, self._cost(input_tokens, output_tokens), estimated)
        spend.cost += usage.cost
        spend.input_tokens += input_tokens
        spend.output_tokens += output_tokens
        spend.calls += 1
        self._ledger.save()
        return usage

    async def _announce_exhausted(self, spend: DailySpend) -> None:
        if spend.exhausted:
            return
        spend.exhausted = True
        self._ledger.save()
        budget = self._settings.daily_budget or 0.0
        log.warning(
            "generator daily budget exhausted: spent %.4f of %.4f on %d calls today (UTC %s); "
            "the template generator writes prompts until the day ends",
            spend.cost,
            budget,
            spend.calls,
            spend.day,
        )
        await self._emit(
            subjects.PRODUCER_BUDGET,
            GeneratorBudgetExhausted(
                model=self._settings.backend.model,
                day=spend.day,
                spent=round(spend.cost, 6),
                daily_budget=budget,
                calls=spend.calls,
                input_tokens=spend.input_tokens,
                output_tokens=spend.output_tokens,
            ),
        )

    async def _report(
        self, request: PromptRequest, outcome: GeneratorOutcome, usage: Usage = Usage()
    ) -> None:
        await self._emit(
            subjects.PRODUCER_GENERATOR,
            GeneratorCall(
                model=self._settings.backend.model,
                outcome=outcome,
                category=request.category,
                style=request.style,
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
                tokens_estimated=usage.estimated,
                cost=usage.cost,
                spent_today=round(self._ledger.today().cost, 6),
                daily_budget=self._settings.daily_budget,
            ),
        )

    async def _emit(self, subject: str, message: BaseModel) -> None:
        if self._publish is None:
            return
        try:
            await self._publish(subject, message)
        except Exception as exc:  # an event that did not go out must not cost the prompt
            log.warning("could not publish %s: %s", subject, exc)

    async def aclose(self) -> None:
        await self._backend.aclose()


class FallbackGenerator:
    """The LLM generator, and the template generator for every prompt the LLM one declines."""

    def __init__(self, primary: ChatGenerator, fallback: TemplateGenerator) -> None:
        self._primary = primary
        self._fallback = fallback
        self.name = primary.name

    def remember(self, example: ScoredPrompt) -> None:
        self._primary.remember(example)

    async def generate(self, request: PromptRequest) -> str:
        try:
            return await self._primary.generate(request)
        except GeneratorDeclined as exc:
            log.info(
                "generator %s declined a prompt for %s/%s (%s); the template generator writes it",
                self._primary.name,
                request.category,
                request.style,
                exc,
            )
        except Exception:  # a defect in the LLM path must not cost the prompt either
            log.exception(
                "generator %s failed; the template generator writes this prompt", self._primary.name
            )
        return await self._fallback.generate(request)

    async def aclose(self) -> None:
        await self._primary.aclose()


def make_generator(
    settings: GeneratorSettings,
    templates: dict[str, list[str]],
    rng: random.Random,
    *,
    publish: Publish | None = None,
    spend_file: Path | None = None,
) -> PromptGenerator:
    """``template``, or ``openai`` backed by the templates; ``publish`` sends the generator's events,
    ``spend_file`` keeps the day's spend across restarts."""
    template = TemplateGenerator(templates, rng)
    if settings.kind == "openai":
        return FallbackGenerator(ChatGenerator(settings, publish, SpendLedger(spend_file)), template)
    return template

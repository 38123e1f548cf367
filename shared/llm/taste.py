"""The offline responder's simulated taste: a demo world in which some jobs are answered better.

Clearly simulated, never a model of any real LLM. The chance of a complete answer is the taste's base
plus the effects of the job's category, style and language (and, from a configured generation on, the
drift's effects), clipped to 0..1; otherwise the answer is one of the weak kinds. Draws come from a
generator seeded by the taste, so a run is reproducible.
"""

from __future__ import annotations

import random
from typing import Literal

from shared.config import OfflineTaste
from shared.llm.base import PromptContext

AnswerKind = Literal["complete", "substantive", "thin", "incomplete"]
TASTE_LABEL = "[offline responder — no LLM was called; answer quality simulated by the demo taste]"


class Taste:
    def __init__(self, settings: OfflineTaste) -> None:
        self._settings = settings
        self._rng = random.Random(settings.seed)
        self._weak = list(settings.weak)
        self._weak_weights = [settings.weak[kind] for kind in self._weak]

    def chance(self, context: PromptContext) -> float:
        """The chance that a job with this context gets a complete answer."""
        config = self._settings
        value = config.base + _effects(config.category, config.style, config.language, context)
        drift = config.drift
        if (
            drift is not None
            and context.generation is not None
            and context.generation >= drift.from_generation
        ):
            value += _effects(drift.category, drift.style, drift.language, context)
        return min(max(value, 0.0), 1.0)

    def draw(self, context: PromptContext) -> AnswerKind:
        if self._rng.random() < self.chance(context):
            return "complete"
        kind: AnswerKind = self._rng.choices(self._weak, weights=self._weak_weights)[0]
        return kind


def _effects(
    category: dict[str, float], style: dict[str, float], language: dict[str, float], context: PromptContext
) -> float:
    return (
        category.get(context.category or "", 0.0)
        + style.get(context.style or "", 0.0)
        + language.get(context.language or "", 0.0)
    )

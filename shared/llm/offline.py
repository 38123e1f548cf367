"""The offline responder: a deterministic, clearly labelled stand-in for an LLM (demos, fresh machines).

It writes every expected header followed by a few German sentences built from the prompt's own content
words, so parsing and relevance scoring have something real to work on. About one answer in four is
deliberately weaker (a section left out, or a section of one short sentence), chosen by a hash of the
prompt, so a demo loop sees some jobs below the threshold. With a ``taste`` (config/demo.yaml), the
kind of answer is drawn from a simulated world instead (see :mod:`shared.llm.taste`). No network, no LLM.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import re
import time
from collections.abc import Sequence

from shared.config import BackendSettings
from shared.llm.base import Completion, PromptContext
from shared.llm.taste import TASTE_LABEL, AnswerKind, Taste

LABEL = "[offline responder — no LLM was called]"
FALLBACK_WORDS = ("Thema", "Struktur", "Entwicklung", "Zusammenhang")
MAX_WORDS = 12
_WORD = re.compile(r"[^\W\d_]{5,}")
_STOPWORD_TEXT = """
allem allen aller alles andere anderen dabei damit darauf darum deine deinem deinen deiner denen derer
dessen diese diesem diesen dieser dieses durch einem einen einer eines etwas euren haben hatte ihrem
ihren ihrer immer jedem jeden jeder jedes jetzt keine keinen können meine nicht seine seinem seinen
seiner selbst sollen sondern sowie unter warum welche welchem welchen welcher werden wieder wurde
zwischen about after again their there these those which while would should could where other being
erstelle analysiere beschreibe erkläre schreibe nenne antworte formuliere create write describe explain
answer
"""
_STOPWORDS = frozenset(_STOPWORD_TEXT.split())
_SENTENCES = (
    "Im Kern geht es um {a} und um die Frage, wie {b} damit verbunden ist.",
    "{A} wirkt hier als treibende Kraft, die {b} Schritt für Schritt verschiebt.",
    "Wer {a} genauer betrachtet, erkennt den Druck, der von {b} ausgeht.",
    "Die Beziehung zwischen {a} und {b} bleibt dabei nicht stabil, sondern verlagert sich langsam.",
    "Daraus folgt, dass {a} nicht isoliert verstanden werden kann.",
    "Auf einer tieferen Ebene verweist {a} auf ein Muster, das auch {b} prägt.",
    "Konkret bedeutet das: {a} verstärkt die Bewegung, {b} bildet das Gegengewicht.",
    "Diese Spannung macht {a} zu einem zentralen Bezugspunkt der Betrachtung.",
    "Sichtbar wird das vor allem dort, wo {a} und {b} aufeinandertreffen.",
    "Am Ende zeigt sich, dass {b} ohne {a} kaum zu erklären ist.",
)


class OfflineBackend:
    """``complete`` answers from the prompt alone after ``offline_delay_s``; never fails."""

    def __init__(self, settings: BackendSettings, *, concurrency: int | None = None) -> None:
        """``concurrency`` is taken like every backend's and not needed: no connections are kept."""
        self.name = "offline"
        self.model = settings.model
        self._delay_s = settings.offline_delay_s
        self._taste = Taste(settings.taste) if settings.taste is not None else None

    def __repr__(self) -> str:
        return f"OfflineBackend(model={self.model!r}, delay_s={self._delay_s:g})"

    async def complete(
        self, prompt: str, *, expected_headers: Sequence[str] = (), context: PromptContext | None = None
    ) -> Completion:
        started = time.monotonic()
        if self._delay_s > 0:
            await asyncio.sleep(self._delay_s)
        if self._taste is None:
            text = offline_answer(prompt, expected_headers)
        else:
            kind = self._taste.draw(context or PromptContext())
            text = offline_answer(prompt, expected_headers, kind=kind, label=TASTE_LABEL)
        return Completion(text, self.name, self.model, time.monotonic() - started, attempts=1)

    async def aclose(self) -> None:
        return None


def offline_answer(
    prompt: str, expected_headers: Sequence[str] = (), *, kind: AnswerKind | None = None, label: str = LABEL
) -> str:
    """The deterministic answer to ``prompt``: label line, then each header with its sentences.

    ``kind`` None: weak for about one prompt in four (by its hash); else the kind of answer asked for.
    """
    digest = hashlib.sha256(prompt.encode("utf-8")).digest()
    rng = random.Random(int.from_bytes(digest[:8], "big"))
    words = _Words(rng, content_words(prompt, expected_headers))
    headers = list(expected_headers)
    weak_index: int | None = None
    leave_out = False
    if headers and kind is None and is_weak(prompt):
        weak_index, leave_out = digest[2] % len(headers), digest[1] % 2 == 0
    elif headers and kind == "incomplete":
        weak_index, leave_out = digest[2] % len(headers), True
    parts = [label]
    if not headers:
        parts.append(_paragraph(rng, words, rng.randint(3, 5)))
    for index, header in enumerate(headers):
        if index == weak_index and leave_out:
            continue
        count = _sentences(rng, kind, weak=index == weak_index)
        body = _short_sentence(words) if count == 1 else _paragraph(rng, words, count)
        parts.append(f"{header}\n{body}")
    return "\n\n".join(parts) + "\n"


def _sentences(rng: random.Random, kind: AnswerKind | None, *, weak: bool) -> int:
    if weak or kind == "thin":
        return 1
    if kind == "substantive":
        return 2
    return rng.randint(3, 5)


def is_weak(prompt: str) -> bool:
    """True for about one prompt in four: its answer misses or thins out one section."""
    return hashlib.sha256(prompt.encode("utf-8")).digest()[0] % 4 == 0


def content_words(prompt: str, expected_headers: Sequence[str] = ()) -> list[str]:
    """Up to ``MAX_WORDS`` distinct content words, the prompt's end (the meta-prompt) first."""
    banned = {word.casefold() for header in expected_headers for word in _WORD.findall(header)}
    found: list[str] = []
    seen: set[str] = set()
    for word in reversed(_WORD.findall(prompt)):
        key = word.casefold()
        if key in seen or key in banned or key in _STOPWORDS:
            continue
        seen.add(key)
        found.append(word)
        if len(found) == MAX_WORDS:
            break
    return found or list(FALLBACK_WORDS)


class _Words:
    """Hands out the content words in a shuffled cycle, so every word is used before any repeats."""

    def __init__(self, rng: random.Random, words: Sequence[str]) -> None:
        self._rng = rng
        self._words = list(words)
        self._queue: list[str] = []

    def next(self, avoid: str = "") -> str:
        if not self._queue:
            self._queue = self._rng.sample(self._words, len(self._words))
        if len(self._words) > 1 and self._queue[-1] == avoid:
            self._queue.insert(0, self._queue.pop())
        return self._queue.pop()


def _paragraph(rng: random.Random, words: _Words, count: int) -> str:
    templates = rng.sample(_SENTENCES, count)
    return " ".join(_fill(template, words) for template in templates)


def _short_sentence(words: _Words) -> str:
    return f"{_capitalised(words.next())} spielt eine Rolle."


def _fill(template: str, words: _Words) -> str:
    first = words.next()
    second = words.next(avoid=first)
    return template.format(a=first, A=_capitalised(first), b=second)


def _capitalised(word: str) -> str:
    return word[:1].upper() + word[1:]

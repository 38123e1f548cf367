"""Plain-text heuristics for the default scorer: relevance, repetition, echo and language.

All of them are deliberately simple and tolerant; they look at words and sentences, never at meaning.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from functools import lru_cache

from pydantic import BaseModel, ConfigDict

_WORD = re.compile(r"[^\W\d_]+")
_SENTENCE_SPLIT = re.compile(r"(?<=[.!?])\s+|\n+")
_NOT_WORD = re.compile(r"[^\w ]+")
_FOLD = str.maketrans({"ä": "a", "ö": "o", "ü": "u", "ß": "s"})

STEM_CHARS = 5  # words are compared by their first five letters (umlauts folded): tolerant to inflection
MIN_CONTENT_WORD = 4  # shorter words never count as content words
MIN_SENTENCE_CHARS = 20  # shorter sentences are ignored by the repetition and echo checks
MIN_ECHO_FRAGMENT = 40  # a shorter answer sentence only counts as echo when it equals an instruction sentence
MIN_LANGUAGE_HITS = 8  # fewer function words than this: too little evidence to judge the language


def _wordset(text: str) -> frozenset[str]:
    return frozenset(text.split())


FUNCTION_WORDS: dict[str, frozenset[str]] = {
    "de": _wordset(
        "der die das den dem des und ist sind nicht ein eine einen einem einer eines mit sich auf für "
        "von zu zum zur im auch als wird werden wurde oder aber wenn nur noch nach über um durch bei aus "
        "wie dass sie er wir ich es kein keine diese dieser dieses hat haben sein seine ihre"
    ),
    "en": _wordset(
        "the and is are not with for of to on as be been or but if only still after over about through at "
        "from how that they he we it this these those has have his her their which there what would "
        "should"
    ),
}
_EXTRA_STOPWORDS = _wordset(
    "hier bist lass lasst uns mal doch bitte etwas einfach sehr mehr viel viele immer schon sondern "
    "dann denn weil gibt geht kann können könnte sollte müssen soll will your you please just very "
    "into than then them when where while also"
)
STOPWORDS = frozenset().union(*FUNCTION_WORDS.values(), _EXTRA_STOPWORDS)
# Function word -> the languages it belongs to: one lookup per word of an answer instead of one per language.
_LANGUAGES_OF: dict[str, tuple[str, ...]] = {
    word: tuple(name for name, vocabulary in FUNCTION_WORDS.items() if word in vocabulary)
    for word in frozenset().union(*FUNCTION_WORDS.values())
}


class Relevance(BaseModel):
    """How many of the prompt's content words (by stem) occur in the answer."""

    model_config = ConfigDict(frozen=True)

    share: float
    matched: int
    total: int
    missing_sample: list[str]


CACHE_SIZE = 64  # one job's texts are looked at by several checks: split each text once


@lru_cache(maxsize=CACHE_SIZE)
def words(text: str) -> tuple[str, ...]:
    return tuple(word.lower() for word in _WORD.findall(text))


def content_stems(text: str) -> dict[str, str]:
    """Stem -> first word seen with that stem, for every content word of ``text``."""
    stems: dict[str, str] = {}
    for word in dict.fromkeys(words(text)):  # each word once, in the order first seen
        if len(word) >= MIN_CONTENT_WORD and word not in STOPWORDS:
            folded = word if word.isascii() else word.translate(_FOLD)  # translate is slow, ASCII is common
            stems.setdefault(folded[:STEM_CHARS], word)
    return stems


def relevance(prompt: str, answer: str) -> Relevance | None:
    """``None`` when the prompt has no content words to compare with."""
    wanted = content_stems(prompt)
    if not wanted:
        return None
    present = content_stems(answer)
    matched = [stem for stem in wanted if stem in present]
    missing = [word for stem, word in wanted.items() if stem not in present]
    return Relevance(
        share=len(matched) / len(wanted), matched=len(matched), total=len(wanted), missing_sample=missing[:5]
    )


@lru_cache(maxsize=CACHE_SIZE)
def sentences(text: str) -> tuple[str, ...]:
    """Normalised sentences/lines (lower case, punctuation removed) of at least MIN_SENTENCE_CHARS."""
    normalised = (_normal(part) for part in _SENTENCE_SPLIT.split(text))
    return tuple(normal for normal in normalised if len(normal) >= MIN_SENTENCE_CHARS)


def _normal(text: str) -> str:
    return " ".join(_NOT_WORD.sub(" ", text.lower()).split())


def repetition_share(text: str) -> tuple[float, int]:
    """Share of sentences that repeat an earlier one, and how many repeats there are."""
    found = sentences(text)
    if len(found) < 3:
        return 0.0, 0
    repeats = sum(count - 1 for count in Counter(found).values())
    return repeats / len(found), repeats


def _copied(sentence: str, source: tuple[str, ...]) -> bool:
    if len(sentence) < MIN_ECHO_FRAGMENT:
        return sentence in source
    return any(sentence in line for line in source)


@lru_cache(maxsize=CACHE_SIZE)
def _instruction_sentences(instructions: str, ignore_lines: tuple[str, ...]) -> tuple[str, ...]:
    ignored = {_normal(line) for line in ignore_lines}
    return tuple(sentence for sentence in sentences(instructions) if sentence not in ignored)


def echo_share(answer: str, instructions: str, ignore_lines: Iterable[str] = ()) -> tuple[float, int]:
    """Share of the answer's sentence characters copied from ``instructions`` (minus ``ignore_lines``)."""
    source = _instruction_sentences(instructions, tuple(ignore_lines))
    found = sentences(answer)
    total = sum(len(sentence) for sentence in found)
    if not source or total == 0:
        return 0.0, 0
    echoed = [sentence for sentence in found if _copied(sentence, source)]
    return sum(len(sentence) for sentence in echoed) / total, len(echoed)


def language_share(text: str, language: str) -> tuple[float, int] | None:
    """Share of function words that belong to ``language``; ``None`` when it cannot be judged."""
    if language not in FUNCTION_WORDS:
        return None
    counts = Counter(name for word in words(text) for name in _LANGUAGES_OF.get(word, ()))
    hits = sum(counts.values())
    if hits < MIN_LANGUAGE_HITS:
        return None
    return counts[language] / hits, hits

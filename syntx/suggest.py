"""'Did you mean …?': the closest known names to a mistyped one, for every refusal of a name."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

# difflib's ratio from which a name counts as a likely typo: 'statsu' -> 'status' (0.83), 'prodcer' ->
# 'producer' (0.93); not 'logs' for 'bogus' (0.67).
CLOSE_ENOUGH = 0.7
SUGGESTIONS = 2  # more than two choices is a list, which the refusal names anyway


def did_you_mean(word: str, known: Iterable[str]) -> str:
    """`` (did you mean 'status'?)`` — empty when nothing known is close to ``word``."""
    close = difflib.get_close_matches(word, list(known), n=SUGGESTIONS, cutoff=CLOSE_ENOUGH)
    if not close:
        return ""
    return f" (did you mean {' or '.join(repr(name) for name in close)}?)"


def unknown(what: str, word: str, known: Iterable[str]) -> str:
    """``unknown schedule 'prodcer' (did you mean 'producer'?); name one of: …``."""
    names = list(known)
    return f"unknown {what} {word!r}{did_you_mean(word, names)}; name one of: {', '.join(names)}"

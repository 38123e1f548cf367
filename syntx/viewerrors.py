"""How a view of the learner's files fails: nothing to show yet (exit 1) or a wrong request (exit 2)."""

from __future__ import annotations


class NothingToShow(Exception):
    """Nothing to show, with the one line that says why and what to do."""


class WrongRequest(Exception):
    """A wrong request: an unknown picture format, an unwritable file, a missing extra."""

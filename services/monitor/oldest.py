"""The oldest few names waiting in ``incoming/`` — what the oldest-age gauge needs, not every name.

Job ids sort by creation time, so the oldest waiting jobs have the smallest names. Kept: every waiting
name up to a ceiling, at most ``keep`` of them, in order. A name above the ceiling is not kept (a
newer job); once every kept name is gone (claimed, FIFO) while jobs still wait, the set is
``exhausted`` and the folder is looked at again (:meth:`OldestNames.add` is also how a scan fills one).
Memory is ``keep`` names whatever waits: a flood of a million files costs what a thousand cost.
"""

from __future__ import annotations

import bisect


class OldestNames:
    def __init__(self, keep: int) -> None:
        self._keep = keep
        self._names: list[str] = []  # sorted
        self._ceiling: str | None = None  # None: every waiting name is kept

    def add(self, name: str) -> None:
        if self._ceiling is not None and name > self._ceiling:
            return
        at = bisect.bisect_left(self._names, name)
        if at < len(self._names) and self._names[at] == name:
            return  # a notification twice for one file
        self._names.insert(at, name)
        if len(self._names) > self._keep:
            self._names.pop()
            self._ceiling = self._names[-1]

    def discard(self, name: str) -> None:
        at = bisect.bisect_left(self._names, name)
        if at < len(self._names) and self._names[at] == name:
            del self._names[at]

    @property
    def exhausted(self) -> bool:
        """Every kept name is gone, though names above the ceiling may still wait: look again."""
        return not self._names and self._ceiling is not None

    def in_order(self) -> list[str]:
        return list(self._names)

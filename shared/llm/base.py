"""What every LLM backend returns or raises, and the protocol it implements."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Completion:
    """One finished LLM call.

    ``attempts`` counts HTTP attempts including the successful one; ``truncated`` is True when the
    backend reports that the answer stopped at the token limit (OpenAI/Ollama ``length``).
    ``input_tokens``/``output_tokens``: the token usage the server reported, None when it reported none.
    """

    text: str
    backend: str
    model: str
    duration_s: float
    attempts: int
    truncated: bool = False
    input_tokens: int | None = None
    output_tokens: int | None = None


class BackendError(Exception):
    """An LLM call that did not produce a completion.

    ``retryable`` is True when the backend looks down (timeouts, connection errors, 429 or 5xx until all
    attempts were used, or the overall deadline passed): the job should stay queued. It is False when
    asking again cannot help (other 4xx, a reply that is not the expected JSON). ``stalled`` is True
    when the backend took the request but did not finish its reply in time (read timeouts, or the
    overall deadline passed while a reply was pending): such an attempt counts against the job even
    though the backend looks down, so a backend that only drips bytes cannot keep a job forever.
    """

    def __init__(
        self,
        reason: str,
        *,
        retryable: bool,
        attempts: int,
        status: int | None = None,
        stalled: bool = False,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable
        self.attempts = attempts
        self.status = status
        self.stalled = stalled

    def __str__(self) -> str:
        return self.reason

    def __repr__(self) -> str:
        return (
            f"BackendError({self.reason!r}, retryable={self.retryable}, "
            f"attempts={self.attempts}, status={self.status}, stalled={self.stalled})"
        )

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild_error, (self.reason, self.retryable, self.attempts, self.status, self.stalled))


def _rebuild_error(
    reason: str, retryable: bool, attempts: int, status: int | None, stalled: bool = False
) -> BackendError:
    return BackendError(reason, retryable=retryable, attempts=attempts, status=status, stalled=stalled)


class LLMBackend(Protocol):
    """A configured LLM: ``await complete(prompt)`` returns a :class:`Completion` or raises BackendError."""

    name: str
    model: str

    async def complete(self, prompt: str, *, expected_headers: Sequence[str] = ()) -> Completion:
        """Answer ``prompt``; ``expected_headers`` are the section headers the wrapper asks for."""
        ...

    async def aclose(self) -> None:
        """Release connections; the backend is unusable afterwards."""
        ...

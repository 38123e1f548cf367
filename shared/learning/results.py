"""From a result file to something the learner may learn, or the reason it may not.

Trusted only: status passed or rejected, an integer score 0..100 from a known scorer, the job id inside
matching the file name, and the producer's metadata (category, style, sequence). Everything else is
refused with a reason; nothing here raises for a bad file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from shared.learning.observation import Observation
from shared.queue import JobResult, ResultFileError

SCORED = ("passed", "rejected")


@dataclass(frozen=True)
class NotLearned:
    """Why a result teaches nothing; ``untrusted`` marks results that claim a score they cannot prove."""

    reason: str  # a short, fixed text: what the learner counts
    untrusted: bool = False
    detail: str = ""  # the precise problem, for the log line

    @property
    def said(self) -> str:
        return self.detail or self.reason


def read_observation(path: Path, max_bytes: int) -> Observation | NotLearned:
    """The one place results are read for learning: through the typed, bounded result reader."""
    try:
        result = JobResult.load(path, max_bytes=max_bytes)
    except OSError as exc:
        return NotLearned(f"unreadable: {exc.strerror or exc}")
    except ResultFileError as exc:
        return NotLearned(exc.reason, untrusted=True, detail=exc.detail)
    return observation_from_result(result)


def observation_from_result(result: JobResult) -> Observation | NotLearned:
    """A trusted result (the reader checked its id, score and scorer) -> what the learner needs."""
    if result.status not in SCORED or result.score is None:
        return NotLearned("not scored")
    category, style, sequence = result.meta.category, result.meta.style, result.meta.sequence
    if category is None or style is None:
        return NotLearned("no category and style")
    if sequence is None or sequence < 0:
        return NotLearned("no producer sequence number")
    language = result.meta.language
    scorer = result.scorer or result.score.scorer
    context = (
        "|".join(value or "-" for value in (result.wrapper, result.backend, result.model)) + f"|{scorer}"
    )
    return Observation(
        job_id=result.job_id,
        sequence=sequence,
        category=category,
        style=style,
        language=language or "-",
        context=context,
        score=result.score.total,
        prompt=result.prompt,
    )

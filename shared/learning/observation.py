"""What the learner learns from: one scored job, and the names of arms."""

from __future__ import annotations

from dataclasses import dataclass, field

Arm = tuple[str, str]  # (category, style): what the producer chooses
CellKey = tuple[str, str, str, str]  # (category, style, language, context): where a result is kept


@dataclass(frozen=True)
class Observation:
    """One scored job, as the learner needs it."""

    job_id: str
    sequence: int  # the producer's running number of the job: results are placed in time by it
    category: str
    style: str
    language: str
    context: str  # wrapper|backend|model|scorer: a nuisance, like the language
    score: int
    prompt: str | None = field(default=None, compare=False)  # shown to an LLM generator as an example

    @property
    def arm(self) -> Arm:
        return (self.category, self.style)

    @property
    def cell(self) -> CellKey:
        return (self.category, self.style, self.language, self.context)


def arm_name(arm: Arm) -> str:
    return f"{arm[0]}/{arm[1]}"

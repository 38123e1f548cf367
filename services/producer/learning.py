"""What the producer learns: score statistics per (category, style) arm, and which arm to try next.

Statistics are rebuilt from the result files at start (the filesystem is the source of truth) and
then kept current from ``syntx.job.scored`` events; a job counts once, however often it is seen.
Choice is Gaussian Thompson sampling: each arm's mean score is drawn from its posterior and the best
draw wins, so good arms are favoured while untried or uncertain arms still get explored.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from shared.config import LearningSettings
from shared.queue import JobResult, ResultFileError

log = logging.getLogger(__name__)

Arm = tuple[str, str]  # (category, style)


@dataclass
class ArmStats:
    count: int = 0
    total: float = 0.0
    passed: int = 0

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else 0.0


@dataclass
class Observation:
    job_id: str
    category: str
    style: str
    score: int
    prompt: str | None = field(default=None, compare=False)  # shown to the LLM generator


@dataclass
class Learner:
    settings: LearningSettings
    rng: random.Random
    arms: dict[Arm, ArmStats] = field(default_factory=dict)
    seen: set[str] = field(default_factory=set)

    def observe(self, observation: Observation) -> bool:
        """Count a scored job once; returns False for one already counted."""
        if observation.job_id in self.seen:
            return False
        self.seen.add(observation.job_id)
        stats = self.arms.setdefault((observation.category, observation.style), ArmStats())
        stats.count += 1
        stats.total += observation.score
        stats.passed += observation.score >= self.settings.min_score
        return True

    def posterior(self, arm: Arm) -> tuple[float, float]:
        stats = self.arms.get(arm, ArmStats())
        weight = self.settings.prior_weight
        mean = (self.settings.prior_mean * weight + stats.total) / (weight + stats.count)
        return mean, self.settings.score_sd / math.sqrt(weight + stats.count)

    def choose(self, candidates: Iterable[Arm]) -> Arm:
        options = list(candidates)
        if not self.settings.enabled:
            return self.rng.choice(options)
        draws = [(self.rng.gauss(*self.posterior(arm)), arm) for arm in options]
        return max(draws)[1]

    def favoured(self, candidates: Iterable[Arm], top: int = 3) -> list[Arm]:
        return sorted(candidates, key=lambda arm: self.posterior(arm)[0], reverse=True)[:top]

    def summary(self) -> dict[str, dict[str, float]]:
        return {
            f"{category}/{style}": {
                "count": stats.count,
                "mean": round(stats.mean, 2),
                "passed": stats.passed,
            }
            for (category, style), stats in sorted(self.arms.items())
        }


def observation_from_result(path: Path, max_bytes: int) -> Observation | None:
    """A scored result file -> an observation; None for failed or malformed jobs, jobs without a
    category and style, and files that are not trusted results (cleanup quarantines those)."""
    try:
        result = JobResult.load(path, max_bytes=max_bytes)
    except FileNotFoundError:
        return None
    except ResultFileError as exc:
        log.warning("not learning from %r (%s): %s", str(path), exc.reason, exc.detail)
        return None
    category, style = result.meta.get("category"), result.meta.get("style")
    if result.score is None or not (isinstance(category, str) and isinstance(style, str)):
        return None
    return Observation(result.job_id, category, style, result.score.total, result.prompt)

"""``syntx learning``: what the producer's learner believes and how its choices move.

What it believes comes live from the running producer when it answers (``syntx.producer.stats``: the
results scored since its last tick learned first), else from its checkpoint (``data/state/learner.json``,
replaced atomically after every tick that learned or produced something, holding the estimates of that
moment); the first line says which. How its choices moved comes from ``data/logs/evolution.jsonl``. The
command never samples anything itself. Per arm: the results behind its estimate, the estimated mean score
with a 90 % interval, its chance of being the best arm, its share of the last N produced jobs and the
trend of that share; the category, style, language and context effects; what changed at the last
generation. ``--json`` prints the same as one document; ``--plot FILE`` draws the generations
(:mod:`syntx.learningplot`).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from shared.config import LearningSettings, Settings
from shared.learning.evolution import EVOLUTION_LOG, GenerationLine, Window, read_generations, take_window
from shared.learning.state import Checkpoint, CheckpointError, Estimates, read_checkpoint
from shared.messaging import ProducerStatsReply
from syntx import exits, learningplot
from syntx.viewerrors import NothingToShow, WrongRequest

INTERVAL_Z = 1.645  # a 90 % interval of a normal posterior
SCORE_RANGE = (0.0, 100.0)  # intervals are cut to the scores that exist
RESULTS_NOTE = (
    "results: the scored jobs behind the estimate in the memory in use (older ones count less), "
    "not the jobs made; chance best: how likely the arm is the best one"
)


@dataclass(frozen=True)
class ArmRow:
    arm: str
    results: int
    estimate: float
    low: float
    high: float
    chance_best: float
    share: float | None  # of the last window's jobs; None when the log says nothing
    previous_share: float | None
    favoured: bool

    @property
    def trend(self) -> float | None:
        if self.share is None or self.previous_share is None:
            return None
        return self.share - self.previous_share


@dataclass(frozen=True)
class Belief:
    """What the learner believes: live from the running producer (``saved`` None), or as its checkpoint
    saved it at ``saved`` because the producer's answer is missing (``unanswered`` says why)."""

    learned: int
    refused: dict[str, int]
    estimates: Estimates
    saved: datetime | None = None
    unanswered: str = ""


AskProducer = Callable[[], ProducerStatsReply | str]  # the producer's answer, or why there is none


@dataclass(frozen=True)
class LearningView:
    belief: Belief
    arms: list[ArmRow]
    window: Window
    previous_window: Window
    last: GenerationLine | None
    before_last: GenerationLine | None

    def to_json(self) -> dict[str, Any]:
        belief = self.belief
        return {
            "source": "checkpoint" if belief.saved else "producer",
            "checkpoint_saved": belief.saved.isoformat() if belief.saved else None,
            "generation": self.last.generation if self.last else 0,
            "learned": belief.learned,
            "refused": belief.refused,
            "memory": belief.estimates.memory,
            "drifting": belief.estimates.changed,
            "noise_sd": round(belief.estimates.noise_sd, 2),
            "window": _window_json(self.window),
            "previous_window": _window_json(self.previous_window),
            "arms": [asdict(row) | {"trend": _rounded(row.trend)} for row in self.arms],
            "effects": {
                kind: {name: round(value, 2) for name, value in values.items()}
                for kind, values in belief.estimates.effects.items()
            },
            "last_generation": self.last.model_dump(mode="json") if self.last else None,
            "changed": _changed(self),
        }


def learning(
    settings: Settings, as_json: bool, plot: Path | None, last_jobs: int, ask_producer: AskProducer
) -> int:
    """The command: the table, the JSON document or the picture; the exit code. The producer is asked
    only for the table and the document."""
    log_path = settings.logs_dir / EVOLUTION_LOG
    if last_jobs < 1:
        sys.stderr.write(f"--last {last_jobs}: the share window needs at least 1 job\n")
        return exits.USAGE
    try:
        if plot is not None:
            count = learningplot.plot_generations(list(read_generations(log_path)), plot, log_path, last_jobs)
            sys.stdout.write(f"wrote {plot} ({count} generations from {log_path})\n")
            return exits.OK
        view = read_view(settings, last_jobs, believed(settings, ask_producer()))
    except NothingToShow as exc:
        sys.stderr.write(f"{exc}\n")
        return exits.NOTHING_DONE
    except WrongRequest as exc:
        sys.stderr.write(f"{exc}\n")
        return exits.USAGE
    if as_json:
        sys.stdout.write(json.dumps(view.to_json(), indent=2, ensure_ascii=False) + "\n")
    else:
        sys.stdout.write(render(view, settings, last_jobs) + "\n")
    return exits.OK


def believed(settings: Settings, answer: ProducerStatsReply | str) -> Belief:
    """The producer's ``answer``, or its checkpoint when ``answer`` says why there is none."""
    if isinstance(answer, ProducerStatsReply):
        return Belief(answer.observed, dict(answer.refused), answer.estimates)
    path = settings.data_dir / settings.producer.learning.state_file
    saved, checkpoint = _saved(path, settings)
    if checkpoint.estimates is None:
        raise NothingToShow(f"learner state {path} holds no estimates yet: the producer adds them")
    learner = checkpoint.learner
    return Belief(learner.observed, dict(learner.refused), checkpoint.estimates, saved, answer)


def _saved(path: Path, settings: Settings) -> tuple[datetime, Checkpoint]:
    """When the checkpoint at ``path`` was saved, and the checkpoint; :class:`NothingToShow` without one."""
    fix = "the producer rebuilds it from the result files at its next start"
    try:
        checkpoint = read_checkpoint(path)
        return datetime.fromtimestamp(path.stat().st_mtime, settings.zone), checkpoint
    except FileNotFoundError:
        missing = f"no learner state at {path} yet: the producer writes it when it starts"
        raise NothingToShow(missing) from None
    except (CheckpointError, OSError) as exc:  # OSError: the file it just read cannot be looked at
        raise NothingToShow(f"learner state {path} unusable ({exc}); {fix}") from None


def read_view(settings: Settings, last_jobs: int, belief: Belief) -> LearningView:
    generations = list(read_generations(settings.logs_dir / EVOLUTION_LOG))
    window, rest = take_window(generations, last_jobs)
    previous, _ = take_window(rest, last_jobs)
    return LearningView(
        belief=belief,
        arms=[_row(estimate, window, previous) for estimate in belief.estimates.arms],
        window=window,
        previous_window=previous,
        last=generations[-1] if generations else None,
        before_last=generations[-2] if len(generations) > 1 else None,
    )


def _row(estimate: Any, window: Window, previous: Window) -> ArmRow:
    spread = INTERVAL_Z * estimate.sd
    return ArmRow(
        arm=estimate.arm,
        results=round(estimate.results),
        estimate=round(estimate.mean, 2),
        low=round(max(estimate.mean - spread, SCORE_RANGE[0]), 2),
        high=round(min(estimate.mean + spread, SCORE_RANGE[1]), 2),
        chance_best=round(estimate.chance_best, 4),
        share=_rounded(window.share(estimate.arm)),
        previous_share=_rounded(previous.share(estimate.arm)),
        favoured=estimate.favoured,
    )


# -- text ------------------------------------------------------------------------------------------


def render(view: LearningView, settings: Settings, last_jobs: int) -> str:
    refused = sum(view.belief.refused.values())
    lines = [
        _source(view.belief, settings),
        f"learner: {view.belief.learned} scored jobs learned, {refused} results refused; "
        f"{_memory(view, settings.producer.learning)}",
        _window_line(view, last_jobs),
        "",
        _table(
            ["", "arm", "results", "estimate", "90 % interval", "chance best", "share", "trend"],
            [_arm_cells(row) for row in view.arms],
            right={2, 3, 5, 6, 7},
        ),
        "* favoured (the best estimates); " + RESULTS_NOTE,
        "",
        f"effects in score points, against the mean of their kind (one score's noise: sd "
        f"{view.belief.estimates.noise_sd:.1f})",
        _table(
            ["kind", "name", "effect"],
            [
                [kind, name, f"{value:+.1f}"]
                for kind, values in view.belief.estimates.effects.items()
                for name, value in values.items()
            ],
            right={2},
        ),
        "",
        *_changes(view, settings),
    ]
    return "\n".join(lines)


def _source(belief: Belief, settings: Settings) -> str:
    if belief.saved is None:
        return "live from the running producer"
    return f"from the checkpoint saved at {_time(belief.saved, settings)} ({belief.unanswered})"


def _window_line(view: LearningView, last_jobs: int) -> str:
    window, previous = view.window, view.previous_window
    if not window.total:
        return "share: no produced jobs in the evolution log yet"
    text = f"share: of the last {window.total} jobs (generations {window.first}-{window.last})"
    if previous.total:
        text += f"; trend: against the {previous.total} before ({previous.first}-{previous.last})"
    elif window.total < last_jobs:
        text += f", fewer than the {last_jobs} asked for"
    return text


def _arm_cells(row: ArmRow) -> list[str]:
    share = "-" if row.share is None else _percent(row.share)
    trend = "-" if row.trend is None else f"{row.trend * 100:+.1f} pp"
    return [
        "*" if row.favoured else "",
        row.arm,
        str(row.results),
        f"{row.estimate:.1f}",
        f"{row.low:.1f} - {row.high:.1f}",
        _percent(row.chance_best),
        share,
        trend,
    ]


def _changes(view: LearningView, settings: Settings) -> list[str]:
    last = view.last
    if last is None:
        return ["no generation in the evolution log yet"]
    at = _time(last.time, settings)
    scored = "" if last.mean_score is None else f", mean score {last.mean_score:.1f}"
    if view.before_last is not None and view.before_last.mean_score is not None:
        scored += f" (generation {view.before_last.generation}: {view.before_last.mean_score:.1f})"
    changed = _changed(view)
    parts = []
    if changed["favoured_in"]:
        parts.append("now favoured " + ", ".join(changed["favoured_in"]))
    if changed["favoured_out"]:
        parts.append("no longer favoured " + ", ".join(changed["favoured_out"]))
    if changed["memory_switched"]:
        parts.append(f"memory {changed['memory_switched']}")
    if changed["drifting"]:
        parts.append("recent scores drift for " + ", ".join(changed["drifting"]))
    return [
        f"generation {last.generation} at {at}: produced {last.produced}, "
        f"learned {last.learned} new results{scored}",
        "changed: " + ("; ".join(parts) if parts else "nothing (same favoured arms, same memory)"),
    ]


def _memory(view: LearningView, config: LearningSettings) -> str:
    estimates = view.belief.estimates
    if estimates.memory == "short":
        return (
            f"short memory: scores changed for {', '.join(estimates.changed)}; choices use the results "
            "since (the other arms' older results count as a few)"
        )
    return f"long memory: the newest {config.memory_jobs} jobs in full, older ones halving every as many"


def _changed(view: LearningView) -> dict[str, Any]:
    last, before = view.last, view.before_last
    switched = None
    if last is not None and before is not None and last.memory != before.memory:
        switched = f"{before.memory} -> {last.memory}"
    changed = last.changed if last is not None else None
    return {
        "favoured_in": changed.favoured_in if changed else [],
        "favoured_out": changed.favoured_out if changed else [],
        "drifting": changed.drifting if changed else [],
        "memory_switched": switched,
    }


def _time(value: datetime, settings: Settings) -> str:
    return value.astimezone(settings.zone).strftime("%Y-%m-%d %H:%M:%S %z")


def _percent(share: float) -> str:
    """Whole percents, but a share that is not nothing (or not all) never shows as 0 % (or 100 %)."""
    hidden = 0 < share < 1 and round(share * 100) in (0, 100)
    return f"{share:.1%}" if hidden else f"{share:.0%}"


def _window_json(window: Window) -> dict[str, Any]:
    return {"jobs": window.total, "first_generation": window.first, "last_generation": window.last}


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _table(header: list[str], rows: list[list[str]], right: set[int]) -> str:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(row: list[str]) -> str:
        cells = [
            cell.rjust(width) if i in right else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        return "  ".join(cells).rstrip()

    return "\n".join([line(header), line(["-" * width for width in widths]), *map(line, rows)])

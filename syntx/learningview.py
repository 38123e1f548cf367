"""``syntx learning``: what the producer's learner believes and how its choices move, read from its files.

It reads the learner's checkpoint (``data/state/learner.json``, replaced atomically after every tick that
learned something) and ``data/logs/evolution.jsonl``, so it works whether the producer runs or not and
never waits on NATS. Per arm: pulls (the discounted number of results behind it), the estimated mean
score with a 90 % interval, its share of the last N produced jobs and the trend of that share (against
the N jobs before); the category, style, language and context effects; what changed at the last
generation. ``--json`` prints the same as one document; ``--plot FILE`` draws the generations
(:mod:`syntx.learningplot`).
"""

from __future__ import annotations

import json
import random
import sys
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from services.producer.checkpoint import CheckpointError, read_checkpoint
from services.producer.evolution import EVOLUTION_LOG, GenerationLine, read_generations
from services.producer.learning import Learner, arm_name
from shared.config import LearningSettings, Settings
from syntx import exits

INTERVAL_Z = 1.645  # a 90 % interval of a normal posterior
SCORE_RANGE = (0.0, 100.0)  # intervals are cut to the scores that exist
ESTIMATE_SEED = 0
EFFECT_KINDS = ("category", "style", "language", "context")


class ViewError(Exception):
    """Nothing to show, with the one line that says why and what to do."""


class UsageError(Exception):
    """A wrong request (an unknown picture format, an unwritable file, a missing extra)."""


@dataclass(frozen=True)
class ArmRow:
    arm: str
    pulls: float
    estimate: float
    low: float
    high: float
    share: float | None  # of the last window's jobs; None when the log says nothing
    previous_share: float | None
    favoured: bool

    @property
    def trend(self) -> float | None:
        if self.share is None or self.previous_share is None:
            return None
        return self.share - self.previous_share


@dataclass(frozen=True)
class Window:
    """Whole generations, newest first, until they hold at least the wanted number of jobs."""

    jobs: Counter[str]
    first: int | None
    last: int | None

    @property
    def total(self) -> int:
        return self.jobs.total()

    def share(self, arm: str) -> float | None:
        return self.jobs[arm] / self.total if self.total else None


@dataclass(frozen=True)
class LearningView:
    learned: int
    refused: dict[str, int]
    memory: str
    drifting: list[str]
    arms: list[ArmRow]
    effects: dict[str, dict[str, float]]
    window: Window
    previous_window: Window
    last: GenerationLine | None
    before_last: GenerationLine | None

    def to_json(self) -> dict[str, Any]:
        return {
            "generation": self.last.generation if self.last else 0,
            "learned": self.learned,
            "refused": self.refused,
            "memory": self.memory,
            "drifting": self.drifting,
            "window": _window_json(self.window),
            "previous_window": _window_json(self.previous_window),
            "arms": [asdict(row) | {"trend": _rounded(row.trend)} for row in self.arms],
            "effects": self.effects,
            "last_generation": self.last.model_dump(mode="json") if self.last else None,
            "changed": _changed(self),
        }


def learning(settings: Settings, as_json: bool, plot: Path | None, last_jobs: int) -> int:
    """The command: the table, the JSON document or the picture; the exit code."""
    log_path = settings.logs_dir / EVOLUTION_LOG
    if last_jobs < 1:
        sys.stderr.write(f"--last {last_jobs}: the share window needs at least 1 job\n")
        return exits.USAGE
    try:
        if plot is not None:
            from syntx.learningplot import plot_generations  # the optional extra, only when asked

            count = plot_generations(list(read_generations(log_path)), plot, log_path, last_jobs)
            sys.stdout.write(f"wrote {plot} ({count} generations from {log_path})\n")
            return exits.OK
        view = read_view(settings, last_jobs)
    except ViewError as exc:
        sys.stderr.write(f"{exc}\n")
        return exits.NOTHING_DONE
    except UsageError as exc:
        sys.stderr.write(f"{exc}\n")
        return exits.USAGE
    if as_json:
        sys.stdout.write(json.dumps(view.to_json(), indent=2, ensure_ascii=False) + "\n")
    else:
        sys.stdout.write(render(view, settings, last_jobs) + "\n")
    return exits.OK


def read_view(settings: Settings, last_jobs: int) -> LearningView:
    learner = read_learner(settings)
    generations = list(read_generations(settings.logs_dir / EVOLUTION_LOG))
    window, rest = take_window(generations, last_jobs)
    previous, _ = take_window(rest, last_jobs)
    estimates = learner.estimates()
    favoured = set(learner.favoured())
    drifting = learner.model.drifting()
    rows = [
        ArmRow(
            arm=arm_name(arm),
            pulls=round(estimate.weight, 2),
            estimate=round(estimate.mean, 2),
            low=round(max(estimate.mean - INTERVAL_Z * estimate.sd, SCORE_RANGE[0]), 2),
            high=round(min(estimate.mean + INTERVAL_Z * estimate.sd, SCORE_RANGE[1]), 2),
            share=_rounded(window.share(arm_name(arm))),
            previous_share=_rounded(previous.share(arm_name(arm))),
            favoured=arm in favoured,
        )
        for arm, estimate in sorted(estimates.items(), key=lambda item: (-item[1].mean, item[0]))
    ]
    return LearningView(
        learned=learner.observed,
        refused=dict(learner.refused),
        memory="short" if drifting else "long",
        drifting=sorted(arm_name(arm) for arm in drifting),
        arms=rows,
        effects=centred_effects(learner),
        window=window,
        previous_window=previous,
        last=generations[-1] if generations else None,
        before_last=generations[-2] if len(generations) > 1 else None,
    )


def read_learner(settings: Settings) -> Learner:
    path = settings.data_dir / settings.producer.learning.state_file
    arms = [(category, style) for category in settings.topics for style in settings.styles]
    learner = Learner(settings.producer.learning, arms, random.Random(ESTIMATE_SEED))
    fix = "the producer rebuilds it from the result files at its next start"
    try:
        learner.load_state(read_checkpoint(path).learner)
    except FileNotFoundError:
        raise ViewError(f"no learner state at {path} yet: the producer writes it when it starts") from None
    except CheckpointError as exc:
        raise ViewError(f"learner state {path} unusable ({exc}); {fix}") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise ViewError(f"learner state {path} unusable ({exc!r}); {fix}") from None
    return learner


def take_window(generations: list[GenerationLine], jobs: int) -> tuple[Window, list[GenerationLine]]:
    """The newest whole generations holding at least ``jobs`` produced jobs, and the older ones."""
    counted: Counter[str] = Counter()
    position = len(generations)
    while position > 0 and counted.total() < jobs:
        position -= 1
        counted.update(generations[position].jobs)
    taken = generations[position:]
    first = taken[0].generation if taken else None
    last = taken[-1].generation if taken else None
    return Window(counted, first, last), generations[:position]


def centred_effects(learner: Learner) -> dict[str, dict[str, float]]:
    """Each kind's effects against the mean of that kind (the model only knows differences)."""
    effects = learner.context_effects()
    centred: dict[str, dict[str, float]] = {}
    for kind in EFFECT_KINDS:
        values = effects.get(kind, {})
        middle = sum(values.values()) / len(values) if values else 0.0
        centred[kind] = {name: round(value - middle, 2) for name, value in sorted(values.items())}
    return centred


# -- text ------------------------------------------------------------------------------------------


def render(view: LearningView, settings: Settings, last_jobs: int) -> str:
    refused = sum(view.refused.values())
    lines = [
        f"learner: {view.learned} scored jobs learned, {refused} results refused; "
        f"{_memory(view, settings.producer.learning)}",
        _window_line(view, last_jobs),
        "",
        _table(
            ["", "arm", "pulls", "estimate", "90 % interval", "share", "trend"],
            [_arm_cells(row) for row in view.arms],
            right={2, 3, 5, 6},
        ),
        "* favoured (the best estimates); pulls: results behind the arm in the memory in use",
        "",
        "effects in score points, against the mean of their kind",
        _table(
            ["kind", "name", "effect"],
            [
                [kind, name, f"{value:+.1f}"]
                for kind, values in view.effects.items()
                for name, value in values.items()
            ],
            right={2},
        ),
        "",
        *_changes(view, settings),
    ]
    return "\n".join(lines)


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
        f"{row.pulls:.1f}",
        f"{row.estimate:.1f}",
        f"{row.low:.1f} - {row.high:.1f}",
        share,
        trend,
    ]


def _changes(view: LearningView, settings: Settings) -> list[str]:
    last = view.last
    if last is None:
        return ["no generation in the evolution log yet"]
    at = last.time.astimezone(settings.zone).strftime("%Y-%m-%d %H:%M:%S %z")
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
    if view.memory == "short":
        return (
            f"short memory: scores changed for {', '.join(view.drifting)}; choices use the results since "
            f"(the other arms' older ones fade with a half-life of {config.change_half_life_jobs:g} jobs)"
        )
    return (
        f"long memory: the newest {config.window_jobs} jobs in full, older ones halving every "
        f"{config.half_life_jobs:g} jobs"
    )


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

"""``syntx learning --plot FILE``: the producer's generations as a picture (matplotlib, the ``plot`` extra).

Top, what it chose: one bar per generation, its jobs per arm stacked to 100 %. A generation that produced
nothing stays empty — a gap, never filled from a neighbour. The arms that took the most jobs (over the
whole log and over the last window) have their own colour, the rest are grey. Bottom, what it got: the
mean score of the newest ``ROLLING_RESULTS`` results learned, with its 95 % band, at every generation
that learned something, and each generation's own mean as a dot — a line that rises is the learner
getting better. Generations in which the learner used its short memory (some arm's scores changed) are
shaded in both.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from shared.learning.evolution import GenerationLine, take_window
from syntx.viewerrors import NothingToShow, WrongRequest

if TYPE_CHECKING:
    from matplotlib.axes import Axes

FORMATS = (".png", ".svg")
SHOWN_ARMS = 6  # arms with a colour of their own; the others are drawn together
DPI = 120
SIZE_INCHES = (11.0, 7.0)
SHORT_MEMORY_COLOUR = "#f4c06a"
OTHER_COLOUR = "#c8c8c8"
ROLLING_RESULTS = 100  # the rolling mean covers at least this many results (whole generations)
ROLLING_SHOWN_FROM = 20  # ... and is drawn once it has this many: fewer say little
BAND_Z = 1.96  # a 95 % band of the rolling mean
EXTRA_HINT = (
    "drawing needs the plot extra: pip install -e '.[plot]' (matplotlib; or pip install 'syntx[plot]')"
)


@dataclass(frozen=True)
class Rolling:
    generation: int
    mean: float
    half_band: float


def plot_generations(generations: list[GenerationLine], path: Path, source: Path, last_jobs: int) -> int:
    """Draw ``generations`` into ``path`` (.png or .svg); the number of generations drawn."""
    if path.suffix.lower() not in FORMATS:
        raise WrongRequest(f"--plot {path}: the picture is drawn as .png or .svg; name the file so")
    logging.getLogger("matplotlib").setLevel(logging.WARNING)  # not its font cache notes
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise WrongRequest(EXTRA_HINT) from None
    if not any(line.produced and line.jobs for line in generations):
        raise NothingToShow(f"no generation with produced jobs in {source} yet: nothing to draw")
    figure = Figure(figsize=SIZE_INCHES, dpi=DPI, layout="constrained")
    shares_axes, score_axes = figure.subplots(2, 1, sharex=True, height_ratios=(3, 2))
    _draw_shares(shares_axes, generations, last_jobs)
    _draw_scores(score_axes, generations)
    _shade_short_memory((shares_axes, score_axes), generations)
    handles, names = shares_axes.get_legend_handles_labels()
    more, more_names = score_axes.get_legend_handles_labels()
    figure.legend([*handles, *more], [*names, *more_names], loc="outside right upper", fontsize="small")
    try:
        figure.savefig(path, format=path.suffix.lower().lstrip("."))
    except OSError as exc:
        raise WrongRequest(f"cannot write {path}: {exc.strerror or exc}") from None
    return len(generations)


def _draw_shares(axes: Axes, generations: list[GenerationLine], last_jobs: int) -> None:
    from matplotlib.ticker import PercentFormatter

    producing = [line for line in generations if line.produced and line.jobs]
    shown = shown_arms(producing, last_jobs)
    x = [line.generation for line in producing]
    bottom = [0.0] * len(producing)
    colours = [*(f"C{index}" for index in range(len(shown))), OTHER_COLOUR]
    for arm, colour in zip([*shown, None], colours, strict=True):
        heights = [_share(line, arm, shown) for line in producing]
        axes.bar(
            x, heights, width=1.0, bottom=bottom, color=colour, linewidth=0, label=arm or "every other arm"
        )
        bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
    axes.set_ylim(0, 1)
    axes.yaxis.set_major_formatter(PercentFormatter(1.0))
    axes.set_ylabel("share of the generation's jobs")
    axes.set_title("What the producer chose: arm shares per generation (gaps: nothing produced)")


def _share(line: GenerationLine, arm: str | None, shown: list[str]) -> float:
    if arm is not None:
        return line.jobs.get(arm, 0) / line.produced
    return sum(count for name, count in line.jobs.items() if name not in shown) / line.produced


def _draw_scores(axes: Axes, generations: list[GenerationLine]) -> None:
    scored = [(line.generation, line.mean_score) for line in generations if line.mean_score is not None]
    axes.plot(
        [generation for generation, _ in scored],
        [score for _, score in scored],
        linestyle="none",
        marker=".",
        color="#999999",
        label="mean score of a generation's results",
    )
    points = {point.generation: point for point in rolling_means(generations)}
    x = [line.generation for line in generations]  # a generation without results breaks the line
    means = [points[g].mean if g in points else math.nan for g in x]
    bands = [points[g].half_band if g in points else math.nan for g in x]
    axes.fill_between(
        x,
        [m - b for m, b in zip(means, bands, strict=True)],
        [m + b for m, b in zip(means, bands, strict=True)],
        color="C0",
        alpha=0.25,
        linewidth=0,
        label="95 % band",
    )
    axes.plot(x, means, color="C0", linewidth=2, label=f"mean of the newest {ROLLING_RESULTS} results")
    axes.set_ylabel("score")
    axes.set_xlabel("generation")
    axes.set_title("What it got: scores of the results learned (a rising line: it got better)")
    axes.grid(alpha=0.3)


def rolling_means(generations: list[GenerationLine]) -> list[Rolling]:
    """At every generation that learned something: the mean of the newest whole generations holding at
    least ``ROLLING_RESULTS`` results, with the half width of its 95 % band (the spread of the scores
    within and between generations over the square root of the count)."""
    points: list[Rolling] = []
    for end, line in enumerate(generations):
        if not line.learned or line.mean_score is None:
            continue
        count = total = squares = 0.0
        for past in reversed(generations[: end + 1]):
            if past.learned and past.mean_score is not None:
                spread = past.score_sd or 0.0
                count += past.learned
                total += past.learned * past.mean_score
                squares += (past.learned - 1) * spread * spread + past.learned * past.mean_score**2
            if count >= ROLLING_RESULTS:
                break
        if count >= ROLLING_SHOWN_FROM:
            mean = total / count
            variance = max(squares - count * mean * mean, 0.0) / max(count - 1, 1.0)
            points.append(Rolling(line.generation, mean, BAND_Z * math.sqrt(variance / count)))
    return points


def _shade_short_memory(axes_pair: tuple[Axes, Axes], generations: list[GenerationLine]) -> None:
    spans = short_memory_spans(generations)
    for axes in axes_pair:
        for number, (start, end) in enumerate(spans):
            label = "short memory (scores changed)" if number == 0 and axes is axes_pair[0] else None
            axes.axvspan(
                start - 0.5, end + 0.5, color=SHORT_MEMORY_COLOUR, alpha=0.35, linewidth=0, label=label
            )


def shown_arms(generations: list[GenerationLine], last_jobs: int) -> list[str]:
    """The arms that took the most jobs over the whole log, and over the last window, in that order."""
    overall: Counter[str] = Counter()
    for line in generations:
        overall.update(line.jobs)
    window, _ = take_window(generations, last_jobs)
    ranked = [arm for arm, _ in window.jobs.most_common()] + [arm for arm, _ in overall.most_common()]
    half = SHOWN_ARMS // 2
    chosen = [arm for arm, _ in overall.most_common(half)]
    for arm in ranked:
        if len(chosen) >= SHOWN_ARMS:
            break
        if arm not in chosen:
            chosen.append(arm)
    return sorted(chosen, key=lambda arm: -overall[arm])


def short_memory_spans(generations: list[GenerationLine]) -> list[tuple[int, int]]:
    """Runs of consecutive generations that used the short memory, as (first, last)."""
    spans: list[tuple[int, int]] = []
    for line in generations:
        if line.memory != "short":
            continue
        if spans and spans[-1][1] == line.generation - 1:
            spans[-1] = (spans[-1][0], line.generation)
        else:
            spans.append((line.generation, line.generation))
    return spans

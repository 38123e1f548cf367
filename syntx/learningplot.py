"""``syntx learning --plot FILE``: the producer's generations as a picture (matplotlib, the ``plot`` extra).

Top: the share of each arm among the jobs of every generation, stacked to 100 %; the arms that took the
most jobs (over the whole log and over the last window) have their own colour, the rest are grey.
Bottom: the mean score of the results learned at each generation. Generations in which the learner
used its short memory (some arm's scores changed; choices use the results since) are shaded in both.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

from services.producer.evolution import GenerationLine
from syntx.learningview import UsageError, ViewError, take_window

FORMATS = (".png", ".svg")
SHOWN_ARMS = 6  # arms with a colour of their own; the others are drawn together
DPI = 120
SIZE_INCHES = (11.0, 7.0)
SHORT_MEMORY_COLOUR = "#f4c06a"
OTHER_COLOUR = "#c8c8c8"
EXTRA_HINT = "drawing needs the plot extra: pip install 'syntx[plot]' (matplotlib)"


def plot_generations(generations: list[GenerationLine], path: Path, source: Path, last_jobs: int) -> int:
    """Draw ``generations`` into ``path`` (.png or .svg); the number of generations drawn."""
    if path.suffix.lower() not in FORMATS:
        raise UsageError(f"--plot {path}: the picture is drawn as .png or .svg; name the file so")
    logging.getLogger("matplotlib").setLevel(logging.WARNING)  # not its font cache notes
    try:
        from matplotlib.figure import Figure
        from matplotlib.ticker import PercentFormatter
    except ImportError:
        raise UsageError(EXTRA_HINT) from None
    producing = [line for line in generations if line.produced and line.jobs]
    if not producing:
        raise ViewError(f"no generation with produced jobs in {source} yet: nothing to draw")
    shown = shown_arms(producing, last_jobs)
    figure = Figure(figsize=SIZE_INCHES, dpi=DPI, layout="constrained")
    shares_axes, score_axes = figure.subplots(2, 1, sharex=True, height_ratios=(3, 2))
    x = [line.generation for line in producing]
    layers = [[line.jobs.get(arm, 0) / line.produced for line in producing] for arm in shown]
    rest = [1.0 - sum(layer[i] for layer in layers) for i in range(len(producing))]
    colours = [f"C{index}" for index in range(len(shown))] + [OTHER_COLOUR]
    labels = [*shown, "every other arm"]
    shares_axes.stackplot(x, *layers, rest, labels=labels, colors=colours, step="mid", alpha=0.9)
    shares_axes.set_ylim(0, 1)
    shares_axes.yaxis.set_major_formatter(PercentFormatter(1.0))
    shares_axes.set_ylabel("share of the generation's jobs")
    shares_axes.set_title("What the producer chose: arm shares per generation")
    scored = [line for line in generations if line.mean_score is not None]
    score_axes.plot(
        [line.generation for line in scored],
        [line.mean_score for line in scored],
        marker=".",
        color="C0",
        label="mean score of the results learned",
    )
    score_axes.set_ylabel("mean score")
    score_axes.set_xlabel("generation")
    score_axes.set_title("What it got: mean score per generation")
    score_axes.grid(alpha=0.3)
    for start, end in short_memory_spans(generations):
        for axes in (shares_axes, score_axes):
            axes.axvspan(start - 0.5, end + 0.5, color=SHORT_MEMORY_COLOUR, alpha=0.35, linewidth=0)
    handles, names = shares_axes.get_legend_handles_labels()
    if any(line.memory == "short" for line in generations):
        from matplotlib.patches import Patch

        handles.append(Patch(color=SHORT_MEMORY_COLOUR, alpha=0.35))
        names.append("short memory (scores changed)")
    figure.legend(handles, names, loc="outside right upper", fontsize="small")
    try:
        figure.savefig(path, format=path.suffix.lower().lstrip("."))
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None
    return len(generations)


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

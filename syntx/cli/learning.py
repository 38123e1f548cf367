"""``syntx learning``: what the producer learned, read from its files (:mod:`syntx.learningview`)."""

from __future__ import annotations

from pathlib import Path

from syntx.cli.parser import Invocation, Subparsers, runs
from syntx.learningview import learning

LEARNING_WINDOW_JOBS = 200


def register(commands: Subparsers) -> None:
    parser = commands.add_parser(
        "learning",
        help="what the producer learned: per arm estimate, results, chance, share, trend (reads its files)",
    )
    shown = parser.add_mutually_exclusive_group()
    shown.add_argument("--json", action="store_true")
    shown.add_argument("--plot", type=Path, metavar="FILE", help="draw arm shares and mean score (.png/.svg)")
    parser.add_argument(
        "--last", type=int, default=LEARNING_WINDOW_JOBS, metavar="N", help="shares of the last N jobs"
    )
    runs(parser, run)


def run(call: Invocation) -> int:
    return learning(call.settings, call.args.json, call.args.plot, call.args.last)

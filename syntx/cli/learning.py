"""``syntx learning``: what the producer learned — live from the running producer when it answers, else
from its checkpoint — and how its choices moved (:mod:`syntx.learningview`)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from shared.config import Settings
from shared.messaging import ProducerStatsReply, subjects
from syntx.cli.asking import Unanswered, reply_of
from syntx.cli.parser import Invocation, Subparsers, runs
from syntx.learningview import learning

LEARNING_WINDOW_JOBS = 200


def register(commands: Subparsers) -> None:
    parser = commands.add_parser(
        "learning",
        help="what the producer learned: per arm estimate, results, chance, share, trend (asks the "
        "running producer, else reads its checkpoint)",
    )
    shown = parser.add_mutually_exclusive_group()
    shown.add_argument("--json", action="store_true")
    shown.add_argument("--plot", type=Path, metavar="FILE", help="draw arm shares and mean score (.png/.svg)")
    parser.add_argument(
        "--last", type=int, default=LEARNING_WINDOW_JOBS, metavar="N", help="shares of the last N jobs"
    )
    runs(parser, run)


def run(call: Invocation) -> int:
    args, settings = call.args, call.settings
    return learning(settings, args.json, args.plot, args.last, lambda: asyncio.run(ask_producer(settings)))


async def ask_producer(settings: Settings) -> ProducerStatsReply | str:
    """What the running producer believes now, or why the view falls back to its checkpoint (a reply
    that cannot be used is also said on stderr)."""
    try:
        return await reply_of(settings, subjects.PRODUCER_STATS, "producer", ProducerStatsReply)
    except Unanswered as exc:
        if not exc.answered:
            return "the producer did not answer"
        sys.stderr.write(f"syntx learning: {exc}\n")
        return "the producer's answer could not be used"

"""``syntx status``: queue counts, state, health and last runs, as the monitor answers them; ``--check``
as a monitoring plugin, ``--watch`` again and again."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from datetime import datetime

from shared.config import Settings
from shared.messaging import StatusReply, subjects
from syntx import exits
from syntx.cli.asking import ask
from syntx.cli.output import out, out_json, short_time, table, usage
from syntx.cli.parser import Invocation, Subparsers, runs

WATCH_EVERY_S = 2.0
CLEAR_SCREEN = "\x1b[H\x1b[2J"


def register(commands: Subparsers) -> None:
    status_parser = commands.add_parser(
        "status", help="queue counts, state, health and last runs (asks the monitor)"
    )
    status_parser.add_argument("--json", action="store_true")
    status_parser.add_argument(
        "--exact", action="store_true", help="have the monitor recount the folders first"
    )
    status_parser.add_argument(
        "--check",
        action="store_true",
        help="one line; exit 0 OK, 1 WARNING, 2 CRITICAL, 3 no answer (the Nagios plugin convention)",
    )
    status_parser.add_argument(
        "--watch",
        nargs="?",
        type=float,
        const=WATCH_EVERY_S,
        metavar="SECONDS",
        help=f"refresh every SECONDS (default {WATCH_EVERY_S:g}) until Ctrl-C",
    )
    runs(status_parser, run)


def run(call: Invocation) -> int:
    args = call.args
    if args.watch is not None:
        return watch_status(call.settings, args.watch, args.exact)
    return asyncio.run(status(call.settings, args.json, args.exact, args.check))


async def status(settings: Settings, as_json: bool, exact: bool = False, check: bool = False) -> int:
    """Exit 0 once the monitor answered; with ``check``, one line and the health as the exit status by
    the Nagios plugin convention (:data:`exits.CHECK`): 0 OK, 1 WARNING, 2 CRITICAL, 3 no answer."""
    body = json.dumps({"reconcile": exact}).encode()
    reply = await ask(settings, "status", subjects.STATUS, "monitor", StatusReply, body)
    if isinstance(reply, int):
        return exits.CHECK_UNKNOWN if check else reply
    if check:
        return _check_line(reply)
    if as_json:
        out_json(reply)
        return 0
    out(
        f"queue state {reply.queue_state}, health {reply.health}, "
        f"oldest waiting job {reply.oldest_incoming_age_s:.0f}s"
    )
    for reason in reply.health_reasons:
        out(f"  {reason.severity:<8} {reason.text}")
    out()
    out(table(["folder", "files"], [[folder, str(count)] for folder, count in reply.counts.items()]))
    out()
    services = [[name, str(count)] for name, count in sorted(reply.services.items())]
    out(table(["service", "live"], services or [["(none seen yet)", "0"]]))
    scored = [
        [w, str(c.get("passed", 0)), str(c.get("rejected", 0))] for w, c in sorted(reply.scored.items())
    ]
    if scored:
        out()
        out(table(["wrapper", "passed", "rejected"], scored))
    runs_shown = [
        [name, short_time(last.at, settings), last.summary] for name, last in sorted(reply.last_runs.items())
    ]
    if runs_shown:
        out()
        out(table(["last run", "at", "what"], runs_shown))
    return 0


def _check_line(reply: StatusReply) -> int:
    """``syntx OK - …`` / ``syntx CRITICAL - reason: text; …`` with the queue's counts as performance data."""
    health = reply.health
    reasons = "; ".join(f"{r.code}: {r.text}" for r in reply.health_reasons)
    said = reasons or f"queue {reply.queue_state}, oldest waiting job {reply.oldest_incoming_age_s:.0f}s"
    counts = " ".join(f"{folder}={count}" for folder, count in reply.counts.items())
    out(f"syntx {health} - {said} | {counts}")
    return exits.CHECK.get(health, exits.CHECK_UNKNOWN)


def watch_status(settings: Settings, every_s: float, exact: bool) -> int:
    """``syntx status`` again every ``every_s`` until Ctrl-C (exit 0); an unreachable system is shown as
    such and asked again."""
    if every_s <= 0:
        return usage(f"syntx status: --watch {every_s:g} is too short; give seconds above 0")
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how watching ends
        asyncio.run(_watch(settings, every_s, exact))
    return exits.OK


async def _watch(settings: Settings, every_s: float, exact: bool) -> None:
    while True:
        if sys.stdout.isatty():
            sys.stdout.write(CLEAR_SCREEN)
        out(f"every {every_s:g}s, Ctrl-C ends — {datetime.now(settings.zone):%Y-%m-%d %H:%M:%S %z}")
        await status(settings, as_json=False, exact=exact)
        sys.stdout.flush()
        await asyncio.sleep(every_s)  # a refresh period, not a wait for an event

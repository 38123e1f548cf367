"""``syntx results``: results, newest first, from processed/, error/ and the archive
(:mod:`syntx.resultview`)."""

from __future__ import annotations

import json
import sys

from shared.config import Settings
from shared.queue import FileQueue
from syntx import exits, resultview
from syntx.cli.output import out, table, usage
from syntx.cli.parser import Invocation, Subparsers, runs
from syntx.since import BadSince, since_now
from syntx.suggest import unknown

RESULT_STATUSES = ("passed", "rejected", "failed", "malformed")
RESULTS_LIMIT = 20


def register(commands: Subparsers) -> None:
    parser = commands.add_parser("results", help="list results, newest first (processed/, error/, archive/)")
    parser.add_argument("--status", action="append", choices=RESULT_STATUSES, default=[], help="repeatable")
    parser.add_argument("--wrapper", help="only this consumer's results")
    parser.add_argument("--since", help="only results finished from then on: 10m, 2h, 1d or an ISO time")
    parser.add_argument("--limit", type=int, default=RESULTS_LIMIT, help=f"at most N ({RESULTS_LIMIT})")
    parser.add_argument("--json", action="store_true")
    runs(parser, run)


def run(call: Invocation) -> int:
    args, settings = call.args, call.settings
    if args.limit < 1:
        return usage(f"syntx results: --limit {args.limit} is too small; give 1 or more")
    if args.wrapper is not None and args.wrapper not in settings.consumers:
        return usage(f"syntx results: {unknown('consumer', args.wrapper, sorted(settings.consumers))}")
    try:
        since = since_now(args.since, settings.zone)
    except BadSince as exc:
        return usage(f"syntx results: {exc}")
    wanted = resultview.Wanted(frozenset(args.status), args.wrapper, since)
    return _list(settings, wanted, args.limit, args.json)


def _list(settings: Settings, wanted: resultview.Wanted, limit: int, as_json: bool) -> int:
    found, unreadable = resultview.find(
        FileQueue(settings.queue_dir), wanted, limit, settings.queue.max_result_bytes
    )
    if unreadable:
        sys.stderr.write(f"syntx results: {unreadable} file(s) that are not results skipped\n")
    if as_json:
        out(json.dumps([resultview.summary(item) for item in found], indent=2, ensure_ascii=False))
    elif found:
        header = ["job", "status", "score", "wrapper", "finished", "reason"]
        out(table(header, [resultview.row(item, settings.zone) for item in found]))
    else:
        out("no results match")
    return exits.OK

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
    args = call.args
    return results(call.settings, args.status, args.wrapper, args.since, args.limit, args.json)


def results(
    settings: Settings,
    statuses: list[str],
    wrapper: str | None,
    since_text: str | None,
    limit: int,
    as_json: bool,
) -> int:
    if limit < 1:
        return usage(f"syntx results: --limit {limit} is too small; give 1 or more")
    if wrapper is not None and wrapper not in settings.consumers:
        return usage(f"syntx results: {unknown('consumer', wrapper, sorted(settings.consumers))}")
    try:
        since = since_now(since_text, settings.zone)
    except BadSince as exc:
        return usage(f"syntx results: {exc}")
    queue = FileQueue(settings.queue_dir)
    wanted = resultview.Wanted(frozenset(statuses), wrapper, since)
    found, unreadable = resultview.find(queue, wanted, limit, settings.queue.max_result_bytes)
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

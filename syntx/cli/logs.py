"""``syntx logs [SERVICE …]``: the services' log files merged by time (:mod:`syntx.logview`)."""

from __future__ import annotations

import contextlib

from shared.config import Settings
from shared.service import service_names
from syntx import exits, logview
from syntx.cli.output import fail, usage
from syntx.cli.parser import Invocation, Subparsers, runs
from syntx.since import BadSince, since_now
from syntx.suggest import unknown


def register(commands: Subparsers) -> None:
    parser = commands.add_parser("logs", help="the services' log files merged by time, prefixed by service")
    parser.add_argument(
        "services", nargs="*", metavar="SERVICE", help="e.g. producer (with its other instances); none: all"
    )
    parser.add_argument("-f", "--follow", action="store_true", help="keep printing new lines until Ctrl-C")
    parser.add_argument("--since", help="only lines from then on: 10m, 2h, 1d or an ISO 8601 time")
    parser.add_argument(
        "-n",
        "--tail",
        type=int,
        metavar="N",
        help=f"only the last N lines (merged); -f alone starts with the last {logview.FOLLOW_TAIL}",
    )
    runs(parser, run)


def run(call: Invocation) -> int:
    return logs(call.settings, call.args.services, call.args.follow, call.args.since, call.args.tail)


def logs(
    settings: Settings, wanted: list[str], follow: bool, since_text: str | None, count: int | None = None
) -> int:
    """All lines, or the last ``count``; ``-f`` alone starts with the last :data:`logview.FOLLOW_TAIL`."""
    try:
        since = since_now(since_text, settings.zone)
    except BadSince as exc:
        return usage(f"syntx logs: {exc}")
    if count is not None and count < 0:
        return usage(f"syntx logs: --tail {count} is negative; give 0 or more lines")
    logs_dir = settings.logs_dir
    listed = logview.known_services(logs_dir, service_names(settings.consumers))
    known = logview.with_instances(logs_dir, listed, listed)
    if strangers := [name for name in wanted if name not in known]:
        return usage(f"syntx logs: {unknown('service', strangers[0], known)}")
    chosen = logview.with_instances(logs_dir, wanted, listed) if wanted else known
    services = [name for name in chosen if logview.log_files(logs_dir, name)]
    if not services:
        return fail(f"syntx logs: no log files in {logs_dir} yet; start the system with `syntx up`")
    if not follow:
        logview.show(logs_dir, services, since, count)
        return exits.OK
    if count is None and since is None:
        count = logview.FOLLOW_TAIL
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how follow mode ends
        logview.follow(logs_dir, services, since, count)
    return exits.OK

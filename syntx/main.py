"""``syntx``: the operator's command. ``syntx --help`` lists the commands."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import NoReturn

from shared.config import CONFIG_ENV, DEMO_CONFIG, ConfigError, Settings, config_paths, load_settings
from shared.service import CONFIG_EXIT_CODE, SERVICES, service_names, use_zone_for_command
from syntx import commands, exits, health, learningview, look

LOCAL_LLM_ENV = "SYNTX_LLM__LOCAL__ENABLED"
LEARNING_WINDOW_JOBS = 200

DISTRIBUTION = "syntx"
RESULT_STATUSES = ("passed", "rejected", "failed", "malformed")
WATCH_EVERY_S = 2.0
RESULTS_LIMIT = 20
RUN_LOG_SUFFIX = ".run"  # `syntx run X` logs to logs/X.run.log, never into the running service's file
LOG_SUFFIX_ENV = "SYNTX_LOGGING__FILE_SUFFIX"


class OneLineParser(argparse.ArgumentParser):
    """A wrong command line is one line naming the problem and where to read more (exit 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(exits.USAGE, f"{self.prog}: {message}; see `{self.prog} --help`\n")


def _version() -> str:
    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="syntx", description="Operate the SYNTX loop.")
    parser.add_argument("--version", action="version", version=f"syntx {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="run the whole system on this machine (embedded NATS unless configured)")
    up.add_argument(
        "--demo", action="store_true", help="layer config/demo.yaml: the loop turns within a minute"
    )
    up.add_argument(
        "--llm",
        choices=["local"],
        help="local: start a llama.cpp server (llm.local) and point every consumer at it",
    )
    up.add_argument(
        "--cluster",
        type=int,
        default=1,
        choices=range(1, 6),
        metavar="N",
        help="embedded NATS as an N-node JetStream cluster (1-5) with two scheduler replicas",
    )
    run = sub.add_parser("run", help="run one service in the foreground")
    run.add_argument("service", choices=SERVICES)
    run.add_argument("--wrapper", help="consumer name (for the consumer)")
    trigger = sub.add_parser("trigger", help="publish a tick now, e.g. `syntx trigger producer`")
    trigger.add_argument(
        "schedule", help="producer, consumer.sigma, consumer.syntex_system, monitor, cleanup"
    )
    trigger.add_argument("--batch", type=int, help="override the batch size for this run")
    trigger.add_argument("--force", action="store_true", help="publish for a schedule configured elsewhere")
    status = sub.add_parser("status", help="queue counts, state, health and last runs (asks the monitor)")
    status.add_argument("--json", action="store_true")
    status.add_argument("--exact", action="store_true", help="have the monitor recount the folders first")
    status.add_argument(
        "--watch",
        nargs="?",
        type=float,
        const=WATCH_EVERY_S,
        metavar="SECONDS",
        help=f"refresh every SECONDS (default {WATCH_EVERY_S:g}) until Ctrl-C",
    )
    schedules = sub.add_parser(
        "schedules", help="every schedule with its next fire times (asks the scheduler)"
    )
    schedules.add_argument("--json", action="store_true")
    schedules.add_argument(
        "action", nargs="?", choices=("pause", "resume"), help="pause or resume a schedule (every replica)"
    )
    schedules.add_argument("name", nargs="?", help="the schedule to pause or resume")
    retry = sub.add_parser("retry", help="put jobs from error/ back into incoming/")
    retry.add_argument("job_ids", nargs="*", help="job ids; none: every failed job")
    retry.add_argument("--rejected", action="store_true", help="also retry jobs rejected for a low score")
    score = sub.add_parser("score", help="parse and score a response file and print the breakdown")
    score.add_argument("file", type=Path, help="a response text file or a result JSON")
    score.add_argument("--format", help="format name (default: from the result, else detected)")
    score.add_argument("--prompt", default="", help="the job prompt, for the relevance check")
    score.add_argument("--scorer", default="default", help="default or v1")
    score.add_argument("--json", action="store_true")
    health_check = sub.add_parser(
        "health", help="exit 0 if the service answers with a heartbeat (a container healthcheck)"
    )
    health_check.add_argument(
        "--service", required=True, help="scheduler, producer, monitor, cleanup or consumer.<name>"
    )
    health_check.add_argument("--wait", type=float, default=5.0, help="seconds to wait for the heartbeat")
    health_check.add_argument("--any-host", action="store_true", help="count an instance on any host")
    learning = sub.add_parser(
        "learning",
        help="what the producer learned: per arm estimate, results, chance, share, trend (reads its files)",
    )
    shown = learning.add_mutually_exclusive_group()
    shown.add_argument("--json", action="store_true")
    shown.add_argument("--plot", type=Path, metavar="FILE", help="draw arm shares and mean score (.png/.svg)")
    learning.add_argument(
        "--last", type=int, default=LEARNING_WINDOW_JOBS, metavar="N", help="shares of the last N jobs"
    )
    _add_views(sub)
    return parser


def _add_views(sub: argparse._SubParsersAction[OneLineParser]) -> None:
    logs = sub.add_parser("logs", help="the services' log files merged by time, prefixed by service")
    logs.add_argument("services", nargs="*", metavar="SERVICE", help="e.g. producer; none: all")
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing new lines until Ctrl-C")
    logs.add_argument("--since", help="only lines from then on: 10m, 2h, 1d or an ISO 8601 time")
    results = sub.add_parser("results", help="list results, newest first (processed/, error/, archive/)")
    results.add_argument("--status", action="append", choices=RESULT_STATUSES, default=[], help="repeatable")
    results.add_argument("--wrapper", help="only this consumer's results")
    results.add_argument("--since", help="only results finished from then on: 10m, 2h, 1d or an ISO time")
    results.add_argument("--limit", type=int, default=RESULTS_LIMIT, help=f"at most N ({RESULTS_LIMIT})")
    results.add_argument("--json", action="store_true")
    show = sub.add_parser("show", help="one job: prompt, answer, score breakdown with reasons, attempts")
    show.add_argument("job_id")
    show.add_argument("--json", action="store_true", help="the whole result record")


def _settings_or_exit(demo: bool = False) -> tuple[Settings, list[str]]:
    paths = config_paths()
    if demo and DEMO_CONFIG not in paths:
        paths = [*paths, DEMO_CONFIG]
    try:
        return load_settings(paths), [str(path) for path in paths]
    except ConfigError as exc:
        sys.stderr.write(f"{exc}\n")
        raise SystemExit(CONFIG_EXIT_CODE) from None


def _exec_service(settings: Settings, service: str, wrapper: str | None) -> int:
    argv = [sys.executable, "-m", f"services.{service}"]
    if service == "consumer":
        wrapper = wrapper or os.environ.get("SYNTX_CONSUMER", "")
        if wrapper not in settings.consumers:
            known = ", ".join(sorted(settings.consumers))
            sys.stderr.write(f"syntx run consumer: name the consumer with --wrapper NAME, one of: {known}\n")
            return exits.USAGE
        argv += ["--wrapper", wrapper]
    os.environ[LOG_SUFFIX_ENV] = RUN_LOG_SUFFIX
    os.execv(sys.executable, argv)


async def _schedules(settings: Settings, args: argparse.Namespace) -> int:
    if args.action is None:
        return await commands.schedules(settings, args.json)
    if args.name is None:
        sys.stderr.write(
            f"syntx schedules {args.action}: name a schedule, e.g. `syntx schedules {args.action} producer`\n"
        )
        return exits.USAGE
    return await commands.pause_schedule(settings, args.name, args.action == "pause")


def _health(settings: Settings, service: str, wait_s: float, any_host: bool) -> int:
    known = service_names(settings.consumers)
    if service not in known:
        sys.stderr.write(f"syntx health: unknown service {service!r}; choose one of {', '.join(known)}\n")
        return exits.USAGE
    wanted = health.heartbeat_filter(service, any_host)
    return asyncio.run(health.health(settings, wanted, wait_s))


def _status(settings: Settings, args: argparse.Namespace) -> int:
    if args.watch is not None:
        return look.watch_status(settings, args.watch, args.exact)
    return asyncio.run(commands.status(settings, args.json, args.exact))


def main(argv: list[str] | None = None) -> None:
    try:
        code = _run(build_parser().parse_args(argv))
    except KeyboardInterrupt:  # at any point, settings loading included
        sys.stderr.write("syntx: interrupted; nothing more was done\n")
        code = exits.INTERRUPTED
    raise SystemExit(code)


def _run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s syntx: %(message)s", datefmt="%H:%M:%S")
    if getattr(args, "llm", None) == "local":
        os.environ[LOCAL_LLM_ENV] = "true"  # as if configured: llm.local.enabled
    settings, paths = _settings_or_exit(demo=getattr(args, "demo", False))
    use_zone_for_command(settings.zone)
    if args.command == "run":
        return _exec_service(settings, args.service, args.wrapper)
    handlers: dict[str, Callable[[], int]] = {
        "up": lambda: asyncio.run(commands.up(settings, paths, args.cluster)),
        "trigger": lambda: asyncio.run(commands.trigger(settings, args.schedule, args.batch, args.force)),
        "status": lambda: _status(settings, args),
        "schedules": lambda: asyncio.run(_schedules(settings, args)),
        "retry": lambda: commands.retry(settings, args.job_ids, args.rejected),
        "score": lambda: commands.score(
            settings, args.file, args.format, args.prompt, args.scorer, args.json
        ),
        "logs": lambda: look.logs(settings, args.services, args.follow, args.since),
        "results": lambda: look.results(
            settings, args.status, args.wrapper, args.since, args.limit, args.json
        ),
        "show": lambda: look.show(settings, args.job_id, args.json),
        "health": lambda: _health(settings, args.service, args.wait, args.any_host),
        "learning": lambda: learningview.learning(settings, args.json, args.plot, args.last),
    }
    os.environ.setdefault(CONFIG_ENV, ":".join(paths))
    try:
        return handlers[args.command]()
    except ConfigError as exc:  # found only on contact, e.g. a NATS server without JetStream
        sys.stderr.write(f"{exc}\n")
        return CONFIG_EXIT_CODE

"""``syntx``: the operator's command. ``syntx --help`` lists the commands."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path

from shared.config import CONFIG_ENV, DEMO_CONFIG, ConfigError, Settings, config_paths, load_settings
from shared.service import CONFIG_EXIT_CODE, SERVICES
from syntx import commands


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="syntx", description="Operate the SYNTX loop.")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="run the whole system on this machine (embedded NATS unless configured)")
    up.add_argument(
        "--demo", action="store_true", help="layer config/demo.yaml: the loop turns within a minute"
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
    status = sub.add_parser("status", help="queue counts, state, health and last runs (asks the monitor)")
    status.add_argument("--json", action="store_true")
    status.add_argument("--exact", action="store_true", help="have the monitor recount the folders first")
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
    return parser


def _settings_or_exit(demo: bool = False) -> tuple[Settings, list[str]]:
    paths = config_paths()
    if demo and DEMO_CONFIG not in paths:
        paths = [*paths, DEMO_CONFIG]
    try:
        return load_settings(paths), [str(path) for path in paths]
    except ConfigError as exc:
        sys.stderr.write(f"{exc}\n")
        raise SystemExit(CONFIG_EXIT_CODE) from None


def _exec_service(service: str, wrapper: str | None) -> int:
    argv = [sys.executable, "-m", f"services.{service}"]
    if service == "consumer":
        argv += ["--wrapper", wrapper or os.environ.get("SYNTX_CONSUMER", "")]
    os.execv(sys.executable, argv)


async def _schedules(settings: Settings, args: argparse.Namespace) -> int:
    if args.action is None:
        return await commands.schedules(settings, args.json)
    if args.name is None:
        sys.stderr.write(
            f"syntx schedules {args.action}: name a schedule, e.g. `syntx schedules {args.action} producer`\n"
        )
        return commands.USAGE_EXIT
    return await commands.pause_schedule(settings, args.name, args.action == "pause")


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s syntx: %(message)s", datefmt="%H:%M:%S")
    if args.command == "run":
        raise SystemExit(_exec_service(args.service, args.wrapper))
    settings, paths = _settings_or_exit(demo=getattr(args, "demo", False))
    handlers: dict[str, Callable[[], int]] = {
        "up": lambda: asyncio.run(commands.up(settings, paths, args.cluster)),
        "trigger": lambda: asyncio.run(commands.trigger(settings, args.schedule, args.batch)),
        "status": lambda: asyncio.run(commands.status(settings, args.json, args.exact)),
        "schedules": lambda: asyncio.run(_schedules(settings, args)),
        "retry": lambda: commands.retry(settings, args.job_ids, args.rejected),
        "score": lambda: commands.score(
            settings, args.file, args.format, args.prompt, args.scorer, args.json
        ),
    }
    os.environ.setdefault(CONFIG_ENV, ":".join(paths))
    try:
        code = handlers[args.command]()
    except ConfigError as exc:  # found only on contact, e.g. a NATS server without JetStream
        sys.stderr.write(f"{exc}\n")
        code = CONFIG_EXIT_CODE
    raise SystemExit(code)

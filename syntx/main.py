"""``syntx``: the operator's command. ``syntx --help`` lists the commands (:mod:`syntx.cli`)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from importlib.metadata import PackageNotFoundError, version

from shared.config import CONFIG_ENV, DEMO_CONFIG, ConfigError, Settings, config_paths, load_settings
from shared.service import CONFIG_EXIT_CODE, use_zone_for_command
from syntx import exits
from syntx.cli import commands
from syntx.cli.parser import Invocation, OneLineParser, Run

LOCAL_LLM_ENV = "SYNTX_LLM__LOCAL__ENABLED"
DISTRIBUTION = "syntx"


def _version() -> str:
    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:
        return "unknown (not installed)"


def build_parser() -> OneLineParser:
    parser = OneLineParser(prog="syntx", description="Operate the SYNTX loop.")
    parser.add_argument("--version", action="version", version=f"syntx {_version()}")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for command in commands():
        command.register(subparsers)
    return parser


def _settings_or_exit(command: str, demo: bool = False) -> tuple[Settings, list[str]]:
    paths = config_paths()
    if demo and DEMO_CONFIG not in paths:
        paths = [*paths, DEMO_CONFIG]
    try:
        return load_settings(paths), [str(path) for path in paths]
    except ConfigError as exc:
        _said_by(command, str(exc))
        raise SystemExit(CONFIG_EXIT_CODE) from None


def _said_by(command: str, problems: str) -> None:
    """Each line of a configuration error (one per problem) with the command's prefix."""
    sys.stderr.write("".join(f"syntx {command}: {line}\n" for line in problems.splitlines()))


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_command_line(sys.argv[1:] if argv is None else argv)
    try:
        code = _run(args)
        sys.stdout.flush()  # here, not at exit: a reader that went away is one more closed pipe
    except KeyboardInterrupt:  # at any point, settings loading included
        sys.stderr.write(f"syntx {args.command}: interrupted; nothing more was done\n")
        code = exits.INTERRUPTED
    except BrokenPipeError:  # `syntx logs | head`: the reader has all it wanted
        code = _quiet_closed_pipe()
    raise SystemExit(code)


def _quiet_closed_pipe() -> int:
    """Whatever is still buffered for the closed pipe goes nowhere, so the exit says nothing more (no
    second BrokenPipeError while Python flushes stdout at exit); exit 0, like ``cat`` or ``grep`` would
    after SIGPIPE were it not ignored."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return exits.OK


def _run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s syntx: %(message)s", datefmt="%H:%M:%S")
    if getattr(args, "llm", None) == "local":
        os.environ[LOCAL_LLM_ENV] = "true"  # as if configured: llm.local.enabled
    settings, paths = _settings_or_exit(args.command, demo=getattr(args, "demo", False))
    use_zone_for_command(settings.zone, settings.logging)
    os.environ.setdefault(CONFIG_ENV, ":".join(paths))
    run: Run = args.run
    try:
        return run(Invocation(args, settings, paths))
    except ConfigError as exc:  # found only on contact, e.g. a NATS server without JetStream
        _said_by(args.command, str(exc))
        return CONFIG_EXIT_CODE

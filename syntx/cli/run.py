"""``syntx run SERVICE``: one service of the service table in the foreground, in place of this process."""

from __future__ import annotations

import os
import sys

from shared.config import Settings
from shared.service import SERVICES
from shared.service_table import service_row
from syntx import exits
from syntx.cli.output import usage
from syntx.cli.parser import Invocation, Subparsers, runs
from syntx.suggest import unknown

RUN_LOG_SUFFIX = ".run"  # `syntx run X` logs to logs/X.run.log, never into the running service's file
LOG_SUFFIX_ENV = "SYNTX_LOGGING__FILE_SUFFIX"
CONSUMER_ENV = "SYNTX_CONSUMER"  # the consumer to run when --wrapper is not given


def register(commands: Subparsers) -> None:
    run_service = commands.add_parser("run", help="run one service in the foreground")
    run_service.add_argument("service", help=", ".join(SERVICES))
    run_service.add_argument("--wrapper", help="consumer name (for the consumer)")
    runs(run_service, run)


def run(call: Invocation) -> int:
    row = service_row(call.args.service)
    if row is None:
        return usage(f"syntx run: {unknown('service', call.args.service, SERVICES)}")
    argv = [sys.executable, "-m", row.module]
    if row.per_consumer:
        wrapper = _consumer(call.settings, call.args.wrapper)
        if wrapper is None:
            return exits.USAGE
        argv += ["--wrapper", wrapper]
    os.environ[LOG_SUFFIX_ENV] = RUN_LOG_SUFFIX
    os.execv(sys.executable, argv)


def _consumer(settings: Settings, wrapper: str | None) -> str | None:
    """The configured consumer to run, or None after one line saying which ones there are."""
    wrapper = wrapper or os.environ.get(CONSUMER_ENV, "")
    if wrapper in settings.consumers:
        return wrapper
    known = sorted(settings.consumers)
    why = (
        unknown("consumer", wrapper, known)
        if wrapper
        else f"name the consumer with --wrapper NAME, one of: {', '.join(known)}"
    )
    sys.stderr.write(f"syntx run consumer: {why}\n")
    return None

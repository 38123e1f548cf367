"""The ``syntx`` commands, one module each: ``register(commands)`` adds its parser and names its run.

A new command: a module here with ``register`` and ``run`` (see :mod:`syntx.cli.show`), and one entry in
:data:`COMMANDS`, whose order is the order of ``syntx --help``. Helpers the commands share:
:mod:`syntx.cli.parser` (the parser, what a run is given), :mod:`syntx.cli.output` (lines, tables,
refusals), :mod:`syntx.cli.asking` (NATS: connect, ask a service, say why not).
"""

from __future__ import annotations

from typing import Final, Protocol

from syntx.cli import (
    health,
    learning,
    logs,
    results,
    retry,
    run,
    schedules,
    score,
    show,
    status,
    trigger,
    up,
)
from syntx.cli.parser import Subparsers


class Command(Protocol):
    def register(self, commands: Subparsers) -> None: ...


COMMANDS: Final[tuple[Command, ...]] = (
    up,
    run,
    trigger,
    status,
    schedules,
    retry,
    score,
    health,
    learning,
    logs,
    results,
    show,
)

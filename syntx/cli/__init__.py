"""The ``syntx`` commands, one module each: ``register(commands)`` adds its parser and names its ``run``.

A new command: a module here with ``register`` and ``run`` (see :mod:`syntx.cli.show`), and its name in
:data:`COMMANDS`, whose order is the order of ``syntx --help``. Helpers the commands share:
:mod:`syntx.cli.parser` (the parser, what a run is given), :mod:`syntx.cli.output` (lines, tables,
refusals), :mod:`syntx.cli.asking` (NATS: connect, ask a service, say why not).
"""

from __future__ import annotations

from importlib import import_module
from typing import Final, Protocol, runtime_checkable

from syntx.cli.parser import Invocation, Subparsers

COMMANDS: Final = (
    "up",
    "run",
    "trigger",
    "status",
    "schedules",
    "retry",
    "score",
    "health",
    "learning",
    "logs",
    "results",
    "show",
)


@runtime_checkable
class Command(Protocol):
    def register(self, commands: Subparsers) -> None: ...

    def run(self, call: Invocation) -> int: ...


def commands() -> list[Command]:
    """Every command's module, in the order of :data:`COMMANDS`."""
    return [_command(name) for name in COMMANDS]


def _command(name: str) -> Command:
    module = import_module(f"{__name__}.{name}")
    if not isinstance(module, Command):
        raise TypeError(f"{module.__name__} must define register(commands) and run(call)")
    return module

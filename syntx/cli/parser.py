"""The command line's parser, and what a command's run is given."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from typing import NoReturn, TypeAlias

from shared.config import Settings
from syntx import exits
from syntx.suggest import unknown


class OneLineParser(argparse.ArgumentParser):
    """A wrong command line is one line naming the problem and where to read more (exit 2), prefixed by
    the command it is about: ``syntx status: unrecognized arguments: --bogus; see `syntx status --help```."""

    def error(self, message: str) -> NoReturn:
        self.exit(exits.USAGE, f"{self.prog}: {message}; see `{self.prog} --help`\n")

    def parse_command_line(self, argv: list[str]) -> argparse.Namespace:
        """``parse_args``, with a missing or mistyped command named as such (and the closest one offered),
        and arguments no command knows blamed on the command that was given."""
        commands = self._commands()
        given = next((word for word in argv if not word.startswith("-")), None)
        if given is None and not {"-h", "--help", "--version"} & set(argv):
            strangers = " ".join(argv)
            self.error(
                f"unrecognized arguments: {strangers}; " * bool(argv) + "name a command, e.g. `syntx status`"
            )
        if given is not None and given not in commands:
            self.error(unknown("command", given, commands))
        parsed, extras = self.parse_known_args(argv)
        if extras:
            commands[parsed.command].error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed

    def _commands(self) -> dict[str, OneLineParser]:
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction):
                return dict(action.choices)
        return {}


Subparsers: TypeAlias = "argparse._SubParsersAction[OneLineParser]"


@dataclass(frozen=True)
class Invocation:
    """A command as given: its arguments, the settings loaded for it and the configuration files read."""

    args: argparse.Namespace
    settings: Settings
    paths: list[str]


Run: TypeAlias = Callable[[Invocation], int]


def runs(parser: OneLineParser, run: Run) -> None:
    """``run`` is what the command parsed by ``parser`` does."""
    parser.set_defaults(run=run)

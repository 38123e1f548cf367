"""The command modules of syntx/cli: each listed once in COMMANDS, in the order `syntx --help` shows."""

from __future__ import annotations

import pkgutil

import syntx.cli
from syntx.cli import COMMANDS, commands
from syntx.main import build_parser

SHARED_HELPERS = {"parser", "output", "asking"}  # modules of syntx/cli that are no command


def test_every_command_module_is_listed_once() -> None:
    modules = {info.name for info in pkgutil.iter_modules(syntx.cli.__path__)} - SHARED_HELPERS
    assert sorted(COMMANDS) == sorted(modules)
    assert len(set(COMMANDS)) == len(COMMANDS)


def test_the_listed_modules_register_their_commands_in_the_listed_order() -> None:
    assert len(commands()) == len(COMMANDS)
    assert list(build_parser()._commands()) == list(COMMANDS)

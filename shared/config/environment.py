"""``SYNTX_*`` environment variables that name no setting: a typo must not pass silently.

pydantic-settings ignores an environment variable it cannot place (``SYNTX_NATS_URL`` for
``SYNTX_NATS__URL``), so the service would quietly run on its defaults. After the settings are built,
every ``SYNTX_*`` variable must have landed somewhere in them; one that did not is a configuration
error naming the closest real variable.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping
from typing import Any

from pydantic import BaseModel

PREFIX = "SYNTX_"
DELIMITER = "__"
CONFIG_ENV = "SYNTX_CONFIG"
FAILPOINTS_ENV = "SYNTX_FAILPOINTS"
NOT_SETTINGS = frozenset({CONFIG_ENV, FAILPOINTS_ENV})  # read by the project, but not settings


def env_name(path: tuple[str, ...]) -> str:
    """``("nats", "url")`` → ``SYNTX_NATS__URL``."""
    return PREFIX + DELIMITER.join(part.upper() for part in path)


def _paths(tree: Any, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every key path in the dumped settings, sections and leaves alike."""
    if not isinstance(tree, dict):
        return
    for key, value in tree.items():
        path = (*prefix, str(key).lower())
        yield path
        yield from _paths(value, path)


def _api_key_variables(tree: Any) -> Iterator[str]:
    """Variables the settings name as holding a secret (``api_key_env``): read by a backend, not settings."""
    if isinstance(tree, dict):
        for key, value in tree.items():
            if key == "api_key_env" and isinstance(value, str):
                yield value.upper()
            else:
                yield from _api_key_variables(value)


def unknown_variables(settings: BaseModel, environ: Mapping[str, str]) -> list[str]:
    """One line per ``SYNTX_*`` variable that no setting took, with the closest real name."""
    tree = settings.model_dump(mode="json")
    known = {env_name(path) for path in _paths(tree)}
    allowed = known | NOT_SETTINGS | set(_api_key_variables(tree))
    lines = []
    for name in sorted(environ):
        upper = name.upper()
        if not upper.startswith(PREFIX) or upper in allowed:
            continue
        close = difflib.get_close_matches(upper, sorted(known), n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]}?" if close else f" (nested keys are joined by {DELIMITER})"
        lines.append(f"config: environment variable {name} is not a setting{hint}")
    return lines

"""``SYNTX_*`` environment variables that name no setting: a typo must not pass silently.

pydantic-settings ignores an environment variable it cannot place (``SYNTX_NATS_URL`` for
``SYNTX_NATS__URL``), so the service would quietly run on its defaults. After the settings are built,
every ``SYNTX_*`` variable must have landed somewhere in them; one that did not is a configuration
error naming the closest real variable.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping
from typing import Any, get_args, get_origin

from pydantic import BaseModel

from shared.names import clipped, name_problem

PREFIX = "SYNTX_"
DELIMITER = "__"
CONFIG_ENV = "SYNTX_CONFIG"
FAILPOINTS_ENV = "SYNTX_FAILPOINTS"  # fault injection: the consumer kills itself at named points
FAIL_TASKS_ENV = "SYNTX_FAIL_TASKS"  # fault injection: named background tasks fail at their start
# Set by `syntx up` for each child: the name it runs the process under (consumer.sigma-2 for a consumer's
# second instance): the process's own log file, and its place in the monitor's count of live instances.
SUPERVISED_AS_ENV = "SYNTX_SUPERVISED_AS"
NOT_SETTINGS = frozenset({CONFIG_ENV, FAILPOINTS_ENV, FAIL_TASKS_ENV, SUPERVISED_AS_ENV})  # not settings
# A supervised name becomes a log file's name (with `.log` and a rotation number after it): it must fit a
# file name (NAME_MAX, 255 bytes) with room for those.
SUPERVISED_AS_MAX_BYTES = 200


def env_name(path: tuple[str, ...]) -> str:
    """``("nats", "url")`` → ``SYNTX_NATS__URL``."""
    return PREFIX + DELIMITER.join(part.upper() for part in path)


def _paths(tree: Any, model: Any, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every key path of the dumped settings, sections and leaves alike, plus the older spellings a
    section still reads (its ``LEGACY_KEYS``)."""
    if not isinstance(tree, dict):
        return
    for legacy in getattr(model, "LEGACY_KEYS", ()):
        yield (*prefix, legacy)
    for key, value in tree.items():
        path = (*prefix, str(key).lower())
        yield path
        yield from _paths(value, _inner(model, str(key)), path)


def _inner(model: Any, key: str) -> Any:
    """The model of ``model``'s value at ``key`` (sections and ``dict[str, Section]`` entries)."""
    if isinstance(model, type) and issubclass(model, BaseModel):
        field = model.model_fields.get(key)
        return field.annotation if field is not None else None
    if get_origin(model) is dict:
        return get_args(model)[1]
    sections = [arg for arg in get_args(model) if isinstance(arg, type) and issubclass(arg, BaseModel)]
    return _inner(sections[0], key) if sections else None  # an optional section


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
    known = {env_name(path) for path in _paths(tree, type(settings))}
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


def supervised_as_problems(environ: Mapping[str, str]) -> list[str]:
    """One line when :data:`SUPERVISED_AS_ENV` is set to something ``syntx up`` never gives: not a plain file
    name (a path, ``.``, ``..``, a control character) or longer than :data:`SUPERVISED_AS_MAX_BYTES`."""
    value = environ.get(SUPERVISED_AS_ENV)
    if not value:
        return []
    problem = name_problem(value)
    if problem is None and ("/" in value or value in (".", "..")):
        problem = "it is a path, not a name"
    if problem is None and len(value.encode()) > SUPERVISED_AS_MAX_BYTES:
        problem = f"it is over {SUPERVISED_AS_MAX_BYTES} bytes"
    if problem is None:
        return []
    return [
        f"config: environment variable {SUPERVISED_AS_ENV}={clipped(value)!r} is not a process name "
        f"({problem}); `syntx up` sets it, unset it elsewhere"
    ]

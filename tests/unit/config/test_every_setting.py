"""Every configuration key refuses an invalid value with one line naming the key — never a traceback.

The keys are not listed by hand: they are read from the settings model, so a new setting is covered
the day it is added. Numbers, switches and choices get a value of the wrong kind; free text has no
invalid value and is skipped.
"""

from __future__ import annotations

import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import pytest
import yaml
from pydantic import BaseModel

from shared.config import DEFAULT_CONFIG, ConfigError, Settings, load_settings

WRONG = "no-such-value"
CHECKED = (int, float, bool)
# dict sections: checked through one entry that the shipped configuration has
ENTRIES = {"consumers": "sigma", "schedules": "producer"}


def _options(annotation: Any) -> list[Any]:
    if get_origin(annotation) in (Union, types.UnionType):
        return [arg for arg in get_args(annotation) if arg is not type(None)]
    return [annotation]


def _leaves(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    for name, field in model.model_fields.items():
        path = (*prefix, name)
        options = _options(field.annotation)
        sections = [o for o in options if isinstance(o, type) and issubclass(o, BaseModel)]
        entry = [o for o in options if get_origin(o) is dict and len(prefix) == 0 and name in ENTRIES]
        if sections:
            yield from _leaves(sections[0], path)
        elif entry:
            inner = get_args(entry[0])[1]
            yield from _leaves(inner, (*path, ENTRIES[name]))
        else:
            yield path, field.annotation


def _checkable(annotation: Any) -> bool:
    options = _options(annotation)
    return any(o in CHECKED or get_origin(o) is Literal for o in options)


KEYS = [path for path, annotation in _leaves(Settings) if _checkable(annotation)]


def _nested(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    data: dict[str, Any] = {path[-1]: value}
    for part in reversed(path[:-1]):
        data = {part: data}
    return data


def test_the_walk_finds_the_settings_that_matter() -> None:
    dotted = {".".join(path) for path in KEYS}
    assert {"queue.lease_s", "consumers.sigma.threshold", "consumers.sigma.backend.kind"} <= dotted
    assert {"schedules.producer.enabled", "nats.embedded_port", "monitor.health.window_s"} <= dotted
    assert len(KEYS) > 80


@pytest.mark.parametrize("path", KEYS, ids=[".".join(path) for path in KEYS])
def test_an_invalid_value_is_one_line_naming_the_key(tmp_path: Path, path: tuple[str, ...]) -> None:
    overlay = tmp_path / "bad.yaml"
    overlay.write_text(yaml.safe_dump(_nested(path, WRONG)), encoding="utf-8")
    with pytest.raises(ConfigError) as exc:
        load_settings([DEFAULT_CONFIG, overlay])
    lines = str(exc.value).splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"config: {'.'.join(path)} = '{WRONG}': "), lines[0]

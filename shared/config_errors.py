"""Turn a pydantic ValidationError about configuration into lines an operator can act on."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError


def _dotted(location: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in location) or "<top>"


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def describe_validation_error(exc: ValidationError) -> str:
    """One line per problem: ``config: <key> = <value>: <what is allowed>``."""
    lines = []
    for error in exc.errors(include_url=False):
        key = _dotted(error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "missing":
            lines.append(f"config: {key} is required")
        elif error["type"] == "extra_forbidden":
            lines.append(f"config: {key} is not a known setting")
        else:
            lines.append(f"config: {key} = {_shown(error.get('input'))}: {message}")
    return "\n".join(lines)

"""Turn a pydantic ValidationError about configuration into lines an operator can act on."""

from __future__ import annotations

from typing import Any, get_args, get_origin

from pydantic import BaseModel, ValidationError


def _dotted(location: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in location) or "<top>"


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _known_keys(model: type[BaseModel], location: tuple[int | str, ...]) -> list[str]:
    """The setting names allowed beside the last part of ``location`` (empty if not a section)."""
    annotation: Any = model
    for part in location[:-1]:
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            field = annotation.model_fields.get(str(part))
            annotation = field.annotation if field is not None else None
        elif get_origin(annotation) is dict:
            annotation = get_args(annotation)[1]
        else:
            return []
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return sorted(annotation.model_fields)
    return []


def _unknown(key: str, value: Any, known: list[str]) -> str:
    allowed = f" (known here: {', '.join(known)})" if known else ""
    return f"config: {key} = {_shown(value)} is not a known setting{allowed}"


def describe_validation_error(exc: ValidationError, model: type[BaseModel] | None = None) -> str:
    """One line per problem: ``config: <key> = <value>: <what is allowed>``.

    With ``model`` (the settings class), an unknown key also lists the keys allowed in its place.
    """
    lines = []
    for error in exc.errors(include_url=False):
        key = _dotted(error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "missing":
            lines.append(f"config: {key} is required")
        elif error["type"] == "extra_forbidden":
            known = _known_keys(model, error["loc"]) if model is not None else []
            lines.append(_unknown(key, error.get("input"), known))
        else:
            lines.append(f"config: {key} = {_shown(error.get('input'))}: {message}")
    return "\n".join(lines)

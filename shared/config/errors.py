"""Turn a pydantic ValidationError about configuration into lines an operator can act on."""

from __future__ import annotations

import re
from typing import Any, get_args, get_origin

from pydantic import BaseModel, SecretStr, ValidationError

from shared.names import clipped, shown

SECRET_KEY = re.compile(
    r"^(?:token|key|password|secret|creds?|credentials?)$|_(?:key|password|secret)$", re.IGNORECASE
)
MASK = "'***'"
KEY_SHOWN_CHARS = 200  # a made-up key of any length is shown this far, its length said
USERINFO = re.compile(r"^([a-z][a-z0-9+.-]*://)[^/@]+@", re.IGNORECASE)


def _dotted(location: tuple[int | str, ...]) -> str:
    """The key as ``a.b.c``: a key from a file may hold anything, so it is escaped and cut to stay one
    short line."""
    return clipped(".".join(shown(str(part)) for part in location), KEY_SHOWN_CHARS) or "<top>"


def _is_secret(location: tuple[int | str, ...], value: Any) -> bool:
    """Never show a value whose name says it is a secret, or that a secret field holds."""
    last = str(location[-1]) if location else ""
    return isinstance(value, SecretStr) or bool(SECRET_KEY.search(last))


def _without_userinfo(value: Any) -> Any:
    """``nats://user:pass@host`` → ``nats://***@host``: a URL's password is a secret too."""
    return USERINFO.sub(r"\1***@", value) if isinstance(value, str) else value


def _shown(value: Any, location: tuple[int | str, ...] = ()) -> str:
    if _is_secret(location, value):
        return MASK
    text = repr(_without_userinfo(value))
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


def _unknown(location: tuple[int | str, ...], value: Any, known: list[str]) -> str:
    allowed = f" (known here: {', '.join(known)})" if known else ""
    return f"config: {_dotted(location)} = {_shown(value, location)} is not a known setting{allowed}"


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
            lines.append(_unknown(error["loc"], error.get("input"), known))
        else:
            lines.append(f"config: {key} = {_shown(error.get('input'), error['loc'])}: {message}")
    return "\n".join(lines)

"""docker-compose.yml as Compose reads it: the file, its variables resolved, a service's environment."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from shared.config import PROJECT_ROOT

ROOT = PROJECT_ROOT
COMPOSE_FILE = ROOT / "docker-compose.yml"
VARIABLE = re.compile(r"\$(?:\$|\{(?P<braced>[^}]*)\}|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))")
BRACED = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>.*))?$", re.DOTALL)


def load_yaml(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict), f"{path} must hold a mapping"
    return data


def interpolate(value: Any, environ: dict[str, str] | None = None) -> Any:
    """Resolve ``${VAR}``, ``${VAR:-default}`` … as ``docker compose config`` does (default: empty env).

    A required variable that is unset (``${VAR:?message}``) raises ``LookupError("VAR: message")``.
    """
    env = environ or {}
    if isinstance(value, dict):
        return {key: interpolate(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, env) for item in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        if match.group("bare"):
            return env.get(match.group("bare"), "")
        parsed = BRACED.match(match.group("braced"))
        assert parsed, f"bad variable reference {match.group(0)!r}"
        name, op, arg = parsed.group("name"), parsed.group("op"), parsed.group("arg") or ""
        current = env.get(name)
        unset = current is None or (op is not None and op.startswith(":") and current == "")
        if op in (":-", "-"):
            return arg if unset else str(current)
        if op in (":+", "+"):
            return "" if unset else arg
        if op in (":?", "?") and unset:
            raise LookupError(f"{name}: {arg}")
        return current or ""

    return VARIABLE.sub(substitute, value)


def environment(service: dict[str, Any]) -> dict[str, str]:
    """A compose service's environment, written as a mapping or as a list of ``KEY=value``."""
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        return {item.partition("=")[0]: item.partition("=")[2] for item in raw}
    return {str(key): "" if value is None else str(value) for key, value in raw.items()}

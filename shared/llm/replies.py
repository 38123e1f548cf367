"""Judging an HTTP reply (retry, fail, or a JSON object) and reading fields out of it."""

from __future__ import annotations

import codecs
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shared.llm.base import BackendError
from shared.llm.retry import retry_after_s

SNIPPET_CHARS = 200


@dataclass(frozen=True)
class JsonReply:
    """A 2xx reply whose body is a JSON object."""

    data: dict[str, Any]
    attempts: int
    status: int


@dataclass(frozen=True)
class Failure:
    """One failed attempt: ``what`` names it, ``detail`` adds what the server said.

    ``stalled``: the backend took the request but did not finish its reply in time (a read timeout) —
    unlike a backend that refuses connections, this counts against the job when it persists.
    """

    what: str
    retryable: bool
    status: int | None = None
    detail: str = ""
    wait_s: float | None = None
    stalled: bool = False


@dataclass(frozen=True)
class HttpReply:
    """What a server sent back: its status, its headers (looked up whatever their case) and its body as
    far as it was read (bounded by the reader)."""

    status: int
    headers: Mapping[str, str]
    body: bytes


def judge(reply: HttpReply, where: str) -> JsonReply | Failure:
    """Retry, fail, or the JSON object the reply holds."""
    status, body = reply.status, reply.body
    if status == 429 or status >= 500:
        wait_s = retry_after_s(reply.headers.get("retry-after"))
        return Failure(f"HTTP {status} from {where}", True, status, _server_said(_text(reply)), wait_s)
    if not 200 <= status < 300:
        return Failure(f"HTTP {status} from {where}", False, status, _server_said(_text(reply)))
    if encoding := _compressed(reply):
        return Failure(f"invalid reply: body compressed ({encoding}), identity was asked", False, status)
    if not body.strip():
        return Failure("invalid reply: empty body", False, status)
    try:
        data = json.loads(body)
    except ValueError:
        kind = reply.headers.get("content-type", "no content type").split(";")[0].strip()
        what = f"invalid reply: body is not JSON ({kind})"
        return Failure(what, False, status, _starts_with(_text(reply)))
    except RecursionError:
        return Failure("invalid reply: JSON nested too deeply", False, status)
    if not isinstance(data, dict):
        return Failure(f"invalid reply: expected a JSON object, got {json_type(data)}", False, status)
    return JsonReply(data, 1, status)


def _compressed(reply: HttpReply) -> str | None:
    """The content coding of a body sent compressed (requests ask for ``identity``: a limit on the bytes
    that arrive then bounds the reply), or None."""
    coding = reply.headers.get("content-encoding", "").strip().lower()
    return coding if coding not in ("", "identity") else None


def _text(reply: HttpReply) -> str:
    """The body as text, to be quoted; decoded only when a failure quotes it, by the charset its
    content type names (UTF-8 when it names none, or one Python does not know)."""
    return reply.body.decode(_charset(reply.headers.get("content-type", "")), errors="replace")


def _charset(content_type: str) -> str:
    for parameter in content_type.split(";")[1:]:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset":
            try:
                return codecs.lookup(value.strip().strip('"')).name
            except LookupError:
                break
    return "utf-8"


def json_type(value: object) -> str:
    """The JSON name of a decoded value's type."""
    names = {dict: "object", list: "array", str: "string", bool: "boolean", int: "number", float: "number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def _snippet(body: str) -> str:
    text = " ".join(body[: SNIPPET_CHARS * 4].split())
    return text if len(text) <= SNIPPET_CHARS else text[:SNIPPET_CHARS] + "…"


def _server_said(body: str) -> str:
    text = _snippet(body)
    return f"; server said: {text!r}" if text else ""


def _starts_with(body: str) -> str:
    return f"; body starts with: {_snippet(body)[:80]!r}"


def text_at(reply: JsonReply, *path: str | int) -> str:
    """The string at ``path`` (keys and list indexes), or a non-retryable :class:`BackendError`."""
    value = _dig(reply, path)
    if not isinstance(value, str):
        raise _invalid(reply, f"{_label(path)!r} is {json_type(value)}, not a string")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate ("\\ud800" in the JSON): no file could hold it
        return value.encode("utf-8", errors="replace").decode("utf-8")
    return value


def optional_at(data: Any, *path: str | int) -> Any:
    """The value at ``path`` or None when any step is missing."""
    for step in path:
        if isinstance(step, int):
            if not isinstance(data, list) or not -len(data) <= step < len(data):
                return None
        elif not isinstance(data, dict) or step not in data:
            return None
        data = data[step]
    return data


def token_count(data: Any, *path: str) -> int | None:
    """A token count the reply reports at ``path``; None when missing or not a count."""
    value = optional_at(data, *path)
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _dig(reply: JsonReply, path: tuple[str | int, ...]) -> Any:
    value: Any = reply.data
    for depth, step in enumerate(path):
        here, label = _label(path[:depth]), _label(path[: depth + 1])
        if isinstance(step, int):
            if not isinstance(value, list):
                raise _invalid(reply, f"{here!r} is {json_type(value)}, not an array")
            if step >= len(value):
                raise _invalid(reply, f"missing key {label!r} ({here!r} has {len(value)} items)")
        else:
            if not isinstance(value, dict):
                raise _invalid(reply, f"{here!r} is {json_type(value)}, not an object")
            if step not in value:
                raise _invalid(reply, f"missing key {label!r}")
        value = value[step]
    return value


def _label(path: tuple[str | int, ...]) -> str:
    label = ""
    for step in path:
        if isinstance(step, int):
            label += f"[{step}]"
        else:
            label += f".{step}" if label else step
    return label


def _invalid(reply: JsonReply, what: str) -> BackendError:
    return BackendError(
        f"invalid reply: {what}", retryable=False, attempts=reply.attempts, status=reply.status
    )

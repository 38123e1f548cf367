"""How a command reaches the running system over NATS: connect once, ask a service, say why not."""

from __future__ import annotations

import json
import sys
from contextlib import AbstractAsyncContextManager
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from shared.config import Settings
from shared.messaging import (
    Bus,
    ErrorReply,
    NoResponders,
    RequestTimeout,
    Unreachable,
    describe,
    shown_url,
)
from shared.messaging import connect as connect_bus
from shared.names import shown
from syntx import exits

CONNECT_ATTEMPTS = 1  # one retry, then "cannot reach NATS" instead of waiting forever
Reply = TypeVar("Reply", bound=BaseModel)


def connect(settings: Settings) -> AbstractAsyncContextManager[Bus]:
    return connect_bus(settings.nats, name="syntx-cli", max_reconnect_attempts=CONNECT_ATTEMPTS, quiet=True)


class Unanswered(Exception):
    """No reply to use, and why in one line. ``code``: the exit code it means; ``answered``: whether the
    service answered at all (with a refusal, or a reply this version does not read)."""

    def __init__(self, why: str, code: int = exits.NOT_REACHABLE, *, answered: bool = False) -> None:
        super().__init__(why)
        self.code = code
        self.answered = answered


def unreachable(settings: Settings, command: str, exc: BaseException | None = None) -> int:
    sys.stderr.write(f"syntx {command}: {_unreachable_why(settings, exc)}\n")
    return exits.NOT_REACHABLE


def _unreachable_why(settings: Settings, exc: BaseException | None) -> str:
    url = shown_url(settings.nats.effective_url)
    if isinstance(exc, Unreachable) and exc.silent:
        return (
            f"NATS at {url} accepts connections but does not answer (a stopped or overloaded "
            "nats-server?); the services reconnect by themselves once it answers"
        )
    return f"cannot reach NATS at {url}: is `syntx up` running?"


async def ask(
    settings: Settings, command: str, subject: str, who: str, answer: type[Reply], body: bytes = b""
) -> Reply | int:
    """The service's reply as the model it sends, or the exit code after one line on stderr saying why
    there is none."""
    try:
        return await reply_of(settings, subject, who, answer, body)
    except Unanswered as exc:
        sys.stderr.write(f"syntx {command}: {exc}\n")
        return exc.code


async def reply_of(
    settings: Settings, subject: str, who: str, answer: type[Reply], body: bytes = b""
) -> Reply:
    """The service's reply as the model it sends; :class:`Unanswered` when there is none to use."""
    try:
        async with connect(settings) as bus:
            data = await bus.request(subject, body, wait_s=settings.nats.request_timeout_s)
    except Unreachable as exc:
        raise Unanswered(_unreachable_why(settings, exc)) from None
    except (NoResponders, RequestTimeout):
        raise Unanswered(f"no answer from the {who} on {subject}: is `syntx up` running?") from None
    said = f"the {who} answered on {subject} with"
    try:
        reply = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        reply = None
    if not isinstance(reply, dict):
        raise Unanswered(f"{said} something that is not JSON", answered=True)
    try:
        refusal = ErrorReply.model_validate(reply)
    except ValidationError:
        return _read(reply, answer, said)  # not an error
    why = f"the {who} could not answer on {subject}: {shown(refusal.error)}"
    raise Unanswered(why, exits.NOTHING_DONE, answered=True)


def _read(reply: dict[str, object], answer: type[Reply], said: str) -> Reply:
    """``reply`` as ``answer``; :class:`Unanswered` when it is not one."""
    try:
        return answer.model_validate(reply)
    except ValidationError as exc:
        why = f"{said} a reply this version does not read ({describe(exc)})"
        raise Unanswered(why, answered=True) from None

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
from syntx.cli.output import fail

CONNECT_ATTEMPTS = 1  # one retry, then "cannot reach NATS" instead of waiting forever
Reply = TypeVar("Reply", bound=BaseModel)


def connect(settings: Settings) -> AbstractAsyncContextManager[Bus]:
    return connect_bus(settings.nats, name="syntx-cli", max_reconnect_attempts=CONNECT_ATTEMPTS, quiet=True)


def unreachable(settings: Settings, command: str, exc: BaseException | None = None) -> int:
    url = shown_url(settings.nats.effective_url)
    if isinstance(exc, Unreachable) and exc.silent:
        sys.stderr.write(
            f"syntx {command}: NATS at {url} accepts connections but does not answer (a stopped or "
            "overloaded nats-server?); the services reconnect by themselves once it answers\n"
        )
    else:
        sys.stderr.write(f"syntx {command}: cannot reach NATS at {url}: is `syntx up` running?\n")
    return exits.NOT_REACHABLE


async def ask(
    settings: Settings, command: str, subject: str, who: str, answer: type[Reply], body: bytes = b""
) -> Reply | int:
    """The service's reply as the model it sends, or the exit code after one line on stderr saying why
    there is none."""
    said = f"syntx {command}: "
    try:
        async with connect(settings) as bus:
            data = await bus.request(subject, body, wait_s=settings.nats.request_timeout_s)
    except Unreachable as exc:
        return unreachable(settings, command, exc)
    except (NoResponders, RequestTimeout):
        sys.stderr.write(f"{said}no answer from the {who} on {subject}: is `syntx up` running?\n")
        return exits.NOT_REACHABLE
    try:
        reply = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        reply = None
    if not isinstance(reply, dict):
        sys.stderr.write(f"{said}the {who} answered on {subject} with something that is not JSON\n")
        return exits.NOT_REACHABLE
    try:
        refusal = ErrorReply.model_validate(reply)
    except ValidationError:
        return _read(reply, answer, said + f"the {who} answered on {subject} with")  # not an error
    return fail(f"{said}the {who} could not answer on {subject}: {shown(refusal.error)}")


def _read(reply: dict[str, object], answer: type[Reply], said: str) -> Reply | int:
    """``reply`` as ``answer``, or the exit code after one line saying it is not one."""
    try:
        return answer.model_validate(reply)
    except ValidationError as exc:
        sys.stderr.write(f"{said} a reply this version does not read ({describe(exc)})\n")
        return exits.NOT_REACHABLE

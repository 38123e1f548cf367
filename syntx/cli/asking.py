"""How a command reaches the running system over NATS: connect once, ask a service, say why not."""

from __future__ import annotations

import json
import sys
from contextlib import AbstractAsyncContextManager
from typing import Any

import nats.errors
from pydantic import ValidationError

from shared.config import Settings
from shared.messaging import ErrorReply, shown_url
from shared.messaging import bus as bus_module
from shared.messaging.connection import Unreachable
from shared.names import shown
from syntx import exits
from syntx.cli.output import fail

CONNECT_ATTEMPTS = 1  # one retry, then "cannot reach NATS" instead of waiting forever


def connect(settings: Settings) -> AbstractAsyncContextManager[bus_module.Bus]:
    return bus_module.connect(
        settings.nats, name="syntx-cli", max_reconnect_attempts=CONNECT_ATTEMPTS, quiet=True
    )


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
    settings: Settings, command: str, subject: str, who: str, body: bytes = b""
) -> dict[str, Any] | int:
    """The service's reply as JSON, or the exit code after one line on stderr saying why there is none."""
    said = f"syntx {command}: "
    try:
        async with connect(settings) as bus:
            data = await bus.request(subject, body, wait_s=settings.nats.request_timeout_s)
    except nats.errors.NoServersError as exc:
        return unreachable(settings, command, exc)
    except (nats.errors.NoRespondersError, nats.errors.TimeoutError):
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
        return reply  # not an error: the reply asked for
    return fail(f"{said}the {who} could not answer on {subject}: {shown(refusal.error)}")

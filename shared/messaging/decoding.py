"""The one place a message body becomes a typed message: events, ticks, requests, pings.

Every body is read as bounded JSON first (:func:`shared.messaging.bodies.json_body`: size, encoding,
nesting, length of numbers), then validated by the model its subject carries (:data:`EVENT_TYPES`,
:data:`REQUEST_TYPES`), whose fields are bounded too. Whatever fails raises :class:`MalformedMessage`
with one line saying where and why — never another exception — so a new subject gets the same checks by
being added to those tables.
"""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel, ValidationError

from shared.messaging import subjects
from shared.messaging.bodies import MalformedMessage, json_body
from shared.messaging.messages import (
    EVENT_ADAPTER,
    EVENT_TYPES,
    REQUEST_TYPES,
    Event,
    Request,
    ServicePing,
    Tick,
)
from shared.names import clipped

WHERE_MAX_CHARS = 120  # a field path made of a sender's mapping keys is cut to this in a reason

R = TypeVar("R", bound=Request)


def describe(exc: ValidationError) -> str:
    """The first problem of a validation error, as ``where: what`` (the value itself is never shown)."""
    first = exc.errors(include_url=False)[0]
    where = ".".join(str(part) for part in first["loc"]) or "body"
    return f"{clipped(where, WHERE_MAX_CHARS)}: {first['msg']}"


def decode_event(data: bytes, subject: str | None = None) -> Event:
    """The event in ``data``; with ``subject``, only the kind that subject carries."""
    wanted = EVENT_TYPES.get(subject) if subject is not None else None
    if subject is not None and wanted is None:
        raise MalformedMessage(f"{clipped(subject, WHERE_MAX_CHARS)!r} carries no event")
    body = json_body(data)
    try:
        event = EVENT_ADAPTER.validate_python(body)
    except ValidationError as exc:
        raise MalformedMessage(describe(exc)) from None
    if wanted is not None and not isinstance(event, wanted):
        raise MalformedMessage(f"kind: {event.kind!r} does not belong on this subject")
    return event


def decode_tick(data: bytes, schedule: str) -> Tick:
    """An empty or whitespace body is a valid tick; otherwise a JSON object with Tick fields."""
    if not data.strip():
        return Tick(schedule=schedule)
    tick = _validated(Tick, data)
    return tick if tick.schedule == schedule else tick.model_copy(update={"schedule": schedule})


def decode_request(model: type[R], data: bytes) -> R:
    """A request body: empty (all defaults) or a JSON object with ``model``'s fields."""
    return _validated(model, data) if data.strip() else model()


def decode_on(subject: str, data: bytes) -> BaseModel:
    """Whatever ``subject`` carries, from ``data``; an unknown subject is malformed too."""
    if subject.startswith(subjects.TICK_PREFIX + "."):
        return decode_tick(data, subjects.schedule_of(subject))
    if subject in EVENT_TYPES:
        return decode_event(data, subject)
    if subject in REQUEST_TYPES:
        return decode_request(REQUEST_TYPES[subject], data)
    if subject == subjects.SERVICE_PING:
        return decode_request(ServicePing, data)
    raise MalformedMessage("no such subject")


M = TypeVar("M", bound=BaseModel)


def _validated(model: type[M], data: bytes) -> M:
    body = json_body(data)
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise MalformedMessage(describe(exc)) from None

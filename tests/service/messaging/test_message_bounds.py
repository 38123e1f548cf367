"""Every message field bounded before use: bodies, JSON shapes and fields, on every subject.

What a subject carries is read through one decoder (shared/messaging/decoding.py); these tests hold it to
its bounds by reading the models themselves (a new field without a bound fails here), by hostile bodies
with the reason each gets, and against real services on a real nats-server: a 70,000-character job id
never reaches the producer's tick, and a request nobody can answer is answered with an error at once.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, TypeAdapter

from services.producer.app import run as run_producer
from services.scheduler.app import run as run_scheduler
from shared.config import Settings
from shared.messaging import (
    CleanupReport,
    ErrorReply,
    JobFailed,
    PausedSchedules,
    StatusRequest,
    Tick,
    connect,
    encode,
    message_problem,
    subjects,
)
from shared.messaging.bodies import BODY_MAX_BYTES, NUMBER_MAX_CHARS
from shared.messaging.messages import EVENT_TYPES, REQUEST_TYPES, TEXT_MAX_CHARS
from shared.names import JobId
from tests.support.cli import syntx
from tests.support.harness import HEARTBEATS, free_port, observer, running
from tests.support.messages import valid_messages
from tests.support.monitors import monitor_serving, monitor_settings
from tests.support.natsserver import NatsServer
from tests.support.producers import producer_running, producer_settings, stats, tick

LONG_JOB_ID = "x" * 70_000
DEEP = b'{"a": ' + b"[" * 5000 + b"]" * 5000 + b"}"
NINE_HUNDRED_THOUSAND_DIGITS = b'{"reconcile": ' + b"9" * 900_000 + b"}"
# A validator that bounds a string by itself: the file-name rule of job ids (at most 200 bytes).
BOUNDING_VALIDATORS = {TypeAdapter(JobId).core_schema["function"]["function"]}
SIZED_BOUNDS = {"str": ("max_length",), "int": ("ge", "le"), "float": ("ge", "le")}
COLLECTIONS = ("list", "dict", "tuple", "set")
Checked = tuple[str, dict[str, Any], frozenset[str]]


def _schemas(node: Any, where: str, outer: frozenset[str] = frozenset()) -> Iterator[Checked]:
    """Every pydantic-core schema inside ``node``: the field it belongs to, and the bounds a validator
    around it applies (pydantic checks an annotated bound after a validator in a wrapping function)."""
    if isinstance(node, dict):
        if "type" in node:
            yield where, node, outer
        function = node.get("function")
        wrapping = function.get("function") if isinstance(function, dict) else None
        bounds = outer | set(getattr(wrapping, "keywords", None) or ())
        if wrapping in BOUNDING_VALIDATORS:
            bounds |= {"max_length"}
        for key, value in node.items():
            if key == "fields" and isinstance(value, dict):
                for name, field in value.items():
                    yield from _schemas(field, f"{where}.{name}")
            else:
                yield from _schemas(value, where, bounds if key == "schema" else frozenset())
    elif isinstance(node, list):
        for item in node:
            yield from _schemas(item, where)


def unbounded(model: type[BaseModel]) -> list[str]:
    """The strings, numbers and collections of ``model`` that take any size."""
    found = []
    for where, schema, outer in _schemas(model.__pydantic_core_schema__, model.__name__):
        kind = schema["type"]
        wanted = [*SIZED_BOUNDS.get(kind, ()), *(("max_length",) if kind in COLLECTIONS else ())]
        missing = [bound for bound in wanted if bound not in schema and bound not in outer]
        if missing:
            found.append(f"{where}: {kind} without {', '.join(missing)}")
    return found


ALL_MODELS = [*EVENT_TYPES.values(), *REQUEST_TYPES.values(), Tick, ErrorReply]


@pytest.mark.parametrize("model", ALL_MODELS, ids=lambda model: model.__name__)
def test_every_string_number_and_collection_of_every_message_is_bounded(model: type[BaseModel]) -> None:
    assert unbounded(model) == []


def test_the_bound_check_finds_an_unbounded_field() -> None:
    class Loose(BaseModel):
        name: str
        count: int
        items: list[str]

    assert unbounded(Loose) == [
        "Loose.name: str without max_length",
        "Loose.count: int without ge, le",
        "Loose.items: list without max_length",
        "Loose.items: str without max_length",
    ]


def test_every_subject_accepts_what_its_services_send() -> None:
    """Including ``syntx.schedule.overlap``, whose events were once all counted as malformed (their kind,
    ``tick.overlapped``, is not their subject's name)."""
    messages = valid_messages()
    assert set(EVENT_TYPES) <= set(messages)
    assert {*EVENT_TYPES, *REQUEST_TYPES, subjects.SERVICE_PING} == set(subjects.ALL_FIXED)  # each decoded
    for subject, message in messages.items():
        assert message_problem(subject, encode(message)) is None, subject
    for subject in (*REQUEST_TYPES, subjects.SERVICE_PING, subjects.tick("cleanup")):
        assert message_problem(subject, b"") is None, subject


def with_field(subject: str, key: str, value: Any) -> bytes:
    body = json.loads(encode(valid_messages()[subject]))
    body[key] = value
    return json.dumps(body).encode()


HOSTILE = {
    "deep nesting": (subjects.STATUS, DEEP, "body: nested deeper than 8 levels"),
    "nesting one level too deep": (
        subjects.STATUS,
        b'{"reconcile": ' + b"[" * 8 + b"]" * 8 + b"}",
        "body: nested deeper than 8 levels",
    ),
    "900,000 digits": (
        subjects.STATUS,
        NINE_HUNDRED_THOUSAND_DIGITS,
        f"body: 900015 bytes, over the limit of {BODY_MAX_BYTES}",
    ),
    "a 100-digit number": (
        subjects.tick("producer"),
        b'{"batch": 1' + b"0" * 99 + b"}",
        f"body: a number of 100 characters, over the limit of {NUMBER_MAX_CHARS}",
    ),
    "not UTF-8": (subjects.JOB_CREATED, b'{"job_id": "\xff"}', "body: not UTF-8 (byte 12)"),
    "a 70,000-character job id": (
        subjects.JOB_SCORED,
        with_field(subjects.JOB_SCORED, "job_id", LONG_JOB_ID),
        "job.scored.job_id: Value error, not a job id: 70000 bytes long; a job id has at most 200",
    ),
    "a job id that is a path": (
        subjects.JOB_SCORED,
        with_field(subjects.JOB_SCORED, "job_id", "../../../outside/victim"),
        "job.scored.job_id: Value error, not a job id: starts with a dot",
    ),
    "an unbounded count": (
        subjects.CLEANUP_REPORT,
        with_field(subjects.CLEANUP_REPORT, "quarantined", 2**60),
        "cleanup.report.quarantined: Input should be less than or equal to 9007199254740992",
    ),
    "a number out of range": (
        subjects.CONSUMER_BACKEND,
        b'{"kind": "consumer.backend", "wrapper": "s", "backend": "b", "available": true, '
        b'"consecutive_failures": 1, "pause_s": 1e999}',
        "body: the number 1e999 is out of range",
    ),
    "NaN, which JSON does not have": (
        subjects.CONSUMER_BACKEND,
        b'{"kind": "consumer.backend", "wrapper": "s", "backend": "b", "available": true, '
        b'"consecutive_failures": 1, "pause_s": NaN}',
        "body: NaN is not a JSON number",
    ),
    "a field nobody sends": (subjects.SCHEDULES, b'{"all": true}', "all: Extra inputs are not permitted"),
    "a wrong kind of body": (subjects.PRODUCER_STATS, b"[1, 2]", "Input should be a valid dictionary"),
    "a ping with fields": (subjects.SERVICE_PING, b'{"x": 1}', "x: Extra inputs are not permitted"),
}


@pytest.mark.parametrize("case", HOSTILE, ids=str)
def test_a_hostile_body_is_malformed_with_a_precise_reason(case: str) -> None:
    subject, body, reason = HOSTILE[case]
    problem = message_problem(subject, body)
    assert problem is not None
    assert reason in problem
    assert len(problem) < 300


def test_free_text_is_cut_to_its_bound_and_the_event_still_sent() -> None:
    """A reason is text of someone else's length: cut, its length said, never the reason an event fails."""
    failed = JobFailed(
        job_id="j1", wrapper="s", backend="b", reason="r" * 70_000, attempt=1, will_retry=False
    )
    assert len(failed.reason) <= TEXT_MAX_CHARS
    assert failed.reason.endswith("… (70000 characters)")
    many = CleanupReport(errors=[f"e{index}" for index in range(5000)])
    assert many.errors[-1] == "… 4001 more"
    assert message_problem(subjects.CLEANUP_REPORT, encode(many)) is None


async def test_a_70000_character_job_id_is_refused_at_decode_and_the_producer_keeps_turning(
    tmp_path: Path, nats_server: NatsServer, caplog: pytest.LogCaptureFixture
) -> None:
    """The issue's row: this one message made the producer's tick fail. Now it never reaches the producer:
    counted as malformed where it arrives, the tick and the stats request answered as ever."""
    settings = producer_settings(tmp_path, nats_server, seed=3)
    async with producer_running(settings) as (nc, events):
        for job_id in (LONG_JOB_ID, "../../../outside/victim"):
            await nc.publish(subjects.JOB_SCORED, with_field(subjects.JOB_SCORED, "job_id", job_id))
        await nc.flush()
        reply = await stats(nc)
        generation = await tick(nc, events)
    assert reply.observed == 0
    assert (generation.generation, generation.produced) == (1, 20)
    dropped = [m for m in caplog.messages if m.startswith("dropping malformed message on 'syntx.job.scored'")]
    assert dropped and "job_id: Value error, not a job id: 70000 bytes long" in dropped[0]
    assert not [m for m in caplog.messages if "failed" in m]


REQUEST_GARBAGE = [DEEP, NINE_HUNDRED_THOUSAND_DIGITS, b"\x00\x01binary", b"[1, 2, 3]", b'{"unknown": 1}']


async def test_every_request_subject_answers_a_malformed_request_with_an_error_at_once(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    """The issue's row "a malformed syntx.status request gets no reply": every request subject answers
    every kind of garbage with an error reply (no caller waits for its timeout), counted by the monitor;
    a well-formed request is answered as ever afterwards."""
    settings = monitor_settings(tmp_path, nats_server, free_port())
    assert settings.nats.url
    async with (
        monitor_serving(settings) as (monitor, nc),
        observer(settings.nats.url, HEARTBEATS) as (_nc, beats),
        running(settings, {"scheduler": run_scheduler, "producer": run_producer}, beats),
    ):
        for subject in REQUEST_TYPES:
            for body in REQUEST_GARBAGE:
                reply = await nc.request(subject, body, timeout=2)
                error = ErrorReply.model_validate_json(reply.data)
                assert error.subject == subject
                assert error.error.startswith("malformed request: ")
        answers = {
            subject: json.loads((await nc.request(subject, b"", timeout=5)).data) for subject in REQUEST_TYPES
        }

        def counted(subject: str) -> float:
            sample = monitor.metrics.registry.get_sample_value(
                "syntx_malformed_messages_total", {"subject": subject}
            )
            return sample or 0.0

        async with asyncio.timeout(10):
            while any(counted(subject) < len(REQUEST_GARBAGE) for subject in REQUEST_TYPES):  # noqa: ASYNC110
                await asyncio.sleep(0.02)
    assert all(counted(subject) == len(REQUEST_GARBAGE) for subject in REQUEST_TYPES)
    assert all("kind" not in answer for answer in answers.values())
    assert "queue_state" in answers[subjects.STATUS] and "schedules" in answers[subjects.SCHEDULES]


async def test_a_responder_that_fails_answers_with_an_error_that_syntx_status_prints_in_one_line(
    with_nats: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    async def broken(_request: StatusRequest) -> BaseModel:
        raise OSError(28, "No space left on device")

    async with connect(with_nats.nats, name="broken-monitor") as bus:
        await bus.serve(StatusRequest, broken, queue="monitor")
        await bus.flush()
        assert await asyncio.to_thread(syntx, "status") == 1
    assert capsys.readouterr().err == (
        "syntx status: the monitor could not answer on syntx.status: "
        "the service could not answer: [Errno 28] No space left on device\n"
    )


async def test_a_pause_written_by_hand_as_hostile_json_pauses_and_the_watch_goes_on(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    """The pause bucket is on the bus too: a value nested 5,000 levels once ended the scheduler's watch
    (and the scheduler, again on every start). Read as bounded JSON, it pauses its schedule like any value
    written by hand, and the next pause is followed as ever."""
    settings = monitor_settings(tmp_path, nats_server, free_port())
    stop = asyncio.Event()
    async with connect(settings.nats, name="scheduler") as bus:
        bucket = await bus.key_value(settings.scheduler.state_bucket)
        pauses = PausedSchedules(bucket)
        watching = asyncio.create_task(pauses.watch(stop, settings.nats.resubscribe))
        await bucket.put("producer", DEEP)
        await bucket.put("monitor", NINE_HUNDRED_THOUSAND_DIGITS)
        await PausedSchedules(bucket).pause("cleanup", datetime.now(UTC))
        async with asyncio.timeout(10):
            while not pauses.is_paused("cleanup"):  # noqa: ASYNC110 - the watch offers no event per entry
                await asyncio.sleep(0.02)
        stop.set()
        await watching
    assert pauses.is_paused("producer") and pauses.since("producer") is None
    assert pauses.is_paused("monitor") and pauses.since("monitor") is None
    assert pauses.since("cleanup") is not None

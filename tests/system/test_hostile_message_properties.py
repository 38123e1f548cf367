"""Generated message bodies on every subject, published to the real services of a real ``syntx up``.

Hypothesis writes bodies for every subject under ``syntx.>`` — valid messages, fields of the wrong kind,
fields nobody sends, nestings up to 60 levels, numbers of up to 5,000 digits, strings up to 400,000
characters, bodies up to 900 KB, random bytes, a valid message of another subject — and publishes each
to the running system (embedded nats-server, scheduler, producer, two consumers, monitor, cleanup, each
its own process). For each it asserts: the monitor counts it in ``syntx_malformed_messages_total`` exactly
when it is malformed (deep nestings, long numbers, oversized and undecodable bodies always are); a request
subject always answers at once, with an error reply when the request is malformed and the service's reply
when not. Afterwards no service died or restarted, none logged a traceback, and each still turns a normal
tick: the producer produces, a consumer scores, cleanup reports, the monitor writes its status line, the
scheduler answers.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import threading
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import nats
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from nats.aio.client import Client
from nats.aio.msg import Msg
from prometheus_client.parser import text_string_to_metric_families

from shared.config import DEFAULT_CONFIG, load_settings
from shared.messaging import ErrorReply, MalformedMessage, decode_on, encode, message_problem, subjects
from shared.messaging.bodies import BODY_MAX_BYTES, DEPTH_MAX, NUMBER_MAX_CHARS
from shared.messaging.messages import EVENT_TYPES, REQUEST_TYPES
from tests.support.harness import free_port
from tests.support.messages import valid_messages
from tests.support.up import BIN

EXAMPLES = int(os.environ.get("HOSTILE_MESSAGE_EXAMPLES", "200"))  # more: a longer hunt, by hand
SCHEDULES = tuple(load_settings([DEFAULT_CONFIG]).schedules)
TICKS = tuple(subjects.tick(schedule) for schedule in SCHEDULES)
SUBJECTS = (*EVENT_TYPES, *REQUEST_TYPES, subjects.SERVICE_PING, *TICKS)
SENTINEL = "syntx.no.such.subject"  # counted as "other": once it is, everything sent before it is too
SERVICES = ("scheduler", "producer", "consumer.syntex_system", "consumer.sigma", "monitor", "cleanup")
MALFORMED = "syntx_malformed_messages_total"
WAIT_S = 20.0
BATCH_MAX = 3  # a valid tick may run its service, not flood the queue
T = TypeVar("T")


class ThreadedNats:
    """A NATS client on its own event loop in a thread, for Hypothesis' synchronous examples."""

    def __init__(self, url: str) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="nats client", daemon=True)
        self._thread.start()
        self.nc: Client = self.run(nats.connect(url, max_reconnect_attempts=3))
        self.seen: dict[str, list[bytes]] = {}

    def run(self, work: Awaitable[T], timeout_s: float = WAIT_S) -> T:
        future: Future[T] = asyncio.run_coroutine_threadsafe(_awaited(work), self._loop)
        return future.result(timeout_s)

    def publish(self, subject: str, body: bytes) -> None:
        self.run(self.nc.publish(subject, body))

    def request(self, subject: str, body: bytes) -> bytes:
        reply: Msg = self.run(self.nc.request(subject, body, timeout=5))
        return reply.data

    def watch(self, subject: str) -> list[bytes]:
        """Every body published on ``subject`` from now on, collected as it arrives."""
        bodies = self.seen.setdefault(subject, [])

        async def keep(msg: Msg) -> None:
            bodies.append(msg.data)

        self.run(self.nc.subscribe(subject, cb=keep))
        self.run(self.nc.flush())
        return bodies

    def close(self) -> None:
        self.run(self.nc.drain())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()


async def _awaited(work: Awaitable[T]) -> T:
    return await work


@dataclass
class System:
    bus: ThreadedNats
    metrics_url: str
    output: Path
    data_dir: Path

    def malformed(self) -> dict[str, float]:
        text = httpx.get(self.metrics_url, timeout=5, trust_env=False).text
        return {
            sample.labels["subject"]: sample.value
            for family in text_string_to_metric_families(text)
            if family.name == MALFORMED.removesuffix("_total")
            for sample in family.samples
            if sample.name == MALFORMED
        }

    def until(self, condition: Callable[[], bool], what: str) -> None:
        """Wait for ``condition`` (read over HTTP or NATS, nothing to subscribe to), at most WAIT_S."""
        done = threading.Event()
        for _ in range(int(WAIT_S / 0.02)):
            if condition():
                return
            done.wait(0.02)
        raise AssertionError(f"not within {WAIT_S:g} s: {what}")


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    """``syntx up`` with the shipped configuration on free ports, its output in a file."""
    root = tmp_path_factory.mktemp("hostile-messages")
    nats_port, monitor_port = free_port(), free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("SYNTX_")}
    env.update(
        SYNTX_DATA_DIR=str(root / "data"),
        SYNTX_NATS__EMBEDDED_PORT=str(nats_port),
        SYNTX_MONITOR__PORT=str(monitor_port),
        SYNTX_NATS__MALFORMED_LOG_INTERVAL_S="3600",
    )
    output = root / "syntx-up.out"
    with output.open("wb") as sink:
        up = subprocess.Popen(
            [str(BIN / "syntx"), "up"],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        running = System(_connected(f"nats://127.0.0.1:{nats_port}", up), "", output, root / "data")
        running.metrics_url = f"http://127.0.0.1:{monitor_port}/metrics"
        running.until(lambda: _all_live(running.bus), "every service live")
        yield running
        running.bus.close()
    finally:
        up.send_signal(signal.SIGINT)
        up.wait(90)


def _connected(url: str, up: subprocess.Popen[bytes]) -> ThreadedNats:
    for _ in range(200):
        assert up.poll() is None, "syntx up ended at start"
        try:
            return ThreadedNats(url)
        except (OSError, TimeoutError, nats.errors.Error):
            threading.Event().wait(0.1)  # the embedded server is not listening yet
    raise AssertionError("the embedded nats-server did not start")


def _all_live(bus: ThreadedNats) -> bool:
    try:
        services = json.loads(bus.request(subjects.STATUS, b""))["services"]
    except (TimeoutError, nats.errors.Error, KeyError, ValueError):
        return False
    return all(services.get(name) for name in SERVICES)


# -- the bodies ------------------------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=10,
)


def template(subject: str) -> dict[str, Any]:
    if subject == subjects.SERVICE_PING or subject in REQUEST_TYPES:
        return {}
    if subject in TICKS:
        return {"batch": 1}
    loaded: dict[str, Any] = json.loads(encode(valid_messages()[subject]))
    return loaded


@dataclass(frozen=True)
class Case:
    subject: str
    body: bytes
    how: str
    reason: str | None = None  # what the body's making says it is refused for, whatever the decoder says


def _spliced(body: dict[str, Any], key: str, literal: str) -> bytes:
    """``body`` as JSON with ``key`` holding ``literal`` as written (a number of any length, a nesting)."""
    placeholder = "\u0000placeholder"
    return json.dumps({**body, key: placeholder}).replace(json.dumps(placeholder), literal).encode()


@st.composite
def cases(draw: st.DrawFn) -> Case:
    subject = draw(st.sampled_from(SUBJECTS))
    body = template(subject)
    how = draw(st.sampled_from(HOW))
    if how == "empty":
        return Case(subject, b"", how, "body: not JSON" if subject in EVENT_TYPES else None)
    if how == "field" and body:
        body[draw(st.sampled_from(sorted(body)))] = draw(json_values)
    elif how == "extra":
        key = draw(st.text(min_size=1, max_size=20).filter(lambda key: key not in body))
        return Case(subject, json.dumps({**body, key: draw(json_values)}).encode(), how, "")
    elif how == "nested":
        depth = draw(st.integers(1, 60))
        key = draw(st.sampled_from(sorted(body) or ["deep"]))
        data = _spliced(body, key, "[" * depth + "]" * depth)
        return Case(subject, data, how, "body: nested deeper" if depth + 1 > DEPTH_MAX else "")
    elif how == "digits":
        digits = draw(st.integers(1, 5000))
        numbers = sorted(key for key, value in body.items() if type(value) in (int, float))
        key = draw(st.sampled_from(numbers or ["n"]))
        data = _spliced(body, key, "1" + "0" * (digits - 1))
        return Case(subject, data, how, "body: a number of" if digits > NUMBER_MAX_CHARS else None)
    elif how == "long text":
        key = draw(st.sampled_from(sorted(body) or ["text"]))
        body[key] = "x" * draw(st.integers(0, 400_000))
    elif how == "big":
        size = draw(st.integers(BODY_MAX_BYTES - 16, 900_000))
        return Case(
            subject, b"{" + b" " * (size - 2) + b"}", how, "over the limit" if size > BODY_MAX_BYTES else None
        )
    elif how == "bytes":
        data = draw(st.binary(max_size=3000))
        return Case(subject, data, how, None if _is_utf8(data) else "body: not UTF-8")
    elif how == "json":
        return Case(subject, json.dumps(draw(json_values)).encode(), how)
    elif how == "other":
        other = draw(st.sampled_from([each for each in EVENT_TYPES if each != subject]))
        return Case(subject, encode(valid_messages()[other]), how, "")
    return Case(subject, json.dumps(body).encode(), how)


HOW = ("valid", "empty", "field", "extra", "nested", "digits", "long text", "big", "bytes", "json", "other")


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _batch_of_valid_tick(case: Case) -> int:
    if case.subject not in TICKS:
        return 0
    try:
        tick = decode_on(case.subject, case.body)
    except MalformedMessage:
        return 0
    return getattr(tick, "batch", None) or 0


# -- the properties --------------------------------------------------------------------------------


@pytest.mark.timeout(600)  # a long hunt (HOSTILE_MESSAGE_EXAMPLES) may take minutes
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,  # nothing written into the repository; a failure prints its example
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)
@given(case=cases())
def test_every_generated_body_is_counted_or_accepted_and_every_request_answered(
    system: System, case: Case
) -> None:
    assume(_batch_of_valid_tick(case) <= BATCH_MAX)
    problem = message_problem(case.subject, case.body)
    if case.reason is not None:  # "": malformed, for a reason the making does not fix
        assert problem is not None and case.reason in problem, (case.how, problem)
    before = system.malformed()
    if case.subject in REQUEST_TYPES:
        reply = json.loads(system.bus.request(case.subject, case.body))
        is_error = reply.get("kind") == "error"
        assert is_error == (problem is not None), reply
        if is_error:
            assert ErrorReply.model_validate(reply).error == f"malformed request: {problem}"
    else:
        system.bus.publish(case.subject, case.body)
    system.bus.publish(SENTINEL, b"")
    other = before.get("other", 0.0)
    system.until(lambda: system.malformed().get("other", 0.0) > other, "the sentinel counted")
    after = system.malformed()
    assert after.get(case.subject, 0.0) - before.get(case.subject, 0.0) == (problem is not None), problem


def _nonempty(seen: list[bytes]) -> Callable[[], bool]:
    return lambda: bool(seen)


def test_afterwards_no_service_died_and_each_still_turns_a_normal_tick(system: System) -> None:
    """Runs after the generated bodies (the same system, in file order)."""
    generations = system.bus.watch(subjects.PRODUCER_GENERATION)
    scored = system.bus.watch(subjects.JOB_SCORED)
    reports = system.bus.watch(subjects.CLEANUP_REPORT)
    for schedule, seen in (("producer", generations), ("consumer.sigma", scored), ("cleanup", reports)):
        system.bus.publish(subjects.tick(schedule), b"")
        system.until(_nonempty(seen), f"{schedule} turns a tick")
    status_log = system.data_dir / "logs" / "queue_status_hourly.log"
    lines = len(status_log.read_text(encoding="utf-8").splitlines()) if status_log.exists() else 0
    system.bus.publish(subjects.tick("monitor"), b"")
    system.until(
        lambda: status_log.exists() and len(status_log.read_text(encoding="utf-8").splitlines()) > lines,
        "the monitor writes its status line",
    )
    schedules = json.loads(system.bus.request(subjects.SCHEDULES, b""))
    assert {entry["name"] for entry in schedules["schedules"]} == set(SCHEDULES)
    assert _all_live(system.bus)
    output = system.output.read_text(encoding="utf-8", errors="replace")
    assert "exited with code" not in output and "restarting in" not in output
    assert "Traceback" not in output
    assert "dropping malformed message" in output

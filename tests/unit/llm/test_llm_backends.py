"""LLM backends against real HTTP servers on 127.0.0.1 (see ``llm_server.py``), plus the offline responder."""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import logging
import random
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import pytest

from shared.backoff import Backoff
from shared.config import BackendSettings, RetrySettings, TimeoutSettings
from shared.llm import BackendError, LLMBackend, make_backend
from shared.llm.offline import LABEL, is_weak, offline_answer
from shared.llm.retry import retry_after_s
from tests.support.llm_server import Reply, ScriptedServer

KEY_ENV = "SYNTX_TEST_LLM_KEY"
KEY = "sk-test-9f8e7d6c5b4a-secret"
HttpKind = Literal["syntx", "openai", "ollama", "anthropic"]
Kind = Literal["offline", "syntx", "openai", "ollama", "anthropic"]
Build = Callable[..., LLMBackend]


@dataclass(frozen=True)
class Case:
    kind: HttpKind
    suffix: str  # appended to the server URL to form settings.url
    path: str  # the path the backend must POST to
    missing: str  # reason fragment for a reply without the text

    def ok(self, text: str) -> Reply:
        bodies: dict[str, Any] = {
            "syntx": {"response": text},
            "openai": {"choices": [{"message": {"role": "assistant", "content": text}}]},
            "ollama": {"message": {"role": "assistant", "content": text}, "done": True},
            "anthropic": {"type": "message", "content": [{"type": "text", "text": text}]},
        }
        return Reply(json=bodies[self.kind])


CASES = [
    Case("syntx", "", "/api/chat", "missing key 'response'"),
    Case("openai", "/v1", "/v1/chat/completions", "missing key 'choices'"),
    Case("ollama", "", "/api/chat", "missing key 'message'"),
    Case("anthropic", "", "/v1/messages", "missing key 'content'"),
]


@pytest.fixture(autouse=True)
def _clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)


@pytest.fixture(params=CASES, ids=[case.kind for case in CASES])
def case(request: pytest.FixtureRequest) -> Case:
    result: Case = request.param
    return result


@pytest.fixture
async def build() -> AsyncIterator[Build]:
    made: list[LLMBackend] = []

    def _build(
        kind: Kind,
        url: str | None,
        *,
        read_s: float = 2.0,
        total_s: float = 10.0,
        attempts: int = 3,
        backoff_max_s: float = 0.5,
        concurrency: int = 8,
    ) -> LLMBackend:
        settings = BackendSettings(
            kind=kind,
            url=url,
            model="test-model",
            api_key_env=KEY_ENV,
            max_new_tokens=77,
            temperature=0.4,
            top_p=0.9,
            timeouts=TimeoutSettings(connect_s=1.0, read_s=read_s, total_s=total_s),
            retries=RetrySettings(
                max_attempts=attempts, backoff=Backoff(base_s=0.01, max_s=backoff_max_s, jitter=True)
            ),
        )
        backend = make_backend(settings, concurrency=concurrency)
        made.append(backend)
        return backend

    yield _build
    for backend in made:
        await backend.aclose()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def _fail(backend: LLMBackend, prompt: str = "Frage") -> BackendError:
    with pytest.raises(BackendError) as caught:
        await backend.complete(prompt)
    return caught.value


# --- request shape and reply parsing -------------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["", "/", "/api/chat"])
async def test_syntx_request_shape(
    server: ScriptedServer, build: Build, monkeypatch: pytest.MonkeyPatch, suffix: str
) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)  # the syntx service needs no key: it must never receive one
    server.script(Reply(json={"response": "Antwort", "metadata": {}}))
    completion = await build("syntx", server.url + suffix).complete("Über Drift")
    (request,) = server.requests
    assert (request.method, request.path) == ("POST", "/api/chat")
    assert request.json() == {
        "prompt": "Über Drift",
        "max_new_tokens": 77,
        "temperature": 0.4,
        "top_p": 0.9,
        "do_sample": True,
    }
    assert "authorization" not in request.headers
    assert (completion.text, completion.backend, completion.model) == ("Antwort", "syntx", "test-model")
    assert completion.attempts == 1 and not completion.truncated and completion.duration_s >= 0


async def test_openai_request_shape_without_key(server: ScriptedServer, build: Build) -> None:
    server.script(Reply(json={"choices": [{"message": {"content": "Hallo"}, "finish_reason": "stop"}]}))
    completion = await build("openai", server.url + "/v1").complete("Frage")
    (request,) = server.requests
    assert request.path == "/v1/chat/completions"
    assert request.json() == {
        "model": "test-model",
        "messages": [{"role": "user", "content": "Frage"}],
        "max_tokens": 77,
        "temperature": 0.4,
        "top_p": 0.9,
    }
    assert "authorization" not in request.headers
    assert (completion.text, completion.backend, completion.truncated) == ("Hallo", "openai", False)


async def test_openai_sends_bearer_key_when_set(
    server: ScriptedServer, build: Build, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)
    server.script(Reply(json={"choices": [{"message": {"content": "Teil"}, "finish_reason": "length"}]}))
    backend = build("openai", server.url + "/v1/chat/completions")
    completion = await backend.complete("Frage")
    assert server.requests[0].path == "/v1/chat/completions"
    assert server.requests[0].headers["authorization"] == f"Bearer {KEY}"
    assert completion.truncated
    assert KEY not in repr(backend) and KEY_ENV in repr(backend)


async def test_url_credentials_go_as_basic_auth_with_the_default_headers(
    server: ScriptedServer, build: Build
) -> None:
    server.script(Reply(json={"response": "Antwort", "metadata": {}}))
    backend = build("syntx", f"http://us%C3%A9r:p%40ss@127.0.0.1:{server.port}")
    await backend.complete("Frage")
    (request,) = server.requests
    assert request.headers["authorization"] == "Basic " + base64.b64encode("usér:p@ss".encode()).decode()
    assert request.headers["content-type"] == "application/json"
    assert request.headers["accept-encoding"] == "identity"  # the size cap is on the bytes that arrive
    assert request.headers["content-length"] == str(len(request.body))
    assert "usér" not in repr(backend) and "p@ss" not in repr(backend)


async def test_ollama_request_shape(server: ScriptedServer, build: Build) -> None:
    server.script(Reply(json={"message": {"role": "assistant", "content": "Ja"}, "done_reason": "length"}))
    completion = await build("ollama", server.url).complete("Frage")
    (request,) = server.requests
    assert request.path == "/api/chat"
    assert request.json() == {
        "model": "test-model",
        "messages": [{"role": "user", "content": "Frage"}],
        "stream": False,
        "options": {"temperature": 0.4, "top_p": 0.9, "num_predict": 77},
    }
    assert (completion.text, completion.backend, completion.truncated) == ("Ja", "ollama", True)


def test_make_backend_rejects_unusable_urls() -> None:
    with pytest.raises(ValueError, match="http"):
        make_backend(BackendSettings(kind="openai", url="localhost:8000/v1"))


# --- faults, for every HTTP backend -----------------------------------------------------------------------


async def test_retries_5xx_then_succeeds(
    server: ScriptedServer, build: Build, case: Case, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="shared.llm")
    server.script(Reply(status=500, body=b"boom"), Reply(status=503), case.ok("endlich"))
    completion = await build(case.kind, server.url + case.suffix).complete("Frage")
    assert (completion.text, completion.attempts, len(server.requests)) == ("endlich", 3, 3)
    assert all(request.path == case.path for request in server.requests)
    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == 2 and "attempt 1/3" in warnings[0] and "HTTP 500" in warnings[0]
    assert "attempt 2/3" in warnings[1] and all("\n" not in line for line in warnings)


async def test_5xx_until_exhausted_is_retryable(server: ScriptedServer, build: Build, case: Case) -> None:
    server.default = Reply(status=503, body=b"overloaded", content_type="text/plain")
    error = await _fail(build(case.kind, server.url + case.suffix))
    assert error.retryable and error.attempts == 3 and error.status == 503
    assert f"HTTP 503 from {server.url}{case.path} after 3 attempts" in error.reason
    assert "overloaded" in error.reason and len(server.requests) == 3


async def test_429_retry_after_is_honoured(server: ScriptedServer, build: Build, case: Case) -> None:
    server.script(Reply(status=429, headers={"Retry-After": "0.2"}), case.ok("ok"))
    completion = await build(case.kind, server.url + case.suffix).complete("Frage")
    first, second = server.requests
    assert completion.attempts == 2 and second.at - first.at >= 0.15


async def test_429_retry_after_is_capped(server: ScriptedServer, build: Build, case: Case) -> None:
    server.script(Reply(status=429, headers={"Retry-After": "3600"}), case.ok("ok"))
    backend = build(case.kind, server.url + case.suffix, backoff_max_s=0.05, total_s=3.0)
    assert (await backend.complete("Frage")).attempts == 2


async def test_400_fails_at_once(server: ScriptedServer, build: Build, case: Case) -> None:
    server.script(Reply(status=400, json={"error": "model not found"}))
    error = await _fail(build(case.kind, server.url + case.suffix))
    assert not error.retryable and error.attempts == 1 and error.status == 400
    assert "HTTP 400" in str(error) and "model not found" in str(error) and len(server.requests) == 1


async def test_html_body_is_not_retried(server: ScriptedServer, build: Build, case: Case) -> None:
    server.script(Reply(body=b"<html><body>Bad gateway</body></html>", content_type="text/html"))
    error = await _fail(build(case.kind, server.url + case.suffix))
    assert not error.retryable and error.attempts == 1
    assert "invalid reply: body is not JSON (text/html)" in error.reason


async def test_a_compressed_reply_is_invalid_and_named(
    server: ScriptedServer, build: Build, case: Case
) -> None:
    """Requests ask for ``identity`` (the size limit is on the bytes that arrive); a server that
    compresses anyway gets a reason naming its coding, not a mangled JSON error."""
    packed = gzip.compress(json.dumps(case.ok("x").json).encode())
    server.script(Reply(body=packed, headers={"Content-Encoding": "gzip"}))
    error = await _fail(build(case.kind, server.url + case.suffix))
    assert not error.retryable and error.attempts == 1
    assert error.reason == "invalid reply: body compressed (gzip), identity was asked"
    assert server.requests[0].headers["accept-encoding"] == "identity"


async def test_an_error_page_is_quoted_in_its_own_charset(
    server: ScriptedServer, build: Build, case: Case
) -> None:
    page = "Überlastet – später".encode("latin-1", errors="replace")
    server.script(Reply(status=400, body=page, content_type="text/plain; charset=ISO-8859-1"))
    error = await _fail(build(case.kind, server.url + case.suffix))
    assert "Überlastet" in error.reason


async def test_reply_without_text_is_invalid(server: ScriptedServer, build: Build, case: Case) -> None:
    server.script(Reply(json={"unexpected": True}))
    error = await _fail(build(case.kind, server.url + case.suffix))
    assert not error.retryable and error.attempts == 1 and error.status == 200
    assert error.reason == f"invalid reply: {case.missing}"


async def test_read_timeout_is_retryable(server: ScriptedServer, build: Build, case: Case) -> None:
    server.default = Reply(action="hang")
    error = await _fail(build(case.kind, server.url + case.suffix, read_s=0.1, attempts=2))
    assert error.retryable and error.attempts == 2 and error.status is None
    assert "read timeout" in error.reason and len(server.requests) == 2


async def test_overall_deadline_bounds_the_call(server: ScriptedServer, build: Build, case: Case) -> None:
    server.default = Reply(action="hang")
    started = time.monotonic()
    error = await _fail(build(case.kind, server.url + case.suffix, read_s=30.0, total_s=0.3))
    assert error.retryable and "overall deadline" in error.reason and time.monotonic() - started < 2.0


async def test_connection_refused_is_retryable(build: Build, case: Case) -> None:
    error = await _fail(build(case.kind, f"http://127.0.0.1:{_closed_port()}{case.suffix}"))
    assert error.retryable and error.attempts == 3 and "connection error" in error.reason


@pytest.mark.parametrize("action", ["truncate", "reset"])
async def test_broken_replies_are_retried(
    server: ScriptedServer, build: Build, case: Case, action: Literal["truncate", "reset"]
) -> None:
    server.script(Reply(json={"response": "abgeschnitten"}, action=action), case.ok("heil"))
    completion = await build(case.kind, server.url + case.suffix).complete("Frage")
    assert (completion.text, completion.attempts, len(server.requests)) == ("heil", 2, 2)


async def test_a_pooled_connection_dropped_without_a_reply_is_sent_again_once_on_a_new_one(
    server: ScriptedServer, build: Build, case: Case
) -> None:
    server.script(case.ok("eins"), Reply(action="reset"), case.ok("zwei"))
    backend = build(case.kind, server.url + case.suffix)
    assert (await backend.complete("Frage 1")).text == "eins"
    completion = await backend.complete("Frage 2")
    assert (completion.text, completion.attempts) == ("zwei", 1)
    assert (len(server.requests), server.connections) == (3, 2)


async def test_concurrency_bounds_connections(server: ScriptedServer, build: Build, case: Case) -> None:
    server.default = Reply(json=case.ok("x").json, delay_s=0.05)
    backend = build(case.kind, server.url + case.suffix, concurrency=2)
    results = await asyncio.gather(*(backend.complete(f"Frage {n}") for n in range(6)))
    assert len(results) == 6 and server.max_in_flight == 2


async def test_sequential_calls_reuse_one_keep_alive_connection(
    server: ScriptedServer, build: Build, case: Case
) -> None:
    server.default = case.ok("ja")
    backend = build(case.kind, server.url + case.suffix)
    for number in range(3):
        assert (await backend.complete(f"Frage {number}")).attempts == 1
    assert server.connections == 1


async def test_a_connection_the_server_closed_is_not_reused(
    server: ScriptedServer, build: Build, case: Case
) -> None:
    server.default = Reply(json=case.ok("ja").json, action="reply_and_close")
    backend = build(case.kind, server.url + case.suffix)
    for number in range(3):
        assert (await backend.complete(f"Frage {number}")).attempts == 1
    assert server.connections == 3


async def test_a_request_lost_on_a_reused_connection_goes_once_more_on_a_new_one(
    server: ScriptedServer, build: Build, case: Case
) -> None:
    ok = Reply(json=case.ok("ja").json)
    server.script(ok, Reply(action="reset"), ok)  # the second request meets a connection going away
    backend = build(case.kind, server.url + case.suffix)
    assert (await backend.complete("Frage 1")).attempts == 1
    assert (await backend.complete("Frage 2")).attempts == 1  # sent again at once: not a counted attempt
    assert len(server.requests) == 3 and server.connections == 2


async def test_a_request_lost_on_a_new_connection_is_a_failed_attempt(
    server: ScriptedServer, build: Build, case: Case
) -> None:
    server.script(Reply(action="reset"), Reply(json=case.ok("ja").json))
    backend = build(case.kind, server.url + case.suffix)
    assert (await backend.complete("Frage")).attempts == 2  # the retry policy, not the resend
    assert len(server.requests) == 2


async def test_key_never_leaks(
    server: ScriptedServer, build: Build, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv(KEY_ENV, KEY)
    echo = f"bad credentials: Bearer {KEY}".encode()
    server.script(Reply(status=503, body=echo), Reply(status=401, body=echo))
    backend = build("openai", f"http://user:pw@127.0.0.1:{server.port}/v1")
    error = await _fail(backend)
    assert error.status == 401 and "***" in error.reason
    for text in (str(error), repr(error), repr(backend), caplog.text):
        assert KEY not in text and "pw@" not in text


# --- retry timing helpers ----------------------------------------------------------------------------------


def test_retry_after_parsing() -> None:
    now = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert retry_after_s("2", now) == 2.0 and retry_after_s(" 0.25 ", now) == 0.25
    assert retry_after_s("Wed, 01 Jan 2025 12:00:07 GMT", now) == 7.0
    assert retry_after_s("Wed, 01 Jan 2025 11:00:00 GMT", now) == 0.0
    assert retry_after_s("soon", now) is None and retry_after_s(None) is None and retry_after_s("nan") is None


def test_backoff_is_full_jitter_and_capped() -> None:
    retries = RetrySettings(max_attempts=10, backoff=Backoff(base_s=1.0, max_s=5.0, jitter=True))
    rng = random.Random(1)
    delays = [retries.backoff.delay(attempt, rng) for attempt in (1, 2, 3, 8, 8, 8, 8, 8)]
    assert all(0.0 <= delay <= 5.0 for delay in delays) and delays[0] <= 1.0 and delays[1] <= 2.0
    assert len(set(delays)) == len(delays)


# --- offline responder -----------------------------------------------------------------------------------

HEADERS = ["### Driftkörperanalyse:", "### Kalibrierung:", "### Strömungsverhältnisse:"]
SIGMA = [f"{n}. Σ-{name}:" for n, name in enumerate(["DRIFTGRADIENT", "MECHANISMUSKNOTEN", "FREQUENZ"], 1)]


def _prompts(count: int) -> Iterator[str]:
    topics = ["Klimawandel", "Quantencomputer", "Stadtplanung", "Bienensterben", "Pressefreiheit"]
    for n in range(count):
        yield f"Analysiere die Struktur.\nSchreibe über {topics[n % 5]} und Nachbarschaft Nummer {n}."


def _sections(text: str, headers: list[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for block in text.split("\n\n")[1:]:
        header, _, body = block.partition("\n")
        found[header] = body.strip()
    assert set(found) <= set(headers)
    return found


async def test_offline_backend(build: Build) -> None:
    backend = build("offline", None)
    prompt = "Schreibe über Klimawandel in Europa."
    first = await backend.complete(prompt, expected_headers=SIGMA)
    again = await backend.complete(prompt, expected_headers=SIGMA)
    assert first.text == again.text and first.text.splitlines()[0] == LABEL
    assert (first.backend, first.model, first.attempts) == ("offline", "test-model", 1)


def test_offline_answers_good_and_weak() -> None:
    weak = 0
    for prompt in _prompts(40):
        sections = _sections(offline_answer(prompt, HEADERS), HEADERS)
        topic = prompt.split("über ")[1].split()[0]
        assert topic in " ".join(sections.values())
        complete = len(sections) == 3 and all(body.count(".") >= 2 for body in sections.values())
        assert complete != is_weak(prompt)
        weak += not complete
    assert 4 <= weak <= 18


def test_offline_answer_without_headers_is_still_labelled() -> None:
    text = offline_answer("Erzähle etwas über Bienensterben.")
    assert text.startswith(LABEL + "\n") and "Bienensterben" in text


async def test_the_proxy_of_the_environment_carries_the_request(
    server: ScriptedServer, build: Build, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HTTP_PROXY/HTTPS_PROXY/NO_PROXY are honoured as by any HTTP client: an API behind an operator's
    proxy is reached through it (here the loopback server plays the proxy)."""
    monkeypatch.setenv("HTTP_PROXY", server.url)
    server.script(Reply(json={"choices": [{"message": {"content": "Hallo"}, "finish_reason": "stop"}]}))
    completion = await build("openai", "http://llm.example.invalid/v1").complete("Frage")
    (request,) = server.requests
    assert request.path == "http://llm.example.invalid/v1/chat/completions"  # a proxy is asked by full URL
    assert completion.text == "Hallo"

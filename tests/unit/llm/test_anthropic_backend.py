"""Backend ``anthropic`` against a loopback server that speaks the Messages API (``POST /v1/messages``).

The server checks what the API checks (version header, key, the body's required fields) and answers in
its shapes: a message with content blocks, or an error object. The faults every HTTP backend shares
(retries, stalls, the deadline, broken connections) are run for this kind in test_llm_backends.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from pydantic import ValidationError

from shared.backoff import Backoff
from shared.config import BackendSettings, RetrySettings, TimeoutSettings
from shared.llm import BackendError, LLMBackend, make_backend
from tests.support.llm_server import Recorded, Reply, ScriptedServer

KEY = "sk-ant-test-0a1b2c3d-secret"
VERSION = "2023-06-01"
Build = Callable[..., LLMBackend]


def _error(status: int, kind: str, message: str) -> Reply:
    return Reply(status=status, json={"type": "error", "error": {"type": kind, "message": message}})


def messages_api(request: Recorded) -> Reply:
    """One Messages API exchange: the answer echoes the user's words, cut at ``max_tokens`` words."""
    if request.method != "POST" or request.path != "/v1/messages":
        return _error(404, "not_found_error", f"no route {request.method} {request.path}")
    if request.headers.get("anthropic-version") != VERSION:
        return _error(400, "invalid_request_error", "anthropic-version: header is required")
    if request.headers.get("x-api-key") != KEY:
        return _error(401, "authentication_error", "invalid x-api-key")
    body = request.json()
    missing = [key for key in ("model", "max_tokens", "messages") if key not in body]
    if missing:
        return _error(400, "invalid_request_error", f"{missing[0]}: Field required")
    return Reply(json=_message(body))


def _message(body: dict[str, Any]) -> dict[str, Any]:
    words = str(body["messages"][-1]["content"]).split()
    said = words[: body["max_tokens"]]
    return {
        "id": "msg_01",
        "type": "message",
        "role": "assistant",
        "model": body["model"],
        "content": [{"type": "text", "text": " ".join(said)}],
        "stop_reason": "max_tokens" if len(said) < len(words) else "end_turn",
        "usage": {"input_tokens": len(words), "output_tokens": len(said)},
    }


@pytest.fixture
async def api() -> AsyncIterator[ScriptedServer]:
    server = ScriptedServer(chooser=messages_api)
    await server.start()
    yield server
    await server.close()


@pytest.fixture
async def build(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Build]:
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    made: list[LLMBackend] = []

    def _build(url: str, *, max_new_tokens: int = 50, **extra: Any) -> LLMBackend:
        settings = BackendSettings(
            kind="anthropic",
            url=url,
            model="claude-test",
            max_new_tokens=max_new_tokens,
            temperature=0.4,
            timeouts=TimeoutSettings(connect_s=1.0, read_s=2.0, total_s=10.0),
            retries=RetrySettings(max_attempts=3, backoff=Backoff(base_s=0.01, max_s=0.05)),
            **extra,
        )
        made.append(make_backend(settings))
        return made[-1]

    yield _build
    for backend in made:
        await backend.aclose()


async def _fail(backend: LLMBackend) -> BackendError:
    with pytest.raises(BackendError) as caught:
        await backend.complete("Frage")
    return caught.value


async def test_the_answer_is_the_reply_s_text_with_its_token_usage(api: ScriptedServer, build: Build) -> None:
    completion = await build(api.url).complete("Erkläre die Gezeiten kurz")
    assert (completion.text, completion.backend, completion.model) == (
        "Erkläre die Gezeiten kurz",
        "anthropic",
        "claude-test",
    )
    assert (completion.truncated, completion.input_tokens, completion.output_tokens) == (False, 4, 4)
    (request,) = api.requests
    assert request.headers["x-api-key"] == KEY and "authorization" not in request.headers
    assert request.json() == {
        "model": "claude-test",
        "max_tokens": 50,
        "messages": [{"role": "user", "content": "Erkläre die Gezeiten kurz"}],
        "temperature": 0.4,
    }


@pytest.mark.parametrize("suffix", ["", "/", "/v1/messages"])
async def test_the_url_may_name_the_endpoint_or_only_the_server(
    api: ScriptedServer, build: Build, suffix: str
) -> None:
    assert (await build(api.url + suffix).complete("Hallo")).text == "Hallo"


async def test_an_answer_that_stopped_at_max_tokens_is_truncated(api: ScriptedServer, build: Build) -> None:
    completion = await build(api.url, max_new_tokens=2).complete("eins zwei drei vier")
    assert (completion.text, completion.truncated, completion.output_tokens) == ("eins zwei", True, 2)


async def test_the_text_blocks_are_joined_and_other_blocks_left_out(
    api: ScriptedServer, build: Build
) -> None:
    blocks = [
        {"type": "thinking", "thinking": "erst nachdenken"},
        {"type": "text", "text": "Teil eins, "},
        {"type": "tool_use", "id": "t1", "name": "x", "input": {}},
        {"type": "text", "text": "Teil zwei."},
    ]
    api.script(Reply(json={"type": "message", "content": blocks, "stop_reason": "end_turn"}))
    assert (await build(api.url).complete("Frage")).text == "Teil eins, Teil zwei."


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("Text", "invalid reply: 'content' is string, not an array"),
        ([{"type": "tool_use", "id": "t1"}], "invalid reply: 'content' holds no text block (1 blocks)"),
        ([{"type": "text", "text": 7}], "invalid reply: 'content[0].text' is number, not a string"),
        ([{"type": "text"}], "invalid reply: missing key 'content[0].text'"),
    ],
)
async def test_a_reply_without_usable_text_fails_at_once(
    api: ScriptedServer, build: Build, content: Any, reason: str
) -> None:
    api.script(Reply(json={"type": "message", "content": content}))
    error = await _fail(build(api.url))
    assert (error.reason, error.retryable, error.attempts) == (reason, False, 1)


async def test_a_wrong_key_is_refused_at_once_and_never_shown(
    api: ScriptedServer, build: Build, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SYNTX_TEST_ANTHROPIC_KEY", "sk-ant-wrong-9z8y7x")
    backend = build(api.url, api_key_env="SYNTX_TEST_ANTHROPIC_KEY")
    error = await _fail(backend)
    assert (error.status, error.retryable, len(api.requests)) == (401, False, 1)
    assert "authentication_error" in error.reason
    assert "9z8y7x" not in repr(backend) and "$SYNTX_TEST_ANTHROPIC_KEY" in repr(backend)


async def test_without_a_key_only_the_version_is_sent(
    api: ScriptedServer, build: Build, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    error = await _fail(build(api.url))
    (request,) = api.requests
    assert request.headers["anthropic-version"] == VERSION and "x-api-key" not in request.headers
    assert error.status == 401 and "key=None" in repr(build(api.url))


async def test_overloaded_is_retried(api: ScriptedServer, build: Build) -> None:
    api.script(_error(529, "overloaded_error", "Overloaded"))
    completion = await build(api.url).complete("Noch einmal")
    assert (completion.text, completion.attempts, len(api.requests)) == ("Noch einmal", 2, 2)


async def test_a_reply_larger_than_the_limit_fails_the_attempt(api: ScriptedServer, build: Build) -> None:
    api.script(Reply(json={"type": "message", "content": [{"type": "text", "text": "x" * 5000}]}))
    error = await _fail(build(api.url, max_response_bytes=1000))
    assert not error.retryable and "body too large" in error.reason


def test_the_kind_needs_a_url_and_a_model() -> None:
    with pytest.raises(ValidationError, match="backend kind 'anthropic' needs a url"):
        BackendSettings(kind="anthropic", model="claude-test")
    with pytest.raises(ValidationError, match="backend kind 'anthropic' needs a model"):
        BackendSettings(kind="anthropic", url="https://api.anthropic.com")

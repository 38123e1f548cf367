"""``syntx up``: the whole system on one machine — embedded NATS plus every service as a child process.

Each child's output is prefixed with its service name, like ``docker compose up``. A child that dies
is restarted with backoff; one that exits for a configuration error stops everything (exit 2).
Ctrl-C (or SIGTERM) stops the services gracefully first, then NATS. Children are tied to this
process (Linux parent-death signal), so none outlives it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from dataclasses import dataclass, field

from shared.config import CONFIG_ENV, Settings
from shared.service import CONFIG_EXIT_CODE
from shared.timing import set_within
from syntx.embedded_nats import EmbeddedNats, die_with_parent
from syntx.local_llm import LocalLLM, LocalLLMError, backend_environment

log = logging.getLogger(__name__)

STOP_MARGIN_S = 10.0
RESTART_BACKOFF_S = (1.0, 2.0, 5.0, 10.0, 30.0)
STABLE_AFTER_S = 60.0
LOCAL_LLM_EXITED_CODE = 1


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    args: tuple[str, ...]


def service_specs(settings: Settings) -> list[ServiceSpec]:
    specs = [
        ServiceSpec("scheduler", ("-m", "services.scheduler")),
        ServiceSpec("producer", ("-m", "services.producer")),
    ]
    specs += [
        ServiceSpec(f"consumer.{name}", ("-m", "services.consumer", "--wrapper", name))
        for name in settings.consumers
    ]
    specs += [
        ServiceSpec("monitor", ("-m", "services.monitor")),
        ServiceSpec("cleanup", ("-m", "services.cleanup")),
    ]
    return specs


@dataclass
class Child:
    spec: ServiceSpec
    width: int
    process: asyncio.subprocess.Process | None = None
    restarts: int = 0
    pumps: list[asyncio.Task[None]] = field(default_factory=list)

    def prefix(self) -> bytes:
        return f"{self.spec.name:<{self.width}} | ".encode()

    async def start(self, env: dict[str, str]) -> None:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            *self.spec.args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=env,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
        assert self.process.stdout is not None
        self.pumps = [asyncio.create_task(self._pump(self.process.stdout), name=f"{self.spec.name} output")]

    async def _pump(self, stream: asyncio.StreamReader) -> None:
        while line := await stream.readline():
            sys.stdout.buffer.write(self.prefix() + line)
            sys.stdout.buffer.flush()

    async def wait(self) -> int:
        assert self.process is not None
        code = await self.process.wait()
        await asyncio.gather(*self.pumps)
        return code

    def terminate(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.terminate()

    def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.kill()


class Supervisor:
    def __init__(self, settings: Settings, config_paths: list[str]) -> None:
        self._settings = settings
        self._config = ":".join(config_paths)
        self._stop = asyncio.Event()
        self._backend_env: dict[str, str] = {}
        self.exit_code = 0

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._stop.set)
        nats = None
        url = self._settings.nats.url
        if url is None:
            nats = EmbeddedNats(self._settings.data_dir / "nats", self._settings.nats.embedded_port)
            await nats.start()
            url = nats.url
            log.info(
                "embedded nats-server ready at %s (JetStream store %s)", url, self._settings.data_dir / "nats"
            )
        try:
            await self._with_local_llm(url)
        finally:
            if nats is not None:
                await nats.stop()
                log.info("embedded nats-server stopped")
        return self.exit_code

    async def _with_local_llm(self, url: str) -> None:
        """Run the services, beside a local LLM server when ``llm.local.enabled`` (``--llm local``)."""
        local_settings = self._settings.llm.local
        if not local_settings.enabled:
            await self._run_children(url)
            return
        local = LocalLLM(local_settings)
        if not await self._start_local_llm(local):
            await local.stop()
            return
        log.info("local LLM ready at %s (model %s)", local.url, local.model)
        self._backend_env = backend_environment(local_settings, local.url, list(self._settings.consumers))
        watch = asyncio.create_task(self._stop_if_it_exits(local), name="watch the local LLM")
        try:
            await self._run_children(url)
        finally:
            watch.cancel()
            await local.stop()
            log.info("local LLM stopped")

    async def _start_local_llm(self, local: LocalLLM) -> bool:
        """True once it is ready; False after Ctrl-C while the model loads, or a start error (exit 2)."""
        starting = asyncio.create_task(local.start(), name="start the local LLM")
        stopped = asyncio.create_task(self._stop.wait(), name="Ctrl-C while the model loads")
        await asyncio.wait([starting, stopped], return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        if not starting.done():
            starting.cancel()
            await asyncio.gather(starting, return_exceptions=True)
            return False
        failure = starting.exception()
        if failure is None:
            return True
        if not isinstance(failure, LocalLLMError):
            raise failure
        log.error("%s", failure)
        self.exit_code = CONFIG_EXIT_CODE
        return False

    async def _stop_if_it_exits(self, local: LocalLLM) -> None:
        """The consumers cannot work without it: an unexpected exit is said and stops everything."""
        reason = await local.exited()
        if not self._stop.is_set():
            log.error("%s; stopping everything", reason)
            self.exit_code = LOCAL_LLM_EXITED_CODE
            self._stop.set()

    def _child_env(self, url: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update(self._backend_env)
        env.update({"SYNTX_NATS__URL": url, CONFIG_ENV: self._config, "PYTHONUNBUFFERED": "1"})
        return env

    async def _run_children(self, url: str) -> None:
        specs = service_specs(self._settings)
        width = max(len(spec.name) for spec in specs)
        children = [Child(spec, width) for spec in specs]
        env = self._child_env(url)
        for child in children:
            await child.start(env)
        log.info("started %d services; Ctrl-C stops them", len(children))
        async with asyncio.TaskGroup() as group:
            for child in children:
                group.create_task(self._keep_running(child, env), name=f"keep {child.spec.name}")
            await self._stop.wait()
            await self._stop_all(children)

    async def _keep_running(self, child: Child, env: dict[str, str]) -> None:
        while True:
            started = asyncio.get_running_loop().time()
            code = await child.wait()
            if self._stop.is_set():
                return
            if code == CONFIG_EXIT_CODE:
                log.error("%s stopped on a configuration error; stopping everything", child.spec.name)
                self.exit_code = CONFIG_EXIT_CODE
                self._stop.set()
                return
            if asyncio.get_running_loop().time() - started > STABLE_AFTER_S:
                child.restarts = 0
            delay = RESTART_BACKOFF_S[min(child.restarts, len(RESTART_BACKOFF_S) - 1)]
            child.restarts += 1
            log.warning("%s exited with code %s; restarting in %.0fs", child.spec.name, code, delay)
            if await set_within(self._stop, delay):
                return
            await child.start(env)

    def _stop_grace_s(self) -> float:
        """Long enough for the slowest consumer's in-flight calls and every service's NATS drain."""
        consumers = max((c.shutdown_grace_s for c in self._settings.consumers.values()), default=0.0)
        return consumers + self._settings.nats.drain_timeout_s + STOP_MARGIN_S

    async def _stop_all(self, children: list[Child]) -> None:
        grace = self._stop_grace_s()
        log.info("stopping services (grace %.0fs)", grace)
        for child in children:
            child.terminate()
        waits = [asyncio.create_task(child.wait()) for child in children if child.process is not None]
        _done, late = await asyncio.wait(waits, timeout=grace) if waits else (set(), set())
        if late:
            for child in children:
                child.kill()
            await asyncio.gather(*late, return_exceptions=True)

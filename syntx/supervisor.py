"""``syntx up``: the whole system on one machine — embedded NATS plus every service as a child process.

Each child's output is prefixed with its service name, like ``docker compose up``; a line longer than
``up.line_max_bytes`` is cut with a marker (:mod:`syntx.lines`), so no output can stop this process.
A child that dies
is restarted with backoff (``up.restart``); one that exits for a configuration error stops everything
(exit 2), and so does a failing task of ``syntx up`` itself (exit 1).
Ctrl-C (or SIGTERM) stops the services gracefully first, then NATS. Children are tied to this
process (Linux parent-death signal), so none outlives it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from shared.config import CONFIG_ENV, SUPERVISED_AS_ENV, Settings
from shared.messaging import subjects
from shared.service import CONFIG_EXIT_CODE, reported
from shared.service_table import SERVICE_TABLE, ServiceRow, instance_names
from shared.timing import set_within
from syntx.embedded_nats import EmbeddedNats, EmbeddedNatsError, die_with_parent
from syntx.lines import bounded_lines
from syntx.local_llm import LocalLLM, LocalLLMError, backend_environment
from syntx.nats_cluster import plan_cluster

log = logging.getLogger(__name__)

MAX_REPLICAS = 5  # JetStream keeps at most five copies of a stream


@dataclass(frozen=True)
class ServiceSpec:
    name: str  # the prefix of its output lines; it learns it as SUPERVISED_AS_ENV (its own log file)
    args: tuple[str, ...]


def service_specs(settings: Settings, cluster: bool = False) -> list[ServiceSpec]:
    """Every service of the service table: once; each configured consumer as many times as its
    ``instances`` says; with ``cluster`` as many replicas as its row asks for. A service's second, third, …
    process is named as :func:`instance_names` says."""
    return [spec for row in SERVICE_TABLE for spec in _row_specs(row, settings, cluster)]


def _row_specs(row: ServiceRow, settings: Settings, cluster: bool) -> list[ServiceSpec]:
    if row.per_consumer:
        return [
            spec
            for name, consumer in settings.consumers.items()
            for spec in _instances(
                subjects.consumer_schedule(name), ("-m", row.module, "--wrapper", name), consumer.instances
            )
        ]
    return _instances(row.name, ("-m", row.module), row.cluster_replicas if cluster else 1)


def _instances(service: str, args: tuple[str, ...], count: int) -> list[ServiceSpec]:
    return [ServiceSpec(name, args) for name in instance_names(service, count)]


@dataclass
class Child:
    spec: ServiceSpec
    width: int
    line_max_bytes: int
    on_pump_end: Callable[[asyncio.Task[None]], None]
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
            env={**env, SUPERVISED_AS_ENV: self.spec.name},
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
        assert self.process.stdout is not None
        name = f"{self.spec.name} output"
        pump = asyncio.create_task(reported(self._pump(self.process.stdout), name), name=name)
        pump.add_done_callback(self.on_pump_end)
        self.pumps = [pump]

    async def _pump(self, stream: asyncio.StreamReader) -> None:
        async for line in bounded_lines(stream, self.line_max_bytes):
            sys.stdout.buffer.write(self.prefix() + line)
            sys.stdout.buffer.flush()

    async def wait(self) -> int:
        assert self.process is not None
        code = await self.process.wait()
        await asyncio.gather(*self.pumps, return_exceptions=True)  # a failed pump stopped everything
        return code

    def terminate(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.terminate()

    def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.kill()


class Supervisor:
    def __init__(self, settings: Settings, config_paths: list[str], cluster_size: int = 1) -> None:
        self._settings = settings
        self._cluster_size = cluster_size
        self._config = ":".join(config_paths)
        self._stop = asyncio.Event()
        self._backend_env: dict[str, str] = {}
        self.exit_code = 0

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._stop.set)
        nodes = self._embedded_nodes()
        if nodes:
            await asyncio.gather(*(node.start() for node in nodes))  # a cluster elects its leader together
            log.info(
                "embedded nats-server ready at %s (JetStream store %s)",
                ", ".join(node.url for node in nodes),
                self._settings.data_dir / "nats",
            )
        try:
            await self._with_local_llm(nodes)
        finally:
            self._stop.set()  # from here on, the embedded servers' exit is expected
            if nodes:
                await asyncio.gather(*(node.stop() for node in nodes))
                log.info("embedded nats-server stopped")
        return self.exit_code

    def _embedded_nodes(self) -> list[EmbeddedNats]:
        """None when NATS is configured; one server; or ``--cluster N`` nodes on consecutive ports."""
        nats, up = self._settings.nats, self._settings.up
        if nats.url or nats.servers:
            return []
        options: dict[str, Any] = {
            "start_timeout_s": up.nats_start_timeout_s,
            "stop_timeout_s": up.nats_stop_timeout_s,
            "on_output_end": self._nats_output_ended,
            "store_probe": self._settings.queue.fault_probe,
        }
        store = self._settings.data_dir / "nats"
        if self._cluster_size <= 1:
            return [EmbeddedNats(store, nats.embedded_port, **options)]
        size = range(self._cluster_size)
        plan = plan_cluster(
            store, [nats.embedded_port + i for i in size], [up.cluster_route_port + i for i in size]
        )
        return [
            EmbeddedNats(
                node.store_dir,
                node.client_port,
                plan.host,
                name=node.name,
                cluster_arguments=plan.cluster_arguments(node),
                **options,
            )
            for node in plan.nodes
        ]

    def _task_ended(self, task: asyncio.Task[None]) -> None:
        """A task of ours ended; if it failed (logged with its name) stop everything, exit 1."""
        if not task.cancelled() and task.exception() is not None:
            self._fail()

    def _nats_output_ended(self, task: asyncio.Task[None]) -> None:
        """The reader of the embedded server's output ended: a failure of ours stops everything; the
        server's exit is :meth:`_keep_nats_running`'s to handle."""
        self._task_ended(task)

    async def _keep_nats_running(self, nats: EmbeddedNats) -> None:
        """Like a service: an embedded server that exits starts again with backoff, on the same port and
        JetStream store; the services reconnect by themselves."""
        restarts = 0
        while True:
            started = asyncio.get_running_loop().time()
            code = await self._until_stopped(nats.wait())
            if self._stop.is_set():
                return
            if asyncio.get_running_loop().time() - started > self._settings.up.stable_after_s:
                restarts = 0
            restarts += 1
            delay = self._settings.up.restart.delay(restarts)
            log.warning("the embedded nats-server exited with code %s; restarting in %.1fs", code, delay)
            if await set_within(self._stop, delay):
                return
            try:
                await nats.start()
            except (TimeoutError, EmbeddedNatsError, OSError) as exc:
                log.warning("the embedded nats-server did not start again: %s", exc or type(exc).__name__)
                continue
            log.info("embedded nats-server ready again at %s (JetStream store kept)", nats.url)

    def _fail(self) -> None:
        self.exit_code = self.exit_code or 1
        self._stop.set()

    async def _with_local_llm(self, nodes: list[EmbeddedNats]) -> None:
        """Run the services, beside a local LLM server when ``llm.local.enabled`` (``--llm local``)."""
        local_settings = self._settings.llm.local
        if not local_settings.enabled:
            await self._run_children(nodes)
            return
        local = LocalLLM(local_settings)
        if not await self._start_local_llm(local):
            await local.stop()
            return
        log.info("local LLM ready at %s (model %s)", local.url, local.model)
        self._backend_env = backend_environment(local_settings, local.url, list(self._settings.consumers))
        watch = asyncio.create_task(self._keep_local_llm_running(local), name="keep the local LLM")
        watch.add_done_callback(self._task_ended)
        try:
            await self._run_children(nodes)
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

    async def _keep_local_llm_running(self, local: LocalLLM) -> None:
        """Like a service: a local LLM server that exits is said and started again with backoff, on the
        same port; meanwhile the consumers' calls fail (their backend pause holds claiming back) and
        carry on once it answers."""
        restarts = 0
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            reason = await local.exited()
            if self._stop.is_set():
                return
            if loop.time() - started > self._settings.up.stable_after_s:
                restarts = 0
            restarts += 1
            delay = self._settings.up.restart.delay(restarts)
            log.warning("%s; restarting it in %.1fs", reason, delay)
            if await set_within(self._stop, delay):
                return
            try:
                await local.start()
            except LocalLLMError as exc:
                log.warning("%s", exc)
                continue
            log.info("local LLM ready again at %s", local.url)

    def _child_env(self, nodes: list[EmbeddedNats]) -> dict[str, str]:
        env = dict(os.environ)
        env.update(self._backend_env)
        env.update({CONFIG_ENV: self._config, "PYTHONUNBUFFERED": "1"})
        if len(nodes) == 1:
            env["SYNTX_NATS__URL"] = nodes[0].url
        elif nodes:
            env["SYNTX_NATS__SERVERS"] = ",".join(node.url for node in nodes)
            if self._settings.nats.stream_replicas == 1:
                env["SYNTX_NATS__STREAM_REPLICAS"] = str(min(len(nodes), MAX_REPLICAS))
        return env

    async def _until_stopped(self, work: Coroutine[Any, Any, int | None]) -> int | None:
        """``work``'s result, or None as soon as a stop is requested (``work`` is cancelled then)."""
        task = asyncio.create_task(work)
        stopping = asyncio.create_task(self._stop.wait())
        try:
            await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
            task.cancel()
            await asyncio.gather(task, stopping, return_exceptions=True)
        return None if task.cancelled() else task.result()

    async def _run_children(self, nodes: list[EmbeddedNats]) -> None:
        specs = service_specs(self._settings, cluster=len(nodes) > 1)
        width = max(len(spec.name) for spec in specs)
        line_max = self._settings.up.line_max_bytes
        children = [Child(spec, width, line_max, self._task_ended) for spec in specs]
        env = self._child_env(nodes)
        for child in children:
            await child.start(env)
        log.info("started %d services; Ctrl-C stops them", len(children))
        async with asyncio.TaskGroup() as group:
            for node in nodes:
                group.create_task(self._keep_nats_running(node), name=f"keep nats-server {node.name}")
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
            if asyncio.get_running_loop().time() - started > self._settings.up.stable_after_s:
                child.restarts = 0
            child.restarts += 1
            delay = self._settings.up.restart.delay(child.restarts)
            log.warning("%s exited with code %s; restarting in %.1fs", child.spec.name, code, delay)
            if await set_within(self._stop, delay):
                return
            await child.start(env)

    def _stop_grace_s(self) -> float:
        """Long enough for the slowest consumer's in-flight calls and every service's NATS drain."""
        consumers = max((c.shutdown_grace_s for c in self._settings.consumers.values()), default=0.0)
        return consumers + self._settings.nats.drain_timeout_s + self._settings.up.stop_margin_s

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

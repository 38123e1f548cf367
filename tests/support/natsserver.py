"""A real nats-server per test, on a random port, JetStream on, store in a temp directory."""

from __future__ import annotations

import contextlib
import re
import socket
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

from syntx.embedded_nats import nats_server_binary
from syntx.nats_cluster import CLUSTER_READY_MARKER, ClusterNode, ClusterPlan, plan_cluster
from tests.support.stopped import paused

LISTEN = re.compile(rb"Listening for client connections on [^:\s]+:(\d+)")
READY = b"Server is ready"


@dataclass
class NatsServer:
    process: subprocess.Popen[bytes]
    port: int

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def paused(self) -> contextlib.AbstractContextManager[None]:
        """The server stalled (see :func:`paused`) for the block."""
        return paused(self.process.pid)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.process.stderr is not None:
            self.process.stderr.close()


def start_nats(
    store: Path, port: int = -1, *, jetstream: bool = True, auth: tuple[str, str] | None = None
) -> NatsServer:
    """``auth``: (user, password) the server requires of every client."""
    options = ["-js", "-sd", str(store)] if jetstream else []
    if auth is not None:
        options += ["--user", auth[0], "--pass", auth[1]]
    process = subprocess.Popen(
        [nats_server_binary(), "-a", "127.0.0.1", "-p", str(port), *options],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert process.stderr is not None
    bound = None
    lines: list[bytes] = []
    for line in process.stderr:  # ends when the server exits; readiness is a line, not a sleep
        lines.append(line)
        if match := LISTEN.search(line):
            bound = int(match.group(1))
        if READY in line and bound is not None:
            return NatsServer(process, bound)
    process.wait()
    raise RuntimeError("nats-server did not start: " + b"".join(lines[-5:]).decode(errors="replace"))


class ClusterNodeProcess:
    """One node of a test cluster; its output is read by a thread (readiness is a line, not a sleep)."""

    def __init__(self, plan: ClusterPlan, node: ClusterNode) -> None:
        self.node = node
        self._arguments = plan.arguments(node)
        self.process: subprocess.Popen[bytes] | None = None
        self._ready = threading.Event()
        self._tail: list[str] = []

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.node.client_port}"

    def start(self) -> None:
        self._ready.clear()
        self.process = subprocess.Popen(
            [nats_server_binary(), *self._arguments],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        threading.Thread(target=self._read, args=(self.process,), daemon=True).start()

    def _read(self, process: subprocess.Popen[bytes]) -> None:
        assert process.stderr is not None
        for line in process.stderr:  # drained to the end: a full pipe would stall the server
            self._tail = [*self._tail[-9:], line.decode(errors="replace").rstrip()]
            if CLUSTER_READY_MARKER in line:
                self._ready.set()
        process.stderr.close()

    def wait_ready(self, within_s: float) -> None:
        if not self._ready.wait(within_s):
            raise RuntimeError(f"{self.node.name} did not join its cluster: " + " / ".join(self._tail[-3:]))

    def kill(self) -> None:
        """SIGKILL: no goodbye to the cluster, no flush of its store."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@dataclass
class NatsCluster:
    plan: ClusterPlan
    nodes: list[ClusterNodeProcess]

    @property
    def servers(self) -> list[str]:
        return self.plan.servers

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


def start_cluster(store_root: Path, size: int = 3, within_s: float = 30) -> NatsCluster:
    """``size`` JetStream nodes on free loopback ports, as ``syntx up --cluster`` starts them."""
    ports = free_ports(2 * size)
    plan = plan_cluster(store_root, ports[:size], ports[size:])
    cluster = NatsCluster(plan, [ClusterNodeProcess(plan, node) for node in plan.nodes])
    try:
        for node in cluster.nodes:
            node.start()
        for node in cluster.nodes:
            node.wait_ready(within_s)
    except BaseException:
        cluster.stop()
        raise
    return cluster


def free_ports(count: int) -> list[int]:
    """Ports free now (held together, so they differ); a cluster's routes must be known up front."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()

"""A real nats-server per test, on a random port, JetStream on, store in a temp directory."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from syntx.embedded_nats import nats_server_binary

LISTEN = re.compile(rb"Listening for client connections on [^:\s]+:(\d+)")
READY = b"Server is ready"


@dataclass
class NatsServer:
    process: subprocess.Popen[bytes]
    port: int

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

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

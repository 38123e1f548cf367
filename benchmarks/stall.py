"""A nats-server that stops answering without closing: how long until the loop turns again.

``python -m benchmarks.stall [--pause 30] [--give-up 600]`` runs ``syntx up --demo`` in a temporary data
directory on free ports, waits until ticks reach the services, then stops the embedded nats-server with
SIGSTOP for ``--pause`` seconds (its sockets stay open: the clients see silence, not a closed
connection) and resumes it with SIGCONT. It asks ``/healthz`` and ``syntx status`` while the server is
stopped and after it resumes, and prints the time from SIGCONT to the first tick a service took up
(``tick …: processing`` or a producer ``generation``), to a tick at every ticked service, and to the
first ``syntx status`` that answers again.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.procs import free_port
from shared.config import CONFIG_ENV, DEFAULT_CONFIG

log = logging.getLogger("benchmarks.stall")

TICK_TAKEN = re.compile(r"^(\S+)\s+\|.*(?:tick \S+: processing|generation \d+:)")
TICKED = ("producer", "consumer.sigma", "consumer.syntex_system")
READY_WITHIN_S = 60.0
SYNTX = Path(sys.executable).parent / "syntx"
STATUS_WAIT_S = 10.0  # each `syntx status` may take this long before it is counted as no answer


@dataclass
class Output:
    """``syntx up``'s lines, each with the monotonic time it was read."""

    lines: list[tuple[float, str]] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def pump(self, stream: asyncio.StreamReader) -> None:
        while line := await stream.readline():
            self.lines.append((time.monotonic(), line.decode(errors="replace").rstrip()))
            self.changed.set()

    def taken_after(self, moment: float) -> dict[str, float]:
        """The first tick each service took up after ``moment``: service -> seconds after it."""
        first: dict[str, float] = {}
        for at, line in self.lines:
            if at >= moment and (match := TICK_TAKEN.match(line)):
                first.setdefault(match.group(1), at - moment)
        return first

    async def until(self, done: Callable[[], bool], within_s: float) -> bool:
        deadline = time.monotonic() + within_s
        while not done():
            self.changed.clear()
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), min(left, 1.0))
        return True


def environment(data: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("SYNTX_")}
    env.update(
        {
            CONFIG_ENV: str(DEFAULT_CONFIG),
            "SYNTX_DATA_DIR": str(data),
            "SYNTX_NATS__EMBEDDED_PORT": str(free_port()),
            "SYNTX_MONITOR__PORT": str(free_port()),
        }
    )
    return env


def nats_server_child(pid: int) -> int:
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            if parent == pid and b"nats-server" in (entry / "cmdline").read_bytes():
                return int(entry.name)
    raise RuntimeError("syntx up has no nats-server child")


def healthz(port: int) -> str:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as reply:
            return f"{reply.status} {_brief(reply.read())}"
    except urllib.error.HTTPError as error:
        return f"{error.code} {_brief(error.read())}"
    except OSError as error:
        return f"no answer ({error})"


def _brief(body: bytes) -> str:
    reply = json.loads(body)
    reasons = ", ".join(reason["code"] for reason in reply.get("reasons", []))
    return f"nats {reply['nats']}, health {reply['health']}" + (f" ({reasons})" if reasons else "")


def syntx_status(env: dict[str, str]) -> tuple[int, float, str]:
    """Exit code, seconds taken and the first line of ``syntx status``."""
    started = time.monotonic()
    try:
        done = subprocess.run(
            [str(SYNTX), "status"],
            env=env,
            capture_output=True,
            text=True,
            timeout=STATUS_WAIT_S + 10,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return -1, time.monotonic() - started, "(no exit)"
    first = (done.stdout or done.stderr).splitlines()[:1]
    return done.returncode, time.monotonic() - started, first[0] if first else ""


@asynccontextmanager
async def syntx_up(env: dict[str, str], output: Output) -> AsyncIterator[asyncio.subprocess.Process]:
    process = await asyncio.create_subprocess_exec(
        str(SYNTX),
        "up",
        "--demo",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert process.stdout is not None
    reading = asyncio.create_task(output.pump(process.stdout))
    try:
        yield process
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(process.wait(), 90)
            except TimeoutError:
                process.kill()
        reading.cancel()


async def run(pause_s: float, give_up_s: float) -> None:
    with tempfile.TemporaryDirectory(prefix="syntx-stall-") as workdir:
        env = environment(Path(workdir) / "data")
        port = int(env["SYNTX_MONITOR__PORT"])
        output = Output()
        async with syntx_up(env, output) as up:
            started = time.monotonic()
            if not await output.until(lambda: bool(output.taken_after(started)), READY_WITHIN_S):
                raise SystemExit("no tick reached a service within a minute of `syntx up`")
            server = nats_server_child(up.pid)
            os.kill(server, signal.SIGSTOP)
            stopped = time.monotonic()
            try:
                await asyncio.sleep(pause_s / 2)  # the pause is the fault: a duration, not an event
                during = await asyncio.to_thread(healthz, port)
                status_during = await asyncio.to_thread(syntx_status, env)
                await asyncio.sleep(max(0.0, stopped + pause_s - time.monotonic()))
            finally:
                os.kill(server, signal.SIGCONT)
            resumed = time.monotonic()
            answered = await _status_answers_again(env, resumed, give_up_s)
            after = await asyncio.to_thread(healthz, port)
            await output.until(lambda: set(TICKED) <= set(output.taken_after(resumed)), give_up_s)
            taken = output.taken_after(resumed)
        log.info("nats-server stopped (SIGSTOP) for %.1f s, then resumed (SIGCONT)", resumed - stopped)
        log.info("  /healthz while stopped:     %s", during)
        code, took, line = status_during
        log.info("  syntx status while stopped: exit %d after %.1f s: %s", code, took, line)
        log.info("  /healthz after resuming:    %s", after)
        log.info("  syntx status answers again: %s after SIGCONT", _seconds(answered))
        first = min(taken.values(), default=None)
        log.info("  first tick taken up:        %s after SIGCONT", _seconds(first))
        for service in TICKED:
            log.info("    %-24s%s", service, _seconds(taken.get(service)))


async def _status_answers_again(env: dict[str, str], since: float, give_up_s: float) -> float | None:
    while time.monotonic() - since < give_up_s:
        code, _, _ = await asyncio.to_thread(syntx_status, env)
        if code == 0:
            return time.monotonic() - since
    return None


def _seconds(value: float | None) -> str:
    return "none within the wait" if value is None else f"{value:.1f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pause", type=float, default=30.0, help="seconds the nats-server is stopped")
    parser.add_argument("--give-up", type=float, default=600.0, help="longest wait for the loop to turn")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    asyncio.run(run(args.pause, args.give_up))


if __name__ == "__main__":
    main()

"""The processes a benchmark starts: nats-server, LLM stubs, consumers. Every one is stopped again.

Children run in their own session (a Ctrl-C reaches only the benchmark, which stops them in order) and
get SIGTERM from the kernel should the benchmark itself die (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import yaml

from shared.config import CONFIG_ENV, DEFAULT_CONFIG, PROJECT_ROOT, SUPERVISED_AS_ENV
from shared.messaging.subjects import consumer_schedule
from shared.service_table import instance_names
from syntx.embedded_nats import die_with_parent, nats_server_binary

log = logging.getLogger(__name__)

_NATS_LISTEN = re.compile(r"Listening for client connections on [^:\s]+:(\d+)")
_NATS_READY = "Server is ready"
START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 15.0


@dataclass
class Children:
    """Owns every child process; :meth:`close` stops the survivors, newest first."""

    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    logs: list[IO[bytes]] = field(default_factory=list)

    def spawn(
        self, args: list[str], log_path: Path, env: dict[str, str] | None = None, cwd: Path = PROJECT_ROOT
    ) -> subprocess.Popen[bytes]:
        sink = log_path.open("ab")
        self.logs.append(sink)
        process = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
        self.processes.append(process)
        log.debug("started pid %d: %s", process.pid, " ".join(args))
        return process

    def stop(self, process: subprocess.Popen[bytes]) -> int:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                log.warning("pid %d ignored SIGTERM for %.0f s; killing it", process.pid, STOP_TIMEOUT_S)
                process.kill()
                process.wait()
        if process in self.processes:
            self.processes.remove(process)
        return process.returncode

    def close(self) -> None:
        for process in reversed(list(self.processes)):
            self.stop(process)
        for sink in self.logs:
            sink.close()
        self.logs.clear()


def _wait_for_line(path: Path, process: subprocess.Popen[bytes], pattern: re.Pattern[str]) -> re.Match[str]:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        text = path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""
        if match := pattern.search(text):
            return match
        if process.poll() is not None:
            raise RuntimeError(f"{path.stem} exited at start: {text[-500:]}")
        time.sleep(0.02)
    raise RuntimeError(f"{path.stem} did not start within {START_TIMEOUT_S:.0f} s")


def start_nats(children: Children, workdir: Path) -> str:
    """A nats-server with JetStream, random port, store in ``workdir``; returns its URL."""
    log_path = workdir / "nats-server.log"
    args = [nats_server_binary(), "-a", "127.0.0.1", "-p", "-1", "-js", "-sd", str(workdir / "jetstream")]
    process = children.spawn(args, log_path)
    _wait_for_line(log_path, process, re.compile(_NATS_READY))
    port = _wait_for_line(log_path, process, _NATS_LISTEN).group(1)
    return f"nats://127.0.0.1:{port}"


def start_stub(children: Children, workdir: Path, delay_s: float) -> tuple[subprocess.Popen[bytes], int]:
    """``python -m benchmarks.llm_stub`` in its own process; returns it and its port."""
    log_path = workdir / f"llm-stub-{delay_s:g}.log"
    args = [sys.executable, "-m", "benchmarks.llm_stub", "--port", "0", "--delay", str(delay_s)]
    process = children.spawn(args, log_path)
    port = int(_wait_for_line(log_path, process, re.compile(r"^port (\d+)$", re.M)).group(1))
    return process, port


def start_hostile_stub(children: Children, workdir: Path, size_mb: float) -> int:
    """``python -m benchmarks.hostile_backend --mode huge`` in its own process; returns its port."""
    log_path = workdir / "hostile-backend.log"
    args = [sys.executable, "-m", "benchmarks.hostile_backend", "--mode", "huge", "--size-mb", str(size_mb)]
    process = children.spawn(args, log_path)
    return int(_wait_for_line(log_path, process, re.compile(r"^port (\d+)$", re.M)).group(1))


def load_check(port: int, connections: int = 8, seconds: float = 1.5) -> float:
    """Requests per second the stub serves to ``benchmarks.loadgen`` running in another process."""
    args = [sys.executable, "-m", "benchmarks.loadgen", "--port", str(port)]
    args += ["--connections", str(connections), "--seconds", str(seconds)]
    run = subprocess.run(args, check=True, capture_output=True, timeout=seconds + 30, cwd=PROJECT_ROOT)
    out = run.stdout.decode()
    return float(out.split()[1])


@dataclass(frozen=True)
class ConsumerSpec:
    data_dir: Path
    nats_url: str
    backend_url: str
    concurrency: int
    watch: bool
    batch: int = 20
    queue: dict[str, Any] = field(default_factory=dict)  # queue settings (e.g. max_attempts)
    tree: Path = PROJECT_ROOT  # whose code runs: this tree, or another revision extracted (--before)


CONSUMER = "syntex_system"


def write_config(spec: ConsumerSpec) -> Path:
    config: dict[str, Any] = {
        "data_dir": str(spec.data_dir),
        "nats": {"url": spec.nats_url},
        "queue": spec.queue,
        "consumers": {
            CONSUMER: {
                "wrapper": CONSUMER,
                "backend": {
                    "kind": "syntx",
                    "url": spec.backend_url,
                    "model": "bench-stub",
                    "retries": {"max_attempts": 1},
                },
                "batch": spec.batch,
                "concurrency": spec.concurrency,
                "watch": spec.watch,
            }
        },
    }
    path = spec.data_dir / "bench.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def start_consumer(children: Children, spec: ConsumerSpec, index: int = 0) -> subprocess.Popen[bytes]:
    """``python -m services.consumer --wrapper syntex_system`` configured by ``SYNTX_*`` and a temp YAML;
    ``index`` 1, 2, …: its second, third, … instance, named as ``syntx up`` names it (its own log file)."""
    spec.data_dir.mkdir(parents=True, exist_ok=True)
    env = {key: value for key, value in os.environ.items() if not key.startswith("SYNTX_")}
    env.update(
        SYNTX_CONFIG=str(write_config(spec)),
        SYNTX_DATA_DIR=str(spec.data_dir),
        SYNTX_NATS__URL=spec.nats_url,
        PYTHONPATH=str(spec.tree),
    )
    if index:
        env[SUPERVISED_AS_ENV] = instance_names(consumer_schedule(CONSUMER), index + 1)[index]
    args = [sys.executable, "-m", "services.consumer", "--wrapper", CONSUMER]
    return children.spawn(args, spec.data_dir / output_name(index), env=env, cwd=spec.tree)


def output_name(index: int) -> str:
    """Where the output of the consumer's instance ``index`` (0: the first) goes, in its data dir."""
    return f"consumer-{index + 1}.out" if index else "consumer.out"


def peak_rss_mb(pid: int) -> float | None:
    """``VmHWM`` (peak resident set) of a live process, in MB."""
    try:
        status = Path(f"/proc/{pid}/status").read_text(encoding="ascii")
    except OSError:
        return None
    match = re.search(r"^VmHWM:\s+(\d+) kB", status, re.M)
    return int(match.group(1)) / 1024 if match else None


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time a live process has used so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text(encoding="ascii").rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def start_monitor(
    children: Children, tree: Path, nats_url: str, data: Path
) -> tuple[subprocess.Popen[bytes], int]:
    """``python -m services.monitor`` of the source ``tree`` (this one, or :func:`extracted`) with the
    shipped configuration and ``data`` as its data directory; returns it and its metrics port."""
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("SYNTX_")}
    env.update(
        {
            CONFIG_ENV: str(tree / DEFAULT_CONFIG.relative_to(PROJECT_ROOT)),
            "SYNTX_DATA_DIR": str(data),
            "SYNTX_NATS__URL": nats_url,
            "SYNTX_MONITOR__HOST": "127.0.0.1",
            "SYNTX_MONITOR__PORT": str(port),
            "PYTHONPATH": str(tree),
        }
    )
    args = [sys.executable, "-m", "services.monitor"]
    output = data.parent / f"monitor-{data.name}.out"
    process = children.spawn(args, output, env=env, cwd=tree)
    deadline = time.monotonic() + START_TIMEOUT_S
    while not _answers(f"http://127.0.0.1:{port}/metrics"):
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the monitor of {tree} did not start: see {output}")
        time.sleep(0.1)  # a poll of its port, not a wait for an event
    return process, port


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5):
            return True
    except OSError:
        return False


def extracted(revision: str, into: Path) -> Path:
    """The repository at ``revision``, as files in ``into``."""
    archive = subprocess.run(
        ["git", "archive", revision], cwd=PROJECT_ROOT, check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


async def wait_for_marker(stream: asyncio.StreamReader, marker: bytes) -> None:
    """Read a child's output until a line holds ``marker``; its last lines in the error if it ends first."""
    seen: list[bytes] = []
    while line := await stream.readline():
        seen.append(line)
        if marker in line:
            return
    raise RuntimeError("syntx up ended early:\n" + b"".join(seen[-15:]).decode(errors="replace"))


async def drain(stream: asyncio.StreamReader) -> None:
    """Read a child's output to its end, so the child never blocks on a full pipe."""
    while await stream.readline():
        pass

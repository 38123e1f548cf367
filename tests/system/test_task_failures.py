"""No background task dies silently: a failure is logged with the task's name and stops its process with a
non-zero exit; `syntx up` then starts the service again. A failing task of `syntx up` itself stops
everything with exit code 1; its embedded nats-server is restarted like a service. The failures are
planted with SYNTX_FAIL_TASKS (a real, env-configured mechanism in shared/service/tasks.py), in a real
`syntx up` with real services and an embedded NATS."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

import pytest

from shared.config import CONFIG_ENV, DEFAULT_CONFIG
from shared.service import FAIL_ENV, ServiceTasks
from tests.support.harness import free_port

BIN = Path(sys.executable).parent

# planted task -> the service it belongs to (one kind of task per service, so each restart is its own)
PLANTED = {
    "consumer.syntex_system ticks": "consumer.syntex_system",
    "consumer.sigma leases": "consumer.sigma",
    "consumer.watcher watch": "consumer.watcher",
    "producer heartbeat": "producer",
    "monitor reconcile": "monitor",
    "schedule cleanup": "scheduler",
    "cleanup ticks": "cleanup",
}
EXTRA_CONFIG = """
consumers:
  watcher: {wrapper: sigma, watch: true}
up:
  restart: {base_s: 0.5, max_s: 5}
"""


def _environment(tmp_path: Path, planted: str) -> dict[str, str]:
    extra = tmp_path / "extra.yaml"
    extra.write_text(EXTRA_CONFIG, encoding="utf-8")
    env = {key: value for key, value in os.environ.items() if not key.startswith("SYNTX_")}
    env.update(
        {
            CONFIG_ENV: f"{DEFAULT_CONFIG}:{extra}",
            FAIL_ENV: planted,
            "SYNTX_DATA_DIR": str(tmp_path / "data"),
            "SYNTX_NATS__EMBEDDED_PORT": str(free_port()),
            "SYNTX_MONITOR__PORT": str(free_port()),
        }
    )
    return env


async def _syntx_up(env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        str(BIN / "syntx"), "up", env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )


def _restarted(output: str, task: str, service: str) -> bool:
    """The task failed (logged with its name), its service exited 1, was started again and failed again."""
    return (
        output.count(f"task {task!r} failed") >= 2 and f"{service} exited with code 1; restarting" in output
    )


@pytest.mark.timeout(120)
async def test_a_failing_task_stops_its_service_and_syntx_up_restarts_it(tmp_path: Path) -> None:
    process = await _syntx_up(_environment(tmp_path, ",".join(PLANTED)))
    assert process.stdout is not None
    seen: list[str] = []

    async def every_service_restarted() -> None:
        assert process.stdout is not None
        while line := await process.stdout.readline():
            seen.append(line.decode(errors="replace"))
            output = "".join(seen)
            if all(_restarted(output, task, service) for task, service in PLANTED.items()):
                return
        raise AssertionError("syntx up ended early:\n" + "".join(seen[-30:]))

    try:
        await asyncio.wait_for(every_service_restarted(), timeout=90)
        process.send_signal(signal.SIGINT)
        rest = await asyncio.wait_for(process.stdout.read(), timeout=60)
        code = await process.wait()
    except TimeoutError:
        output = "".join(seen)
        missing = [task for task, service in PLANTED.items() if not _restarted(output, task, service)]
        raise AssertionError(f"not restarted: {missing}\n" + "".join(seen[-40:])) from None
    finally:
        if process.returncode is None:
            process.kill()
    assert code == 0, rest.decode(errors="replace")[-2000:]


def _nats_server_child(pid: int) -> int:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                command = (entry / "cmdline").read_bytes()
            except (FileNotFoundError, ProcessLookupError):
                continue
            if parent == pid and b"nats-server" in command.split(b"\0")[0]:
                return int(entry.name)
    raise AssertionError("syntx up has no nats-server child")


@pytest.mark.timeout(120)
async def test_syntx_up_restarts_its_embedded_nats_server_and_the_services_reconnect(tmp_path: Path) -> None:
    process = await _syntx_up(_environment(tmp_path, ""))
    assert process.stdout is not None
    seen: list[bytes] = []

    async def read_until(marker: bytes, times: int = 1) -> None:
        assert process.stdout is not None
        while b"".join(seen).count(marker) < times:
            line = await process.stdout.readline()
            assert line, b"".join(seen).decode(errors="replace")[-3000:]
            seen.append(line)

    try:
        async with asyncio.timeout(90):
            await read_until(b"started 7 services")
            await read_until(b"connected and ready", times=7)
            os.kill(_nats_server_child(process.pid), signal.SIGKILL)
            await read_until(b"the embedded nats-server exited with code -9; restarting")
            await read_until(b"embedded nats-server ready again")
            await read_until(b"nats: reconnected to", times=7)  # every service, by itself
        process.send_signal(signal.SIGINT)
        rest, _ = await asyncio.wait_for(process.communicate(), timeout=60)
    finally:
        if process.returncode is None:
            process.kill()
    text = (b"".join(seen) + rest).decode(errors="replace")
    assert process.returncode == 0, text[-2000:]
    assert "crashed" not in text and "Traceback" not in text


@pytest.mark.timeout(90)
async def test_a_failing_task_of_syntx_up_stops_everything_with_exit_code_1(tmp_path: Path) -> None:
    process = await _syntx_up(_environment(tmp_path, "nats-server output,monitor output"))
    try:
        output, _ = await asyncio.wait_for(process.communicate(), timeout=60)
    finally:
        if process.returncode is None:
            process.kill()
    text = output.decode(errors="replace")
    assert process.returncode == 1, text[-2000:]
    assert "task 'nats-server output' failed" in text and "task 'monitor output' failed" in text
    assert "embedded nats-server stopped" in text


async def test_service_tasks_stop_the_body_and_raise_the_failure_itself(
    caplog: pytest.LogCaptureFixture,
) -> None:
    forever = asyncio.Event()

    async def broken() -> None:
        raise RuntimeError("lost the lease file")

    with caplog.at_level(logging.ERROR), pytest.raises(RuntimeError, match="lost the lease file"):
        async with ServiceTasks() as tasks:
            tasks.start(broken(), "consumer.sigma leases")
            await asyncio.wait_for(forever.wait(), timeout=10)  # cancelled by the failure, long before
    assert "task 'consumer.sigma leases' failed; stopping" in caplog.text

"""`syntx up --demo` as a newcomer runs it: first result within 60 s, Ctrl-C leaves no process behind.
And a bad configuration value stops startup with one clear line and exit code 2."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.harness import free_port
from tests.support.natsserver import start_nats
from tests.support.up import BIN, alive, children_of, ended, first_result, process_environment, started


@pytest.mark.timeout(150)
async def test_demo_reaches_a_result_within_a_minute_and_ctrl_c_leaves_nothing(tmp_path: Path) -> None:
    seen: list[bytes] = []
    async with started(str(BIN / "syntx"), "up", "--demo", env=process_environment(tmp_path)) as process:
        await asyncio.wait_for(first_result(process, seen), timeout=60)
        children = children_of(process.pid)
        assert len(children) == 7, children  # nats-server, scheduler, producer, 2 consumers, monitor, cleanup
        process.send_signal(signal.SIGINT)
        code, output = await ended(process, seen, 60)
    assert code == 0, output[-2000:]
    assert "embedded nats-server stopped" in output
    assert not [pid for pid in children if alive(pid)]
    assert list((tmp_path / "data" / "queue" / "processed").glob("*.json")) or list(
        (tmp_path / "data" / "queue" / "error").glob("*.json")
    )


@pytest.mark.parametrize(
    ("command", "variable", "value", "key"),
    [
        (["syntx", "up"], "SYNTX_PRODUCER__BATCH", "lots", "producer.batch"),
        (
            ["python", "-m", "services.consumer", "--wrapper", "sigma"],
            "SYNTX_CONSUMERS__SIGMA__THRESHOLD",
            "150",
            "consumers.sigma.threshold",
        ),
        (["python", "-m", "services.scheduler"], "SYNTX_TIMEZONE", "Mars/Olympus", "timezone"),
        (["syntx", "up"], "SYNTX_CONSUMERS__SIGMA__INSTANCES", "33", "consumers.sigma.instances"),
    ],
)
def test_a_bad_configuration_value_stops_startup_with_one_clear_line(
    tmp_path: Path, command: list[str], variable: str, value: str, key: str
) -> None:
    executable = sys.executable if command[0] == "python" else str(BIN / command[0])
    result = subprocess.run(
        [executable, *command[1:]],
        env=process_environment(tmp_path, **{variable: value}),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    said_by = (
        "syntx up: " if command[0] == "syntx" else ""
    )  # the command names itself, a service's log line does
    assert lines[0].startswith(f"{said_by}config: {key} = {value!r}: "), lines[0]
    assert "Traceback" not in result.stderr + result.stdout


@pytest.mark.timeout(60)
async def test_a_service_that_cannot_reach_nats_still_stops_on_sigterm(tmp_path: Path) -> None:
    nobody = f"nats://127.0.0.1:{free_port()}"  # nobody listens there
    env = process_environment(tmp_path, SYNTX_NATS__URL=nobody)
    async with started(sys.executable, "-m", "services.consumer", "--wrapper", "sigma", env=env) as process:
        assert process.stdout is not None
        async with asyncio.timeout(30):
            while b"Connect call failed" not in await process.stdout.readline():
                pass
        process.send_signal(signal.SIGTERM)
        rest = await asyncio.wait_for(process.stdout.read(), timeout=10)
        assert await process.wait() == 0
    assert b"stopped before NATS" in rest


def test_a_nats_server_without_jetstream_is_a_configuration_error(tmp_path: Path) -> None:
    server = start_nats(tmp_path / "unused", jetstream=False)
    try:
        result = subprocess.run(
            [sys.executable, "-m", "services.producer"],
            env=process_environment(tmp_path, SYNTX_NATS__URL=server.url),
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        server.stop()
    assert result.returncode == 2
    assert "JetStream is not enabled there" in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr

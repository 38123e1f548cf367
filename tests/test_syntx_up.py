"""`syntx up --demo` as a newcomer runs it: first result within 60 s, Ctrl-C leaves no process behind.
And a bad configuration value stops startup with one clear line and exit code 2."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.harness import free_port
from tests.natsserver import start_nats

BIN = Path(sys.executable).parent
FIRST_RESULT = re.compile(rb"job \S+ (passed|rejected): score \d+")


def _environment(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("SYNTX_")}
    env.update(
        SYNTX_DATA_DIR=str(tmp_path / "data"),
        SYNTX_NATS__EMBEDDED_PORT=str(free_port()),
        SYNTX_MONITOR__PORT=str(free_port()),
        **extra,
    )
    return env


def _children(pid: int) -> set[int]:
    """Direct children of ``pid``, read from /proc."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except (FileNotFoundError, ProcessLookupError):
                continue
            if int(fields[1]) == pid:
                found.add(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


@pytest.mark.timeout(150)
async def test_demo_reaches_a_result_within_a_minute_and_ctrl_c_leaves_nothing(tmp_path: Path) -> None:
    process = await asyncio.create_subprocess_exec(
        str(BIN / "syntx"), "up", "--demo",
        env=_environment(tmp_path), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    assert process.stdout is not None
    seen: list[bytes] = []

    async def first_result() -> None:
        assert process.stdout is not None
        while line := await process.stdout.readline():
            seen.append(line)
            if FIRST_RESULT.search(line):
                return
        raise AssertionError("syntx up ended early:\n" + b"".join(seen[-20:]).decode(errors="replace"))

    try:
        await asyncio.wait_for(first_result(), timeout=60)
        children = _children(process.pid)
        assert len(children) == 7, children  # nats-server, scheduler, producer, 2 consumers, monitor, cleanup
        process.send_signal(signal.SIGINT)
        rest = await asyncio.wait_for(process.stdout.read(), timeout=60)
        code = await process.wait()
    finally:
        if process.returncode is None:
            process.kill()
    output = (b"".join(seen) + rest).decode(errors="replace")
    assert code == 0, output[-2000:]
    assert "embedded nats-server stopped" in output
    assert not [pid for pid in children if _alive(pid)]
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
    ],
)
def test_a_bad_configuration_value_stops_startup_with_one_clear_line(
    tmp_path: Path, command: list[str], variable: str, value: str, key: str
) -> None:
    executable = sys.executable if command[0] == "python" else str(BIN / command[0])
    result = subprocess.run(
        [executable, *command[1:]],
        env=_environment(tmp_path, **{variable: value}),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"config: {key} = {value!r}: "), lines[0]
    assert "Traceback" not in result.stderr + result.stdout


@pytest.mark.timeout(60)
async def test_a_service_that_cannot_reach_nats_still_stops_on_sigterm(tmp_path: Path) -> None:
    env = _environment(tmp_path, SYNTX_NATS__URL=f"nats://127.0.0.1:{free_port()}")  # nobody listens there
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.consumer", "--wrapper", "sigma",
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    assert process.stdout is not None
    try:
        async with asyncio.timeout(30):
            while b"Connect call failed" not in await process.stdout.readline():
                pass
        process.send_signal(signal.SIGTERM)
        rest = await asyncio.wait_for(process.stdout.read(), timeout=10)
        assert await process.wait() == 0
    finally:
        if process.returncode is None:
            process.kill()
    assert b"stopped before NATS" in rest


def test_a_nats_server_without_jetstream_is_a_configuration_error(tmp_path: Path) -> None:
    server = start_nats(tmp_path / "unused", jetstream=False)
    try:
        result = subprocess.run(
            [sys.executable, "-m", "services.producer"],
            env=_environment(tmp_path, SYNTX_NATS__URL=server.url),
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        server.stop()
    assert result.returncode == 2
    assert "JetStream is not enabled there" in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr

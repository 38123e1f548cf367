"""`syntx up` and the services as their own processes: their environment, their output, their children."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from tests.support.harness import free_port

BIN = Path(sys.executable).parent
FIRST_RESULT = re.compile(rb"job \S+ (passed|rejected): score \d+")


def process_environment(tmp_path: Path, **extra: str) -> dict[str, str]:
    """This process's environment without SYNTX_* variables: a data directory of this test, free ports."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("SYNTX_")}
    env.update(
        SYNTX_DATA_DIR=str(tmp_path / "data"),
        SYNTX_NATS__EMBEDDED_PORT=str(free_port()),
        SYNTX_MONITOR__PORT=str(free_port()),
        **extra,
    )
    return env


def children_of(pid: int) -> set[int]:
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


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


async def first_result(process: asyncio.subprocess.Process, seen: list[bytes]) -> None:
    """Read ``process``'s output into ``seen`` until a job's result is logged; it ending first fails."""
    assert process.stdout is not None
    while line := await process.stdout.readline():
        seen.append(line)
        if FIRST_RESULT.search(line):
            return
    raise AssertionError("syntx up ended early:\n" + b"".join(seen[-20:]).decode(errors="replace"))


@asynccontextmanager
async def started(*command: str, env: dict[str, str]) -> AsyncIterator[asyncio.subprocess.Process]:
    """``command`` as its own process, its output and errors on one pipe; killed on the way out if it runs."""
    process = await asyncio.create_subprocess_exec(
        *command, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    assert process.stdout is not None
    try:
        yield process
    finally:
        if process.returncode is None:
            process.kill()


async def line_with(
    process: asyncio.subprocess.Process, marker: bytes, seen: list[bytes], line_s: float
) -> None:
    """Read lines into ``seen`` up to one holding ``marker``, each within ``line_s``; an early end fails."""
    assert process.stdout is not None
    while marker not in (line := await asyncio.wait_for(process.stdout.readline(), line_s)):
        assert line, b"".join(seen).decode(errors="replace")
        seen.append(line)


async def ended(process: asyncio.subprocess.Process, seen: list[bytes], seconds: float) -> tuple[int, str]:
    """The exit code of ``process``, which is ending, and its whole output: ``seen`` and the rest."""
    assert process.stdout is not None
    rest = await asyncio.wait_for(process.stdout.read(), timeout=seconds)
    code = await process.wait()
    return code, (b"".join(seen) + rest).decode(errors="replace")

"""A supervisor that no child's output can kill: ``syntx up`` reads its services' output in bounded lines.

A service's traceback line once outgrew the 64 KiB line reader of ``syntx up`` and stopped it all (exit 1).
Here real services under a real ``syntx up`` print a 1 MB line and 100 MB without a newline (planted with
a ``sitecustomize`` module on the children's ``PYTHONPATH``: the service itself runs unchanged after it):
``syntx up`` keeps running, passes the head of each on with a marker, its memory stays where it was, and
Ctrl-C still ends it with 0. The line cutter and the service log lines are checked on their own too.
"""

from __future__ import annotations

import asyncio
import re
import signal
import tracemalloc
from pathlib import Path

import pytest

from shared.config import UpSettings
from syntx.lines import LineCutter, cut_mark
from tests.support.up import BIN, ended, process_environment, started

MB = 1024 * 1024
LINE_MAX_BYTES = UpSettings().line_max_bytes
PEAK_MB = 100  # what 100 MB of output may not reach: syntx up alone is about 40 MB
LOUD = """
import sys

PLAN = {"services.cleanup": "line", "services.scheduler": "endless"}
for module, what in PLAN.items():
    if module in sys.orig_argv:
        out = sys.stdout.buffer
        if what == "line":
            out.write(b"L" * 1_000_000 + b"\\n")
        else:
            for _ in range(100):
                out.write(b"E" * (1024 * 1024))
        out.flush()
"""


def test_the_cutter_passes_short_lines_whole_and_cuts_a_long_one_at_once() -> None:
    cutter = LineCutter(10)
    assert list(cutter.feed(b"one\ntwo\nthr")) == [b"one\n", b"two\n"]
    assert list(cutter.feed(b"ee\n" + b"x" * 25)) == [b"three\n", b"x" * 10 + cut_mark(10)]
    assert list(cutter.feed(b"y" * 1000 + b"\nafter\n")) == [b"after\n"]  # the rest of the long line: skipped
    assert list(cutter.feed(b"0123456789\nlast")) == [b"0123456789\n"]  # exactly the limit: whole
    assert list(cutter.end()) == [b"last\n"]


def test_the_cutter_holds_no_more_than_a_chunk_and_a_line_s_limit_of_an_endless_line() -> None:
    cutter = LineCutter(1000)
    chunk = b"E" * MB
    tracemalloc.start()
    try:
        out = [line for _ in range(100) for line in cutter.feed(chunk)]
        _now, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert out == [b"E" * 1000 + cut_mark(1000)]
    assert peak < 3 * MB, peak  # 100 MB went through


@pytest.mark.timeout(180)
async def test_syntx_up_survives_a_1_mb_line_and_100_mb_without_a_newline(tmp_path: Path) -> None:
    plant = tmp_path / "plant"
    plant.mkdir()
    (plant / "sitecustomize.py").write_text(LOUD, encoding="utf-8")
    env = process_environment(tmp_path, PYTHONPATH=str(plant))
    seen: list[bytes] = []
    async with started(str(BIN / "syntx"), "up", env=env) as process:
        # each service says this after its loud output: syntx up has read all of it by then
        ready = [
            b"scheduler connected and ready",
            b"cleanup connected and ready",
            b"monitor connected and ready",
        ]
        await until_seen(process, ready, seen, 90)
        peak_mb = peak_rss_mb(process.pid)
        process.send_signal(signal.SIGINT)
        code, output = await ended(process, seen, 90)
    assert code == 0, output[-2000:]
    cut = re.escape(cut_mark(LINE_MAX_BYTES).decode())
    assert re.search(rf"^cleanup +\| L{{{LINE_MAX_BYTES}}}{cut}", output, re.MULTILINE)
    assert re.search(rf"^scheduler +\| E{{{LINE_MAX_BYTES}}}{cut}", output, re.MULTILINE)
    assert "restarting in" not in output and "Traceback" not in output
    assert max(len(line) for line in output.splitlines()) < LINE_MAX_BYTES + 100
    assert peak_mb < PEAK_MB, peak_mb


async def until_seen(
    process: asyncio.subprocess.Process, markers: list[bytes], seen: list[bytes], within_s: float
) -> None:
    """Read ``process``'s lines into ``seen`` until each marker was in one of them; an early end fails."""
    assert process.stdout is not None
    async with asyncio.timeout(within_s):
        while not all(any(marker in line for line in seen) for marker in markers):
            line = await process.stdout.readline()
            assert line, b"".join(seen[-20:]).decode(errors="replace")
            seen.append(line)


def peak_rss_mb(pid: int) -> float:
    """The highest resident set ``pid`` had so far (VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmHWM for {pid}")

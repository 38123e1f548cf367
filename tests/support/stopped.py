"""A process stopped (SIGSTOP) for a block of a test, known to be stopped before the block runs.

``kill`` only queues SIGSTOP: on a busy machine the process runs on for a while (a nats-server answers a
PING, a watcher drains its notifications) — the fault a test means to show would not happen. So the
block starts once the kernel reports every thread of the process stopped.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

STOP_WITHIN_S = 10.0  # a stop the kernel has not delivered by then is a broken machine, not load
STOP_POLL_S = 0.001


@contextmanager
def paused(pid: int) -> Iterator[None]:
    """Process ``pid`` stopped (SIGSTOP) for the block, then resumed (SIGCONT) however the block ends."""
    os.kill(pid, signal.SIGSTOP)
    try:
        _wait_stopped(pid)
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def _wait_stopped(pid: int) -> None:
    deadline = time.monotonic() + STOP_WITHIN_S
    while not _every_thread_stopped(pid):
        if time.monotonic() > deadline:
            raise TimeoutError(f"process {pid} was sent SIGSTOP but did not stop within {STOP_WITHIN_S}s")
        time.sleep(STOP_POLL_S)  # the kernel offers no event for a delivered stop


def _every_thread_stopped(pid: int) -> bool:
    """Whether each thread's state in /proc is T (stopped); a thread that ended meanwhile counts as such."""
    for stat in Path(f"/proc/{pid}/task").glob("*/stat"):
        try:
            state = stat.read_text().rpartition(")")[2].split()[0]
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if state not in ("T", "t"):
            return False
    return True

"""Who holds what ``syntx up`` needs: its data directory (a locked pid file) and its TCP ports.

The data directory is claimed with an ``fcntl`` lock on ``<data_dir>/syntx-up.pid``, which holds the pid
of the ``syntx up`` that owns it; the kernel drops the lock when that process ends, however it ends, so
a pid file left behind never blocks a new start. A port is looked up in ``/proc/net/tcp{,6}`` (listening
sockets) and ``/proc/<pid>/fd`` (which process has that socket open); where ``/proc`` says nothing (another
user's process, another system), the port alone is named.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

LOCK_NAME = "syntx-up.pid"
TCP_LISTEN = "0A"
PROC = Path("/proc")


class InUse(Exception):
    """The data directory or a port is held by another process; the message names it and the fix."""


@dataclass(frozen=True)
class Holder:
    pid: int
    command: str

    def __str__(self) -> str:
        return f"pid {self.pid} ({self.command})" if self.command else f"pid {self.pid}"


@contextlib.contextmanager
def data_dir_claimed(data_dir: Path) -> Iterator[Path]:
    """Hold ``data_dir`` for this process; :class:`InUse` naming the holder if another one does."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _pid_in(fd)
            who = f"syntx up, {process(holder)}" if holder else "another syntx up"
            raise InUse(
                f"syntx up: the data directory {data_dir} is in use by {who}; stop that one first "
                f"(Ctrl-C in its terminal{f', or kill {holder}' if holder else ''}), "
                "or set SYNTX_DATA_DIR to another directory"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        try:
            yield path
        finally:
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # releases the lock


def _pid_in(fd: int) -> int | None:
    text = os.pread(fd, 32, 0).decode(errors="replace").strip()
    return int(text) if text.isdigit() else None


def process(pid: int) -> Holder:
    """``pid`` with its command line, as far as ``/proc`` shows it."""
    try:
        raw = (PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return Holder(pid, "")
    words = [word.decode(errors="replace") for word in raw.split(b"\0") if word]
    return Holder(pid, " ".join([Path(words[0]).name, *words[1:]]) if words else "")


def port_taken(host: str, port: int) -> bool:
    """True if nothing can listen on ``host:port`` now (what ``syntx up``'s servers would do)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return True
            raise
    return False


def port_holder(port: int) -> Holder | None:
    """The process listening on TCP ``port``, if ``/proc`` tells."""
    inodes = set(_listening_inodes(port))
    if not inodes:
        return None
    for pid_dir in _pid_dirs():
        with contextlib.suppress(OSError):
            for fd in (pid_dir / "fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:[") and target[8:-1] in inodes:
                    return process(int(pid_dir.name))
    return None


def _listening_inodes(port: int) -> Iterator[str]:
    for table in ("tcp", "tcp6"):
        try:
            lines = (PROC / "net" / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == TCP_LISTEN and int(local.rsplit(":", 1)[1], 16) == port:
                yield inode


def _pid_dirs() -> Iterator[Path]:
    with contextlib.suppress(OSError):
        yield from (entry for entry in PROC.iterdir() if entry.name.isdigit())


def check_port(host: str, port: int, what: str, setting: str) -> None:
    """:class:`InUse` naming the holder of ``port`` and the setting to change, if it is taken."""
    if port == 0 or not port_taken(host, port):
        return
    holder = port_holder(port)
    by = f"by {holder}" if holder else "by another process"
    raise InUse(f"syntx up: port {port} ({what}) is in use {by}; stop it, or set {setting} to a free port")

"""A real full disk for benchmarks and tests: a small tmpfs (mounting needs root) filled to its last byte."""

from __future__ import annotations

import errno
import shutil
import subprocess
from pathlib import Path

FILLER = "filler"  # the file that takes a full tmpfs's last byte
CHUNK = 64 * 1024
COMMAND_TIMEOUT_S = 30


def command(*args: str) -> subprocess.CompletedProcess[str]:
    """Run a system command (mount, chattr) and return what it said; never raises for its exit code."""
    return subprocess.run(args, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S, check=False)


def mount_tmpfs(path: Path, size_bytes: int) -> str | None:
    """Mount a tmpfs of ``size_bytes`` at ``path`` (made if missing); None, or why it cannot be."""
    path.mkdir(parents=True, exist_ok=True)
    if shutil.which("mount") is None:
        return "no mount command here"
    mounted = command("mount", "-t", "tmpfs", "-o", f"size={size_bytes}", "tmpfs", str(path))
    return None if mounted.returncode == 0 else f"cannot mount a tmpfs here: {mounted.stderr.strip()}"


def unmount(path: Path) -> None:
    command("umount", "-l", str(path))


def fill(folder: Path) -> Path:
    """Write a file into ``folder`` until its filesystem is full; the file, to free the space again."""
    filler = folder / FILLER
    for size in (CHUNK, 1):  # big chunks, then the last partial chunk's bytes one at a time
        with filler.open("ab", buffering=0) as handle:
            chunk = b"\0" * size
            try:
                while True:
                    handle.write(chunk)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
    return filler

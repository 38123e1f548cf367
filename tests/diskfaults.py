"""Real filesystem faults for tests: a small tmpfs that fills up, folders nobody may write.

Both need root (CI and this machine run tests as root); where mount or chattr is not permitted the test is
skipped with the reason. An immutable folder (``chattr +i``) refuses every change even to root, with
``EPERM`` — what a folder the service's user may not write does to it (``EACCES``), which root itself
cannot be shown.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

FILLER = "filler"  # the file that takes a full tmpfs's last byte
CHUNK = 64 * 1024


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)


@contextmanager
def tmpfs(path: Path, size_bytes: int) -> Iterator[Path]:
    """A tmpfs of ``size_bytes`` mounted at ``path`` (made if missing), unmounted on exit."""
    path.mkdir(parents=True, exist_ok=True)
    if shutil.which("mount") is None:
        pytest.skip("no mount command here")
    mounted = _run("mount", "-t", "tmpfs", "-o", f"size={size_bytes}", "tmpfs", str(path))
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        _run("umount", "-l", str(path))


def fill(folder: Path) -> Path:
    """Write a file into ``folder`` until its filesystem is full; the file, to free the space again."""
    filler = folder / FILLER
    chunk = b"\0" * CHUNK
    with filler.open("wb", buffering=0) as handle:
        try:
            while True:
                handle.write(chunk)
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
    with filler.open("ab", buffering=0) as handle:  # the last partial chunk's bytes, one at a time
        try:
            while True:
                handle.write(b"\0")
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
    return filler


@contextmanager
def immutable(*folders: Path) -> Iterator[None]:
    """``folders`` refuse every change (``chattr +i``) until the block ends."""
    if shutil.which("chattr") is None:
        pytest.skip("no chattr command here")
    done: list[Path] = []
    try:
        for folder in folders:
            result = _run("chattr", "+i", str(folder))
            if result.returncode != 0:
                pytest.skip(f"cannot make a folder immutable here: {result.stderr.strip()}")
            done.append(folder)
        yield
    finally:
        for folder in done:
            _run("chattr", "-i", str(folder))


def writable(folder: Path) -> bool:
    """Whether a file can be made in ``folder`` now."""
    probe = folder / f".writable.{os.getpid()}"
    try:
        probe.write_bytes(b"x")
    except OSError:
        return False
    probe.unlink()
    return True

"""Real filesystem faults for tests: a small tmpfs that fills up, folders nobody may write.

Both need root (CI and this machine run tests as root); where mount or chattr is not permitted the test is
skipped with the reason. An immutable folder (``chattr +i``) refuses every change even to root, with
``EPERM`` — what a folder the service's user may not write does to it (``EACCES``), which root itself
cannot be shown.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from benchmarks.disk import command, fill, mount_tmpfs, unmount

__all__ = ["fill", "immutable", "immutable_problem", "tmpfs", "tmpfs_if_permitted"]


@contextmanager
def tmpfs(path: Path, size_bytes: int) -> Iterator[Path]:
    """A tmpfs of ``size_bytes`` mounted at ``path`` (made if missing), unmounted on exit."""
    problem = mount_tmpfs(path, size_bytes)
    if problem is not None:
        pytest.skip(problem)
    try:
        yield path
    finally:
        unmount(path)


@contextmanager
def tmpfs_if_permitted(path: Path, size_bytes: int) -> Iterator[str | None]:
    """A tmpfs of ``size_bytes`` mounted at ``path`` for the block (None), or why it cannot be (nothing
    mounted): for a test that runs its other parts all the same."""
    problem = mount_tmpfs(path, size_bytes)
    try:
        yield problem
    finally:
        if problem is None:
            unmount(path)


def immutable_problem(scratch: Path) -> str | None:
    """Why folders cannot be made immutable here (tried on ``scratch``, made and left as it was), or None."""
    if shutil.which("chattr") is None:
        return "no chattr command here"
    scratch.mkdir(parents=True, exist_ok=True)
    result = command("chattr", "+i", str(scratch))
    if result.returncode != 0:
        return f"cannot make a folder immutable here: {result.stderr.strip()}"
    command("chattr", "-i", str(scratch))
    return None


@contextmanager
def immutable(*folders: Path) -> Iterator[None]:
    """``folders`` refuse every change (``chattr +i``) until the block ends."""
    if shutil.which("chattr") is None:
        pytest.skip("no chattr command here")
    done: list[Path] = []
    try:
        for folder in folders:
            result = command("chattr", "+i", str(folder))
            if result.returncode != 0:
                pytest.skip(f"cannot make a folder immutable here: {result.stderr.strip()}")
            done.append(folder)
        yield
    finally:
        for folder in done:
            command("chattr", "-i", str(folder))

"""A fault layer for the queue's filesystem calls: the code under test runs for real, on real files, and
one chosen call into one chosen folder of the queue fails with one chosen errno until it is healed.

The layer wraps the ``os`` functions the queue uses (looked up as ``os.<name>`` at every call, so a
wrapper sees them all, in threads too) and passes every call through unless it is the chosen one on a
path under the queue's root. Calls are named by what they do, and matched by the folder of the path they
write (the destination of a rename or a link):

``create`` (``os.open`` with ``O_CREAT``), ``read`` (``os.open`` without it), ``write`` (``os.write`` to a
file opened under the root), ``rename``, ``replace``, ``link``, ``unlink``, ``utime``, ``list``
(``os.scandir``), ``mkdir``.

What it cannot reach: reads through a file object (``Path.read_text``) past the ``open``, and the
``stat`` calls that ``os.DirEntry`` makes itself. Every failure it plants is counted (:attr:`Fault.hits`).
"""

from __future__ import annotations

import asyncio
import errno
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import pytest

CALLS: Final = ("create", "read", "write", "rename", "replace", "link", "unlink", "utime", "list", "mkdir")
# Every errno the queue sorts (shared/queue/faults.py): first the file's, then the queue's.
FILE_ERRNOS: Final = (errno.ENAMETOOLONG, errno.EILSEQ, errno.ENOENT)
QUEUE_ERRNOS: Final = (errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS, errno.EIO)
ERRNOS: Final = (*FILE_ERRNOS, *QUEUE_ERRNOS)


@dataclass
class Fault:
    call: str
    folder: str
    number: int
    hits: int = 0
    _hit: threading.Event = field(default_factory=threading.Event)

    def planted(self, path: Path) -> OSError:
        self.hits += 1
        self._hit.set()
        return OSError(self.number, os.strerror(self.number), str(path))

    async def wait_hit(self, within_s: float = 10.0) -> None:
        """Until the code under test has met this fault at least once."""
        if not await asyncio.to_thread(self._hit.wait, within_s):
            raise TimeoutError(f"{self.call} in {self.folder}/ was never called within {within_s}s")


class FaultLayer:
    """Install with :meth:`install`, then ``with layer.failing("link", "processed", errno.ENOSPC):``."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.fault: Fault | None = None
        self.real: dict[str, Callable[..., Any]] = {}  # the functions wrapped, for a test's own writes
        self._files: dict[int, Path] = {}  # descriptors opened under the root, for os.write
        self._lock = threading.Lock()

    @contextmanager
    def failing(self, call: str, folder: str, number: int) -> Iterator[Fault]:
        assert call in CALLS, call
        fault = Fault(call, folder, number)
        self.fault = fault
        try:
            yield fault
        finally:
            self.fault = None

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        real = self.real = {name: getattr(os, name) for name in CALLS_TO_WRAP}
        monkeypatch.setattr(os, "open", self._open(real["open"]))
        monkeypatch.setattr(os, "close", self._close(real["close"]))
        monkeypatch.setattr(os, "write", self._write(real["write"]))
        for name, call in (("rename", "rename"), ("replace", "replace"), ("link", "link")):
            monkeypatch.setattr(os, name, self._two_paths(call, real[name]))
        for name in ("unlink", "utime", "mkdir"):
            monkeypatch.setattr(os, name, self._one_path(name, real[name]))
        monkeypatch.setattr(os, "scandir", self._one_path("list", real["scandir"]))

    # -- matching ----------------------------------------------------------------------------------

    def _check(self, call: str, target: Any) -> None:
        fault = self.fault
        if fault is None or fault.call != call:
            return
        path = _as_path(target)
        if path is not None and self._folder(path) == fault.folder:
            raise fault.planted(path)

    def _folder(self, path: Path) -> str | None:
        """The queue folder ``path`` is in (a file's parent; a listed folder itself), or None."""
        absolute = Path(os.path.abspath(path))
        try:
            parts = absolute.relative_to(self.root).parts
        except ValueError:
            return None
        return parts[0] if parts else None

    # -- wrappers ----------------------------------------------------------------------------------

    def _open(self, real: Callable[..., int]) -> Callable[..., int]:
        def opened(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
            self._check("create" if flags & os.O_CREAT else "read", path)
            handle = real(path, flags, *args, **kwargs)
            target = _as_path(path)
            writing = flags & (os.O_WRONLY | os.O_RDWR)
            if writing and target is not None and self._folder(target) is not None:
                with self._lock:
                    self._files[handle] = target
            return handle

        return opened

    def _close(self, real: Callable[[int], None]) -> Callable[[int], None]:
        def closed(handle: int) -> None:
            with self._lock:
                self._files.pop(handle, None)
            real(handle)

        return closed

    def _write(self, real: Callable[[int, Any], int]) -> Callable[[int, Any], int]:
        def written(handle: int, data: Any) -> int:
            with self._lock:
                path = self._files.get(handle)
            if path is not None:
                self._check("write", path)
            return real(handle, data)

        return written

    def _two_paths(self, call: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def moved(source: Any, target: Any, *args: Any, **kwargs: Any) -> Any:
            self._check(call, target)
            return real(source, target, *args, **kwargs)

        return moved

    def _one_path(self, call: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def used(path: Any = ".", *args: Any, **kwargs: Any) -> Any:
            target = _as_path(path)
            if target is not None:
                self._check(call, target / "_" if call == "list" else target)
            return real(path, *args, **kwargs)

        return used


CALLS_TO_WRAP: Final = (
    "open",
    "close",
    "write",
    "rename",
    "replace",
    "link",
    "unlink",
    "utime",
    "mkdir",
    "scandir",
)


def _as_path(value: Any) -> Path | None:
    if isinstance(value, int):
        return None  # a descriptor: not a name
    try:
        return Path(os.fsdecode(value))
    except TypeError:
        return None

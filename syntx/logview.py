"""``syntx logs``: the services' log files merged by time, each line prefixed like ``docker compose logs``.

Every service writes ``logs/<service>.log`` and rotates it to ``<service>.log.1`` … (``.1`` the newest);
its second, third, … process under ``syntx up`` (a consumer's ``instances``, a scheduler replica) writes its
own ``logs/<service>-2.log`` …, shown beside the service's as its own stream;
a line starts with its ISO 8601 time. A line without one (a traceback's continuation) goes with the line
before it. ``--tail N`` prints the last N lines of the merged output, read from the files' ends (the cost
does not grow with the logs); follow mode starts there and then prints lines as they are appended, and
reopens a file that was rotated.
"""

from __future__ import annotations

import heapq
import os
import re
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from shared.service_table import INSTANCE_MARK

FOLLOW_POLL_S = 0.5  # how often follow mode looks for appended lines, like `tail -f`'s default of 1 s
FOLLOW_TAIL = 10  # `-f` alone starts with this many last lines, like `tail -f`
BLOCK_BYTES = 64 * 1024  # one read from a file's end
TAIL_LINE_MAX_BYTES = 64 * 1024  # a longer line is shown cut, so a file without newlines costs one block
# Lines without a time (a traceback's continuation) read beyond N to reach the line whose time they take.
CONTINUATION_MAX = 200
_ROTATED = re.compile(r"\.log\.(\d+)$")
_INSTANCE = re.compile(rf"^(.+){re.escape(INSTANCE_MARK)}([2-9]|[1-9]\d+)$")  # instance_names' second, …


def log_files(logs_dir: Path, service: str) -> list[Path]:
    """``service``'s log files, oldest first: rotated ones by descending number, then the current one."""
    rotated = sorted(
        (path for path in logs_dir.glob(f"{glob_escape(service)}.log.*") if _ROTATED.search(path.name)),
        key=lambda path: -int(_ROTATED.search(path.name).group(1)),  # type: ignore[union-attr]
    )
    current = logs_dir / f"{service}.log"
    return [*rotated, current] if current.exists() else rotated


def glob_escape(name: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", name)


def line_time(line: str) -> datetime | None:
    stamp = line.split(" ", 1)[0]
    try:
        moment = datetime.fromisoformat(stamp)
    except ValueError:
        return None
    return moment if moment.tzinfo else None


def _file_lines(paths: Iterable[Path]) -> Iterator[str]:
    for path in paths:
        try:
            with path.open(encoding="utf-8", errors="replace") as handle:
                for raw in handle:
                    yield raw.rstrip("\n")
        except FileNotFoundError:  # rotated away while we read: its lines are in the next file
            continue


def _lines_backwards(path: Path) -> Iterator[str]:
    """The lines of ``path``, the last first, read block by block from the end (a longer line than
    :data:`TAIL_LINE_MAX_BYTES` keeps its head)."""
    with path.open("rb") as handle:
        end = handle.seek(0, os.SEEK_END)
        rest = b""
        first = True
        while end > 0:
            start = max(0, end - BLOCK_BYTES)
            handle.seek(start)
            rest = handle.read(end - start) + rest
            end = start
            earlier, *lines = rest.split(b"\n")
            rest = earlier[:TAIL_LINE_MAX_BYTES]
            for line in reversed(lines):
                if not (first and line == b""):  # the newline that ends the file
                    yield line[:TAIL_LINE_MAX_BYTES].decode("utf-8", errors="replace")
                first = False
        if rest:
            yield rest.decode("utf-8", errors="replace")


def _last_raw_lines(paths: list[Path], count: int) -> list[str]:
    """At least the last ``count`` lines of ``paths`` (oldest file first) in order, reaching back to a
    line with a time (the continuation lines after it take it), at most :data:`CONTINUATION_MAX` more."""
    found: list[str] = []
    for path in reversed(paths):
        try:
            for line in _lines_backwards(path):
                found.append(line)
                enough = len(found) >= count and line_time(line) is not None
                if enough or len(found) >= count + CONTINUATION_MAX:
                    return found[::-1]
        except FileNotFoundError:  # rotated away while we read: its lines are in the next file
            continue
    return found[::-1]


def _timed(lines: Iterable[str]) -> Iterator[tuple[datetime, str]]:
    """Each line with the time of the last line that had one (lines before any time are dropped)."""
    last: datetime | None = None
    for line in lines:
        last = line_time(line) or last
        if last is not None:
            yield last, line


def tail(logs_dir: Path, services: list[str], since: datetime | None, count: int) -> list[tuple[str, str]]:
    """The last ``count`` (service, line) of :func:`merged`, from each service's last lines only."""
    streams = []
    for index, service in enumerate(services):
        lines = _timed(_last_raw_lines(log_files(logs_dir, service), count))
        streams.append([(moment, index, service, line) for moment, line in lines])
    ordered = heapq.merge(*streams, key=lambda item: (item[0], item[1]))
    wanted = [(service, line) for moment, _i, service, line in ordered if since is None or moment >= since]
    return wanted[-count:] if count else []


def merged(logs_dir: Path, services: list[str], since: datetime | None) -> Iterator[tuple[str, str]]:
    """(service, line) of every service, ordered by time (stable within one service)."""
    streams = [_keyed(logs_dir, index, service) for index, service in enumerate(services)]
    for moment, _index, service, line in heapq.merge(*streams, key=lambda item: (item[0], item[1])):
        if since is None or moment >= since:
            yield service, line


def _keyed(logs_dir: Path, index: int, service: str) -> Iterator[tuple[datetime, int, str, str]]:
    for moment, line in _timed(_file_lines(log_files(logs_dir, service))):
        yield moment, index, service, line


@dataclass
class _Tail:
    service: str
    path: Path
    inode: int | None = None
    offset: int = 0
    partial: str = ""

    def start_at_end(self) -> None:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return
        self.inode, self.offset = stat.st_ino, stat.st_size

    def new_lines(self) -> list[str]:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return []
        if stat.st_ino != self.inode or stat.st_size < self.offset:  # rotated or truncated
            self.inode, self.offset, self.partial = stat.st_ino, 0, ""
        if stat.st_size == self.offset:
            return []
        with self.path.open("rb") as handle:
            handle.seek(self.offset)
            data = handle.read()
        self.offset += len(data)
        *lines, self.partial = (self.partial + data.decode("utf-8", errors="replace")).split("\n")
        return lines


def prefix(service: str, width: int) -> str:
    return f"{service:<{width}} | "


def show(logs_dir: Path, services: list[str], since: datetime | None, count: int | None = None) -> int:
    """Print the merged lines (the last ``count`` of them, if given); the number printed."""
    width = max(map(len, services))
    shown = merged(logs_dir, services, since) if count is None else tail(logs_dir, services, since, count)
    printed = 0
    for service, line in shown:
        sys.stdout.write(prefix(service, width) + line + "\n")
        printed += 1
    sys.stdout.flush()
    return printed


def follow(logs_dir: Path, services: list[str], since: datetime | None, count: int | None) -> None:
    """:func:`show`, then every line appended from now on, until Ctrl-C (KeyboardInterrupt)."""
    follows = [_Tail(service, logs_dir / f"{service}.log") for service in services]
    for followed in follows:
        followed.start_at_end()  # what is there now is shown by show(); nothing is printed twice
    show(logs_dir, services, since, count)
    width = max(map(len, services))
    while True:
        for followed in follows:
            for line in followed.new_lines():
                sys.stdout.write(prefix(followed.service, width) + line + "\n")
        sys.stdout.flush()
        time.sleep(FOLLOW_POLL_S)  # polling, like tail -f: a log file gives no event to wait on


def known_services(logs_dir: Path, configured: list[str]) -> list[str]:
    """The configured services, then any other service that left a log (a removed consumer …); not the
    logs of a service's other instances (:func:`with_instances` adds those)."""
    found = _logged(logs_dir)
    services = set(configured) | found
    strangers = {name for name in found if _instance_of(name) not in services}
    return configured + sorted(strangers - set(configured) - NOT_SERVICE_LOGS)


def with_instances(logs_dir: Path, services: list[str], known: list[str]) -> list[str]:
    """Each of ``services`` followed by its other instances that left a log (``consumer.sigma-2`` …), in
    the order of their numbers; a name in ``known`` is a service of its own, never an instance."""
    found = _logged(logs_dir) - set(known)
    named: list[str] = []
    for service in services:
        others = sorted(
            (name for name in found if _instance_of(name) == service),
            key=lambda name: int(name.rsplit(INSTANCE_MARK, 1)[1]),
        )
        named += [service, *others]
    return list(dict.fromkeys(named))


def _logged(logs_dir: Path) -> set[str]:
    """Every name a log file in ``logs_dir`` is written under."""
    if not logs_dir.is_dir():
        return set()
    return {
        _ROTATED.sub("", name).removesuffix(".log")
        for name in os.listdir(logs_dir)
        if name.endswith(".log") or _ROTATED.search(name)
    }


def _instance_of(name: str) -> str | None:
    """The service whose second, third, … instance writes under ``name`` (``consumer.sigma-2``), if any."""
    match = _INSTANCE.match(name)
    return match.group(1) if match else None


NOT_SERVICE_LOGS = frozenset({"queue_status_hourly"})

"""A child's output, line by line, with no line limit that can raise and no memory that grows with a line.

``asyncio.StreamReader.readline`` raises on a line over its 64 KiB limit, which once ended ``syntx up``
on a service's long traceback line. :func:`bounded_lines` reads chunks instead: a line longer than
``max_bytes`` is passed on at once as its first ``max_bytes`` and a marker saying it was cut; the rest up
to its newline is skipped. Whatever a child prints, one chunk and one line's limit are held at a time.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Iterator
from typing import Final

CHUNK_BYTES: Final = 64 * 1024  # one read of the pipe
# nats-server's and llama.cpp's lines are a few hundred bytes; a longer one is cut like a service's.
THIRD_PARTY_LINE_MAX_BYTES: Final = 16 * 1024


def cut_mark(max_bytes: int) -> bytes:
    """What follows the head of a line that was cut."""
    return f" … [line cut: longer than {max_bytes} bytes]\n".encode()


class LineCutter:
    """Splits chunks into lines of at most ``max_bytes`` (plus the newline or the cut mark)."""

    def __init__(self, max_bytes: int) -> None:
        self._max = max_bytes
        self._line = bytearray()
        self._cut = False  # the current line was passed on cut: skip to its end

    def feed(self, chunk: bytes) -> Iterator[bytes]:
        *ended, rest = chunk.split(b"\n")
        for piece in ended:
            yield from self._grow(piece)
            if not self._cut:
                yield bytes(self._line) + b"\n"
            self._line.clear()
            self._cut = False
        yield from self._grow(rest)

    def end(self) -> Iterator[bytes]:
        """The last line when the output ends without a newline."""
        if self._line and not self._cut:
            yield bytes(self._line) + b"\n"
        self._line.clear()

    def _grow(self, piece: bytes) -> Iterator[bytes]:
        if self._cut:
            return
        self._line += piece
        if len(self._line) > self._max:
            yield bytes(self._line[: self._max]) + cut_mark(self._max)
            self._line.clear()
            self._cut = True


async def bounded_lines(stream: asyncio.StreamReader, max_bytes: int) -> AsyncGenerator[bytes, None]:
    """Every line of ``stream`` ending in a newline; a line longer than ``max_bytes`` cut (see above)."""
    cutter = LineCutter(max_bytes)
    while chunk := await stream.read(CHUNK_BYTES):
        for line in cutter.feed(chunk):
            yield line
    for line in cutter.end():
        yield line

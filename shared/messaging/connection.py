"""The connection to NATS: nats-py's client with one of its faults mended, and whether it is up now.

**The fault (nats-py 2.16.0, the newest release; its main branch of June 2026 too).** ``Client.flush``
(and ``Client.rtt``) sends a PING and waits for the PONG; on a timeout it cancels its future but leaves
it in ``Client._pongs``, the futures waiting for PONGs in order. When the server answers after all — a
nats-server that was stopped (SIGSTOP) and resumed, or one slower than the timeout — ``_process_pong``
pops that cancelled future and calls ``set_result`` on it: ``InvalidStateError``. ``_read_loop`` catches
it as any exception, logs "nats: encountered error" and *ends*: the client reads nothing more, yet its
status stays CONNECTED. No message, no reply, no PONG arrives until the client's own pings go unanswered
``max_outstanding_pings`` times (2 × 2 min by default) and it reconnects — 4 to 6 minutes in which every
service is deaf and says it is connected. ``tests/service/messaging/test_stalled_nats.py`` shows it with
nats-py's own client; that test fails once nats-py mends it, and :class:`Client` can go.

**Here** a PONG still answers the oldest PING (a server answers them in order), but one whose waiter gave
up is dropped instead of completed. And a reconnect try whose handshake timed out (a stopped server's
kernel still accepts the connection, the server never says INFO) closes its socket before the next try;
nats-py leaves it to the garbage collector. Together with short client pings (``nats.ping_interval_s``,
``nats.max_outstanding_pings``: a server that stops answering is a lost connection within seconds, and
the client reconnects on its own), a stalled server is a fault that is noticed and ends by itself.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import nats.aio.client
import nats.errors


class Client(nats.aio.client.Client):
    """nats-py's client, whose reader survives a PONG for a flush that timed out (see the module)."""

    async def _process_pong(self) -> None:
        if self._pongs and self._pongs[0].done():  # its flush gave up waiting: the PONG is late, not lost
            self._pongs.pop(0)
            self._pongs_received += 1
            self._pings_outstanding = 0
            return
        await super()._process_pong()

    async def _connect_to_server(self, s: Any) -> None:
        if self._transport is not None and self.is_reconnecting:
            self._transport.close()  # type: ignore[no-untyped-call]  # the last try's socket
        await super()._connect_to_server(s)


class Unreachable(nats.errors.NoServersError):
    """No server could be connected to; ``silent``: one accepted the connection but never answered (a
    stopped or overloaded nats-server), rather than refusing it (nothing listens)."""

    def __init__(self, last_error: Exception | None) -> None:
        super().__init__()
        self.silent = isinstance(last_error, TimeoutError)  # nats-py's TimeoutError is one too


@dataclass
class Link:
    """Whether the connection is up; since when it is not, and the client's last error."""

    clock: Callable[[], float] = time.monotonic
    down_since: float | None = None
    last_error: Exception | None = None

    def lost(self) -> None:
        if self.down_since is None:
            self.down_since = self.clock()
            self.last_error = None

    def complain(self, error: Exception) -> None:
        """The client's latest error (while down: why reconnecting fails)."""
        self.last_error = error

    def restored(self) -> None:
        self.down_since = None
        self.last_error = None

    def down_for_s(self) -> float | None:
        """Seconds the connection has been down; None while it is up."""
        return None if self.down_since is None else self.clock() - self.down_since

    @property
    def problem(self) -> str:
        """The last error in a few words ("" if none)."""
        if self.last_error is None:
            return ""
        return (str(self.last_error) or type(self.last_error).__name__).removeprefix("nats: ")

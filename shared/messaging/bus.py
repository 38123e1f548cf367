"""A thin typed layer over nats-py: connect, publish, emit, request, serve, subscribe; drains on exit.

Nothing outside :mod:`shared.messaging` sees nats-py's client: a plain subscription hands over a
:class:`Delivery` (subject and body), and the ticks of a schedule are a
:class:`~shared.messaging.ticks.TickSubscription`.

Every body is decoded by :mod:`shared.messaging.decoding`. Malformed messages are logged, counted in
:attr:`Bus.malformed` and dropped — a malformed request is answered with an :class:`ErrorReply`, as is one
its responder failed on, so no caller waits for its timeout; a failing handler is logged and never stops
delivery.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import nats.errors
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js import api as js_api
from nats.js.errors import APIError, BadRequestError, BucketNotFoundError, ServiceUnavailableError
from nats.js.kv import KeyValue
from pydantic import BaseModel

from shared.config import ConfigError, NatsSettings, Overlap
from shared.messaging import subjects
from shared.messaging.bodies import MalformedMessage
from shared.messaging.connection import Client, Link, Unreachable
from shared.messaging.decoding import decode_event, decode_request, decode_tick
from shared.messaging.inflight import InFlight, guarded
from shared.messaging.malformed import MalformedLog
from shared.messaging.messages import (
    REQUEST_TYPES,
    Event,
    OverlapOutcome,
    Request,
    Tick,
    TickOverlapped,
    encode,
)
from shared.messaging.replies import ErrorReply
from shared.messaging.ticks import TickSubscription
from shared.names import clipped
from shared.timing import set_within

log = logging.getLogger(__name__)

R = TypeVar("R", bound=Request)
T = TypeVar("T")
# JetStream's error codes: a stream of that name exists with another configuration; not enough peers (yet)
# to place a replicated stream or bucket on (a cluster that has lost its quorum or is still forming).
STREAM_EXISTS_OTHERWISE = 10058
NO_PEERS_YET = 10005
EventHandler = Callable[[Event], Awaitable[None]]
Responder = Callable[[R], Awaitable[BaseModel]]
REQUEST_SUBJECT: dict[type[Request], str] = {model: subject for subject, model in REQUEST_TYPES.items()}

MALFORMED_SUBJECTS_MAX = 100  # made-up subjects beyond this are counted together
OTHER_SUBJECT = "other"


@dataclass(frozen=True)
class Delivery:
    """A message as a plain subscription receives it: its subject and its body, not decoded yet."""

    subject: str
    data: bytes


DeliveryHandler = Callable[[Delivery], Awaitable[None]]


class Bus:
    def __init__(
        self, nc: Client, settings: NatsSettings, link: Link | None = None, stop: asyncio.Event | None = None
    ) -> None:
        self._nc = nc
        self.link = link or Link()  # kept by :func:`connect`: since when the connection is down
        self._js: JetStreamContext = nc.jetstream()
        self._settings = settings
        # Start-up steps that need JetStream wait for it until this is set; without it (a command) the
        # first failure is raised: a command says so in one line rather than waiting.
        self._stop = stop
        self.malformed: Counter[str] = Counter()
        self._reports: set[asyncio.Future[None]] = set()
        self._requests = InFlight()
        self._malformed_log = MalformedLog(log, settings.malformed_log_interval_s)

    @property
    def connected(self) -> bool:
        """Whether the client holds a connection now (it may know before its callback says so)."""
        return bool(self._nc.is_connected)

    async def ensure_streams(self) -> None:
        await self._ensure_stream(
            js_api.StreamConfig(
                name=subjects.TICK_STREAM,
                subjects=[subjects.TICK_ALL],
                duplicate_window=self._settings.duplicate_window_s,
                max_age=self._settings.tick_stream_max_age_s,
                storage=js_api.StorageType.FILE,
                num_replicas=self._settings.stream_replicas,
            )
        )
        await self._ensure_stream(
            js_api.StreamConfig(
                name=subjects.EVENT_STREAM,
                subjects=list(subjects.EVENT_SUBJECTS),
                max_age=self._settings.stream_max_age_s,
                storage=js_api.StorageType.FILE,
                num_replicas=self._settings.stream_replicas,
            )
        )

    async def _ensure_stream(self, config: js_api.StreamConfig) -> None:
        async def ensure() -> None:
            try:
                await self._js.add_stream(config)
            except BadRequestError as exc:
                if exc.err_code != STREAM_EXISTS_OTHERWISE:
                    raise
                await self._js.update_stream(config)  # exists with another config: bring it to ours

        await self.once_jetstream_answers(ensure, f"stream {config.name}")

    async def key_value(self, bucket: str, ttl_s: float | None = None) -> KeyValue:
        """The JetStream key-value bucket, created (with ``nats.stream_replicas`` copies) if missing."""

        async def bucket_or_new() -> KeyValue:
            try:
                return await self._js.key_value(bucket)
            except BucketNotFoundError:
                config = js_api.KeyValueConfig(
                    bucket=bucket,
                    history=1,
                    ttl=ttl_s,
                    replicas=self._settings.stream_replicas,
                    storage=js_api.StorageType.FILE,
                )
                return await self._js.create_key_value(config)

        return await self.once_jetstream_answers(bucket_or_new, f"key-value bucket {bucket}")

    async def once_jetstream_answers(self, step: Callable[[], Awaitable[T]], what: str) -> T:
        """``step``, a request to JetStream made at a service's start, tried again with the resubscribe
        backoff (as tick subscriptions are) while JetStream cannot answer yet — a cluster electing its
        leaders or without a quorum, a restarting server — until the service is told to stop."""
        failures = 0
        while True:
            try:
                return await step()
            except (TimeoutError, APIError) as exc:
                if self._stop is None or not _not_answering_yet(exc):
                    raise
                failures += 1
                delay = self._settings.resubscribe.delay(failures)
                said = str(exc) or type(exc).__name__
                log.warning("%s: JetStream does not answer yet (%s); trying again in %gs", what, said, delay)
                if await set_within(self._stop, delay):
                    raise StoppedWhileConnecting(f"stopped before JetStream answered ({what})") from exc

    async def emit(self, subject: str, message: BaseModel) -> None:
        """Publish an event without waiting: the stream on the subject stores it all the same.

        Events only notify; the files are the truth. Not waiting for the stream's acknowledgement keeps
        a round trip per job off the consumer's hot path.
        """
        await self._nc.publish(subject, encode(message))

    async def publish(self, subject: str, message: BaseModel, *, msg_id: str | None = None) -> None:
        """Publish into JetStream and wait for the stream's acknowledgement (a tick must be stored to be
        delivered). Retried with the same ``msg_id`` — the stream drops duplicates; raises when it fails."""
        headers = {"Nats-Msg-Id": msg_id} if msg_id else None
        data = encode(message)
        tries = self._settings.publish_attempts
        for attempt in range(1, tries + 1):
            try:
                await self._js.publish(
                    subject, data, headers=headers, timeout=self._settings.connect_timeout_s
                )
                return
            except (TimeoutError, nats.errors.Error) as exc:
                if attempt == tries:
                    raise
                log.warning("publish on %s failed (%s); trying again", subject, exc)
                # a pause between tries, not a wait for an event
                await asyncio.sleep(self._settings.publish_backoff.delay(attempt))

    async def subscribe_events(self, subject: str, handler: EventHandler) -> Subscription:
        async def on_message(msg: Msg) -> None:
            try:
                event = decode_event(msg.data, msg.subject)
            except MalformedMessage as exc:
                self._count_malformed(msg.subject, exc.reason)
                return
            await guarded(handler(event), f"handler for {msg.subject}")

        return await self._nc.subscribe(subject, cb=on_message)

    async def subscribe(self, subject: str, handler: DeliveryHandler) -> None:
        """Every message on ``subject`` (wildcards allowed) as it comes, undecoded: the handler judges it."""
        await self._nc.subscribe(subject, cb=_delivering(handler))

    async def ask_for_heartbeats(self) -> None:
        """Ping every service: each answers with a heartbeat (:func:`shared.service.presence`)."""
        await self._nc.publish(subjects.SERVICE_PING, b"")

    async def watch_stream(self, subject: str, handler: DeliveryHandler) -> None:
        """Messages as the stream stored them, from now on: de-duplicated (a tick that several scheduler
        replicas published for one slot arrives once), unlike a plain subscription."""

        async def watch() -> None:
            await self._js.subscribe(
                subject,
                cb=_delivering(handler),
                ordered_consumer=True,
                deliver_policy=js_api.DeliverPolicy.NEW,
            )

        await self.once_jetstream_answers(watch, f"the watch of {subject}")

    async def serve(self, request: type[R], responder: Responder[R], *, queue: str) -> Subscription:
        """Answer the requests of the subject that carries ``request``: with ``responder``'s reply, or an
        :class:`ErrorReply` when the request is malformed (counted) or the responder failed (logged)."""
        subject = REQUEST_SUBJECT[request]

        async def on_request(msg: Msg) -> None:
            try:
                asked = decode_request(request, msg.data)
            except MalformedMessage as exc:
                self._count_malformed(msg.subject, exc.reason)
                await _answer(msg, ErrorReply(subject=subject, error=f"malformed request: {exc.reason}"))
                return
            await _answer(msg, await _replied(subject, responder(asked)))

        cb = self._requests.side_by_side(on_request, f"request on {subject}")
        return await self._nc.subscribe(subject, queue=queue, cb=cb)

    async def request(self, subject: str, payload: bytes, wait_s: float) -> bytes:
        """The reply's body; raises :data:`~shared.messaging.errors.NoResponders` when nobody serves
        ``subject``, :data:`~shared.messaging.errors.RequestTimeout` when no answer came in time."""
        reply = await self._nc.request(subject, payload, timeout=wait_s)
        data: bytes = reply.data
        return data

    async def subscribe_ticks(self, schedule: str, overlap: Overlap = "queue_one") -> TickSubscription:
        """Create (or bind to) the durable tick consumer now, so no tick after this call is missed.
        ``overlap``: what a tick that arrives during a run does (:mod:`shared.messaging.overlap`).

        If JetStream cannot answer yet (a cluster still electing leaders), the subscription is made by
        :meth:`TickSubscription.run`, tried again with the resubscribe backoff, instead of failing the
        service's start: its other work (watching, rescans) goes on meanwhile."""
        subscription = TickSubscription(self, schedule, self._settings, overlap)
        await subscription.subscribe()
        return subscription

    def report_overlap(self, schedule: str, outcome: OverlapOutcome) -> None:
        """Tell the monitor a tick was skipped, queued or ran alongside another (fire and forget)."""
        event = TickOverlapped(schedule=schedule, outcome=outcome)
        task = asyncio.ensure_future(self.emit(subjects.TICK_OVERLAP, event))
        self._reports.add(task)
        task.add_done_callback(self._reported)

    def _reported(self, task: asyncio.Future[None]) -> None:
        self._reports.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.warning("could not report a tick overlap: %s", exc)

    async def tick_consumer(self, schedule: str) -> JetStreamContext.PullSubscription:
        config = js_api.ConsumerConfig(
            deliver_policy=js_api.DeliverPolicy.NEW,
            ack_policy=js_api.AckPolicy.EXPLICIT,
            ack_wait=30.0,
            inactive_threshold=7 * 86400.0,
        )
        return await self._js.pull_subscribe(
            subjects.tick(schedule),
            durable=subjects.durable_name(schedule),
            stream=subjects.TICK_STREAM,
            config=config,
        )

    async def ack_tick(self, msg: Msg, schedule: str) -> Tick | None:
        await msg.ack()  # a tick means "run now": acknowledged on receipt, the queue on disk is the truth
        try:
            return decode_tick(msg.data, schedule)
        except MalformedMessage as exc:
            self._count_malformed(msg.subject, exc.reason)
            return None

    def _count_malformed(self, subject: str, reason: str) -> None:
        known = subject in self.malformed or len(self.malformed) < MALFORMED_SUBJECTS_MAX
        self.malformed[subject if known else OTHER_SUBJECT] += 1
        self.note_malformed(subject, reason)

    def note_malformed(self, subject: str, reason: str) -> None:
        """Log a dropped message: at most one line per subject per ``nats.malformed_log_interval_s``."""
        self._malformed_log.note(subject, reason)

    async def flush(self) -> None:
        await self._nc.flush()

    async def close(self) -> None:
        """End what is still being handled (after the connection drained)."""
        await self._requests.close()


def _delivering(handler: DeliveryHandler) -> Callable[[Msg], Awaitable[None]]:
    """A nats-py callback that hands ``handler`` each message as a :class:`Delivery`."""

    async def on_message(msg: Msg) -> None:
        await handler(Delivery(msg.subject, msg.data))

    return on_message


async def _replied(subject: str, reply: Awaitable[BaseModel]) -> BaseModel:
    """The responder's reply, or an :class:`ErrorReply` saying it failed (logged with its traceback)."""
    try:
        return await reply
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        log.exception("answering a request on %s failed", subject)
        said = clipped(str(exc) or type(exc).__name__)
        return ErrorReply(subject=subject, error=f"the service could not answer: {said}")


async def _answer(msg: Msg, reply: BaseModel) -> None:
    """Reply, if the request asked for one (a plain publish on a request subject does not)."""
    if not msg.reply:
        return
    try:
        await msg.respond(encode(reply))
    except nats.errors.Error as exc:  # the connection is going: the caller times out, as it would
        log.warning("could not answer on %s: %s", msg.subject, exc)


def connect_options(settings: NatsSettings, name: str) -> dict[str, Any]:
    options: dict[str, Any] = {
        "servers": settings.effective_servers,
        "name": name,
        "max_reconnect_attempts": -1,
        "reconnect_time_wait": settings.reconnect.delay(1),  # nats-py waits the same between all tries
        "ping_interval": settings.ping_interval_s,  # a server that stops answering is a lost connection
        "max_outstanding_pings": settings.max_outstanding_pings,
        "connect_timeout": settings.connect_timeout_s,
        "drain_timeout": settings.drain_timeout_s,
        "error_cb": _log_error,
    }
    if settings.user:
        options["user"] = settings.user
    if settings.password:
        options["password"] = settings.password.get_secret_value()
    if settings.token:
        options["token"] = settings.token.get_secret_value()
    if settings.creds_file:
        options["user_credentials"] = str(settings.creds_file)
    return options


def _not_answering_yet(exc: Exception) -> bool:
    """JetStream is there but cannot answer now: no reply in time (a cluster without a quorum), its own
    "temporarily unavailable", or no peers yet to place replicas on. A bare 503 without an error code is
    the server's "no responders": JetStream is not enabled, which no waiting mends (a configuration error)."""
    if isinstance(exc, ServiceUnavailableError):
        return exc.err_code is not None
    if isinstance(exc, APIError):
        return exc.err_code == NO_PEERS_YET
    return True


async def _streams_or_config_error(bus: Bus, settings: NatsSettings) -> None:
    try:
        await bus.ensure_streams()
    except (ServiceUnavailableError, nats.errors.NoRespondersError) as exc:
        url = shown_url(settings.effective_url)
        raise ConfigError(
            f"config: nats.url = {url!r}: JetStream is not enabled there (nats-server -js)"
        ) from exc


class StoppedWhileConnecting(Exception):
    """The service was told to stop before NATS could be reached."""


async def _connect_unless_stopped(nc: Client, options: dict[str, Any], stop: asyncio.Event | None) -> None:
    connecting = asyncio.ensure_future(nc.connect(**options))
    if stop is None:
        await connecting
        return
    stopping = asyncio.ensure_future(stop.wait())
    await asyncio.wait({connecting, stopping}, return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    if not connecting.done():
        connecting.cancel()
        with contextlib.suppress(asyncio.CancelledError, nats.errors.Error):
            await connecting
        raise StoppedWhileConnecting(
            f"stopped before NATS at {shown_url(str(options['servers'][0]))} answered"
        )
    connecting.result()


@asynccontextmanager
async def connect(
    settings: NatsSettings,
    *,
    name: str,
    max_reconnect_attempts: int = -1,
    stop: asyncio.Event | None = None,
    quiet: bool = False,
) -> AsyncIterator[Bus]:
    """Services retry forever (-1) until ``stop`` is set; a command passes a small number to fail fast,
    and ``quiet``: the client's connection errors go to the debug log, the command says it in one line."""
    nc = Client()
    link = Link()
    noise = logging.DEBUG if quiet else logging.WARNING

    async def disconnected() -> None:
        if not (nc.is_closed or nc.is_draining):
            link.lost()
            log.log(noise, "nats: disconnected from %s, reconnecting", shown_url(settings.effective_url))

    async def client_error(exc: Exception) -> None:
        link.complain(exc)
        log.log(noise, "nats: %s", link.problem)

    async def reconnected() -> None:
        link.restored()
        log.info("nats: reconnected to %s", shown_url(settings.effective_url))

    options = connect_options(settings, name)
    options.update(
        disconnected_cb=disconnected,
        reconnected_cb=reconnected,
        error_cb=client_error,
        max_reconnect_attempts=max_reconnect_attempts,
    )
    try:
        await _connect_unless_stopped(nc, options, stop)
    except nats.errors.NoServersError as exc:
        raise Unreachable(link.last_error) from exc
    bus = Bus(nc, settings, link, stop)
    try:
        await _streams_or_config_error(bus, settings)
        yield bus
    finally:
        if not nc.is_closed:
            try:
                await nc.drain()
            except (TimeoutError, nats.errors.Error) as exc:
                log.warning("drain did not finish cleanly: %s", exc)
        await bus.close()


def shown_url(url: str) -> str:
    """``url`` without user and password, for logs and messages."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit(parts._replace(netloc=netloc))


async def _log_error(exc: Exception) -> None:
    log.warning("nats: %s", exc)

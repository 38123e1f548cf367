"""The monitor: exact queue counts, every event as Prometheus metrics, ``syntx.status``, the hourly line."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from datetime import datetime

from prometheus_client import CollectorRegistry

from services.monitor import exposition
from services.monitor.counter import QueueCounter
from services.monitor.health import HealthReport, Observations, judge, missed_schedules
from services.monitor.http import HttpEndpoint, Reply, Request, Route
from services.monitor.labels import Labels
from services.monitor.metrics import MonitorMetrics
from services.monitor.progress import Progress
from services.monitor.recounts import SharedRecount
from services.monitor.status import Tracker
from shared.config import Settings
from shared.cron import Schedule, parse_schedule
from shared.messaging import (
    Bus,
    Delivery,
    MalformedMessage,
    PausedSchedules,
    StatusReply,
    StatusRequest,
    Tick,
    connect,
    decode_tick,
    message_problem,
    subjects,
    utc_now,
)
from shared.queue import ARCHIVE, ERROR, INCOMING, PROCESSED, PROCESSING, FileQueue, is_job_name, queue_state
from shared.service import ServiceTasks, presence, service_names
from shared.service.statefile import StateFile
from shared.watch import watching

log = logging.getLogger(__name__)

STATUS_LOG = "queue_status_hourly.log"


class Monitor:
    def __init__(self, settings: Settings, registry: CollectorRegistry | None = None) -> None:
        self._settings = settings
        self.labels = Labels(settings)
        self.metrics = MonitorMetrics(registry or CollectorRegistry())
        self.metrics.initialise_wrappers(settings.consumers)
        self.metrics.initialise_backends(
            (name, spec.backend.kind) for name, spec in settings.consumers.items()
        )
        self.metrics.initialise_bounded(self.labels)
        self.queue = FileQueue(settings.queue_dir)
        self.counter = QueueCounter(self.queue)
        self._expected_services = [name for name in service_names(settings.consumers) if name != "monitor"]
        self.tracker = Tracker(self.metrics, self.labels, settings.monitor, self._expected_services)
        self.progress = Progress(settings.monitor.health.stalled_after_s, lambda: self.counter.last_result_at)
        self._recounts = SharedRecount(self.recount)
        self._watching_consumers = any(spec.watch for spec in settings.consumers.values())
        self._consumer_schedules = {subjects.consumer_schedule(name) for name in settings.consumers}
        self._started = utc_now()
        self._started_clock = time.monotonic()
        self._schedules = {
            name: (parse_schedule(spec.cron), settings.monitor.health.schedule_grace_s + spec.jitter_s)
            for name, spec in settings.schedules.items()
            if spec.enabled
        }
        self._pauses: PausedSchedules | None = None
        self._paused: set[str] = set()

        self._bus: Bus | None = None
        self._status_log = StateFile(settings.logs_dir / STATUS_LOG, "the hourly status line")

    def refresh(self) -> StatusReply:
        """Push the kept counts into the gauges and return the status (no folder scan)."""
        counts = self.counter.counts()
        state = queue_state(counts[INCOMING], self._settings.producer.back_pressure)
        services = self.tracker.refresh_services()
        health = self.judge_health(state, counts[INCOMING], services)
        for folder, count in counts.items():
            self.metrics.queue_jobs.labels(folder=folder).set(count)
        oldest = self.counter.oldest_incoming_age_s()
        self.metrics.oldest_incoming_age.set(oldest)
        self.metrics.set_state(state)
        self.metrics.set_health(health.state, health.severities())
        return StatusReply(
            counts=counts,
            queue_state=state,
            health=health.state,
            health_reasons=health.reasons,
            oldest_incoming_age_s=round(oldest, 3),
            services=services,
            last_runs=dict(self.tracker.last_runs),
            scored={wrapper: dict(counts) for wrapper, counts in self.tracker.scored.items()},
        )

    def judge_health(self, state: str, incoming: int, live: dict[str, int]) -> HealthReport:
        limits = self._settings.monitor.health
        heard_long_enough = time.monotonic() - self._started_clock > self._settings.monitor.service_timeout_s
        now = utc_now().astimezone(self._settings.zone)
        silent = [name for name in self._expected_services if name not in live] if heard_long_enough else []
        claimed = self.counter.count(PROCESSING)
        if claimed or (incoming and self._watching_consumers):
            self.progress.asked()
        link = self._bus.link if self._bus is not None else None
        seen = Observations(
            queue_state=state,
            incoming=incoming,
            outcomes=self.tracker.outcomes.totals(),
            oldest_claim_age_s=self.oldest_claim_age_s(),
            backends_down=self.tracker.backends_down(),
            wrappers=len(self._settings.consumers),
            silent_services=silent,
            expected_services=len(self._expected_services),
            missed_schedules=missed_schedules(
                self._running_schedules(now), self.tracker.last_fired, self._started, now
            ),
            queue_faults=self.tracker.queue_faults(),
            claimed=claimed,
            nats_down_s=self._nats_down_s(),
            nats_problem=link.problem if link is not None else "",
            stalled_s=self.progress.stalled_for_s(incoming + claimed),
        )
        return judge(seen, limits, self._settings.queue.lease_s)

    def _running_schedules(self, now: datetime) -> dict[str, tuple[Schedule, float]]:
        """The schedules that should fire: a paused one cannot miss a slot, and one resumed counts from
        the moment the monitor saw it resumed."""
        running = {}
        for name, schedule in self._schedules.items():
            if self._pauses is not None and self._pauses.is_paused(name):
                self._paused.add(name)
                continue
            if name in self._paused:
                self._paused.discard(name)
                self.tracker.last_fired[name] = now
            running[name] = schedule
        return running

    def oldest_claim_age_s(self) -> float | None:
        """Age of the oldest claim's lease clock (its ctime) in ``processing/`` — a small folder."""
        oldest: float | None = None
        try:
            with os.scandir(self.queue.folder(PROCESSING)) as entries:
                for entry in entries:
                    if is_job_name(entry.name):
                        with contextlib.suppress(FileNotFoundError):
                            changed = entry.stat(follow_symlinks=False).st_ctime
                            oldest = changed if oldest is None else min(oldest, changed)
        except FileNotFoundError:
            return None
        return None if oldest is None else max(0.0, time.time() - oldest)

    def metrics_reply(self, request: Request | None = None) -> Reply:
        """What a scrape gets; without a request, the text format a client that asks nothing gets."""
        self.refresh()
        return exposition.metrics(self.metrics.registry, request or Request("GET", "/metrics", {}))

    def _nats_down_s(self) -> float | None:
        """How long the monitor's own NATS connection has been down; None while it is up. A connection
        the client already calls lost counts from now, before its callback said so."""
        if self._bus is None:
            return None
        down_s = self._bus.link.down_for_s()
        if down_s is None and not self._bus.connected:
            return 0.0
        return down_s

    def health_reply(self, _request: Request) -> Reply:
        """200 for OK and WARNING, 503 for CRITICAL (NATS unreachable is CRITICAL: ``nats_down``); the
        body says the same state with its reasons, so it never contradicts the code."""
        status = self.refresh()
        body = {
            "status": status.health.lower(),
            "health": status.health,
            "nats": "down" if self._nats_down_s() is not None else "connected",
            "reasons": [reason.model_dump() for reason in status.health_reasons],
        }
        code = 503 if status.health == "CRITICAL" else 200
        return Reply(code, json.dumps(body).encode(), "application/json")

    def endpoint(self) -> HttpEndpoint:
        """``/metrics`` and ``/healthz``, bounded as ``monitor.*`` says (:mod:`services.monitor.http`)."""
        routes: dict[str, Route] = {"/metrics": self.metrics_reply, "/healthz": self.health_reply}
        limits = self._settings.monitor
        return HttpEndpoint(routes, limits.request_timeout_s, limits.max_connections)

    async def status(self, request: StatusRequest) -> StatusReply:
        """``syntx.status``; a body ``{"reconcile": true}`` recounts the folders before answering (the
        requests that come during one recount share the next: :mod:`services.monitor.recounts`)."""
        if request.reconcile:
            await self._recounts.after_next()
        return self.refresh()

    async def recount(self) -> None:
        """Recount the folders; again (up to ``recount_retries`` times) while one changed meanwhile."""
        await self.counter.reconcile_in_thread()
        for _ in range(self._settings.monitor.recount_retries):
            if not self.counter.unsettled:
                return
            await self.counter.reconcile_in_thread()

    async def on_tick(self, tick: Tick) -> None:
        line = self.status_line(tick.slot or utc_now())
        self._status_log.append(line)  # a full disk: said once, the line is in the service log all the same
        self.tracker.note_run("monitor", line)
        log.info("%s", line)

    def status_line(self, moment: datetime) -> str:
        counts = self.counter.counts()
        local = moment.astimezone(self._settings.zone)
        return (
            f"{local:%Y-%m-%d %H:%M} | Incoming: {counts[INCOMING]} | Processed: {counts[PROCESSED]} "
            f"| Error: {counts[ERROR]} | Archive: {counts[ARCHIVE]}"
        )

    async def on_any_tick(self, msg: Delivery) -> None:
        try:
            tick = decode_tick(msg.data, subjects.schedule_of(msg.subject))
        except MalformedMessage:
            return  # counted by on_any_message
        self.tracker.on_tick(tick, utc_now())
        if tick.schedule in self._consumer_schedules and self.counter.count(INCOMING):
            self.progress.asked()

    async def on_any_message(self, msg: Delivery) -> None:
        """Every message under ``syntx.>``: a malformed one is counted by its (bounded) subject."""
        reason = message_problem(msg.subject, msg.data)
        if reason is not None:
            self.metrics.malformed.labels(subject=self.labels.subject(msg.subject)).inc()
            if self._bus is not None:
                self._bus.note_malformed(msg.subject, reason)

    async def reconcile_forever(self, stop: asyncio.Event) -> None:
        """Recount every ``reconcile_s`` after the one at start; sooner when notifications were lost, the
        oldest waiting names ran out, or a recount raced with a notification."""
        settings = self._settings.monitor
        while True:
            pause = settings.recount_retry_s if self.counter.unsettled else settings.reconcile_s
            await _first_set((stop, self.counter.recount_wanted), pause)
            if stop.is_set():
                return
            await self.counter.reconcile_in_thread()

    async def serve(self, bus: Bus, stop: asyncio.Event) -> None:
        self._bus = bus
        self.queue.ensure()
        http = self.endpoint()
        root = [self.queue.root]
        changes = self.counter.on_change
        async with watching(root, changes, recursive=True, pair_moves=False, comings_and_goings=True):
            await self.recount()
            port = await http.start(self._settings.monitor.host, self._settings.monitor.port)
            log.info("metrics on http://%s:%d/metrics", self._settings.monitor.host, port)
            try:
                for subject in (
                    subjects.CONSUMER_BACKEND,
                    subjects.QUEUE_STATE,
                    subjects.JOB_ALL,
                    subjects.PRODUCER_GENERATION,
                    subjects.PRODUCER_GENERATOR,
                    subjects.PRODUCER_BUDGET,
                    subjects.CLEANUP_REPORT,
                    subjects.TICK_OVERLAP,
                    subjects.SERVICE_HEARTBEAT,
                ):
                    await bus.subscribe_events(subject, self.tracker.on_event)
                await bus.watch_stream(subjects.TICK_ALL, self.on_any_tick)
                await bus.subscribe(subjects.ALL, self.on_any_message)
                await bus.serve(StatusRequest, self.status, queue="monitor")
                await bus.ask_for_heartbeats()  # services up before us: say so
                ticks = await bus.subscribe_ticks("monitor", self._settings.overlap("monitor"))
                self._pauses = PausedSchedules(await bus.key_value(self._settings.scheduler.state_bucket))
                async with presence(bus, "monitor", self._settings.heartbeat_s), ServiceTasks() as tasks:
                    watch = self._pauses.watch(stop, self._settings.nats.resubscribe)
                    tasks.start(watch, "monitor paused schedules")
                    tasks.start(self.reconcile_forever(stop), "monitor reconcile")
                    tasks.start(ticks.run(self.on_tick, stop), "monitor ticks")
            finally:
                await self._recounts.close()
                await http.close()


async def _first_set(events: tuple[asyncio.Event, ...], seconds: float) -> None:
    """Wait until one of ``events`` is set, at most ``seconds``."""
    waiters = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


async def run(settings: Settings, stop: asyncio.Event) -> None:
    async with connect(settings.nats, name="monitor", stop=stop) as bus:
        await Monitor(settings).serve(bus, stop)

"""The monitor: exact queue counts, every event as Prometheus metrics, ``syntx.status``, the hourly line."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import datetime

from nats.aio.msg import Msg
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from pydantic import ValidationError

from services.monitor.counter import QueueCounter
from services.monitor.http import HttpEndpoint, Reply
from services.monitor.metrics import MonitorMetrics
from services.monitor.status import StatusReply, StatusRequest, Tracker
from shared.config import Settings
from shared.messaging import Bus, Tick, decode_tick, subjects, utc_now
from shared.messaging import bus as bus_module
from shared.queue import ARCHIVE, ERROR, INCOMING, PROCESSED, FileQueue, queue_health, queue_state
from shared.service import presence
from shared.timing import set_within
from shared.watch import watching

log = logging.getLogger(__name__)

STATUS_LOG = "queue_status_hourly.log"


class Monitor:
    def __init__(self, settings: Settings, registry: CollectorRegistry | None = None) -> None:
        self._settings = settings
        self.metrics = MonitorMetrics(registry or CollectorRegistry())
        self.metrics.initialise_wrappers(settings.consumers)
        self.metrics.initialise_arms(f"{c}/{s}" for c in settings.topics for s in settings.styles)
        self.queue = FileQueue(settings.queue_dir)
        self.counter = QueueCounter(self.queue)
        self.tracker = Tracker(self.metrics)
        self._bus: Bus | None = None

    def refresh(self) -> StatusReply:
        """Push the kept counts into the gauges and return the status (no folder scan)."""
        counts = self.counter.counts()
        limits = self._settings.producer.back_pressure
        state = queue_state(counts[INCOMING], limits)
        health = queue_health(state, counts[ERROR], limits)
        for folder, count in counts.items():
            self.metrics.queue_jobs.labels(folder=folder).set(count)
        oldest = self.counter.oldest_incoming_age_s()
        self.metrics.oldest_incoming_age.set(oldest)
        self.metrics.set_state(state)
        self.metrics.health.set(1 if health == "OK" else 0)
        return StatusReply(
            counts=counts,
            queue_state=state,
            health=health,
            oldest_incoming_age_s=round(oldest, 3),
            services=self.tracker.refresh_services(),
            last_runs=dict(self.tracker.last_runs),
            scored={wrapper: dict(counts) for wrapper, counts in self.tracker.scored.items()},
        )

    def metrics_reply(self) -> Reply:
        self.refresh()
        return Reply(200, generate_latest(self.metrics.registry), CONTENT_TYPE_LATEST)

    def health_reply(self) -> Reply:
        connected = self._bus is not None and self._bus.client.is_connected
        body = {"status": "ok" if connected else "degraded", "nats": "connected" if connected else "down"}
        return Reply(200 if connected else 503, json.dumps(body).encode(), "application/json")

    async def status(self, request: bytes) -> StatusReply:
        """``syntx.status``; a body ``{"reconcile": true}`` recounts the folders before answering."""
        if StatusRequest.model_validate_json(request or b"{}").reconcile:
            await asyncio.to_thread(self.counter.reconcile)
        return self.refresh()

    async def on_tick(self, tick: Tick) -> None:
        line = self.status_line(tick.slot or utc_now())
        path = self._settings.logs_dir / STATUS_LOG
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")
        self.tracker.note_run("monitor", line)
        log.info("%s", line)

    def status_line(self, moment: datetime) -> str:
        counts = self.counter.counts()
        local = moment.astimezone(self._settings.zone)
        return (
            f"{local:%Y-%m-%d %H:%M} | Incoming: {counts[INCOMING]} | Processed: {counts[PROCESSED]} "
            f"| Error: {counts[ERROR]} | Archive: {counts[ARCHIVE]}"
        )

    async def on_any_tick(self, msg: Msg) -> None:
        try:
            tick = decode_tick(msg.data, subjects.schedule_of(msg.subject))
        except (ValidationError, ValueError):
            self.metrics.malformed.labels(subject=msg.subject).inc()
            return
        self.tracker.on_tick(tick, utc_now())

    async def reconcile_forever(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await asyncio.to_thread(self.counter.reconcile)
            await set_within(stop, self._settings.monitor.reconcile_s)

    async def serve(self, bus: Bus, stop: asyncio.Event) -> None:
        self._bus = bus
        self.queue.ensure()
        http = HttpEndpoint({"/metrics": self.metrics_reply, "/healthz": self.health_reply})
        async with watching([self.queue.root], self.counter.on_change, recursive=True):
            self.counter.reconcile()
            port = await http.start(self._settings.monitor.host, self._settings.monitor.port)
            log.info("metrics on http://%s:%d/metrics", self._settings.monitor.host, port)
            try:
                for subject in (
                    subjects.CONSUMER_BACKEND,
                    subjects.JOB_ALL,
                    subjects.PRODUCER_GENERATION,
                    subjects.CLEANUP_REPORT,
                    subjects.SERVICE_HEARTBEAT,
                ):
                    await bus.subscribe_events(subject, self.tracker.on_event)
                await bus.watch_stream(subjects.TICK_ALL, self.on_any_tick)
                await bus.serve(subjects.STATUS, self.status, queue="monitor")
                await bus.client.publish(subjects.SERVICE_PING, b"")  # services up before us: say so
                ticks = await bus.subscribe_ticks("monitor")
                async with presence(bus, "monitor"), asyncio.TaskGroup() as group:
                    group.create_task(self.reconcile_forever(stop), name="reconcile")
                    group.create_task(ticks.run(self.on_tick, stop), name="ticks")
            finally:
                await http.close()


async def run(settings: Settings, stop: asyncio.Event) -> None:
    async with bus_module.connect(settings.nats, name="monitor", stop=stop) as bus:
        await Monitor(settings).serve(bus, stop)

"""The ``syntx`` commands. Each returns the process exit code; output goes to stdout."""

from __future__ import annotations

import json
import logging
import re
import sys
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from pathlib import Path
from typing import TypeVar, cast

import annotated_types
from pydantic import BaseModel, ValidationError

from shared.config import Settings
from shared.messaging import (
    Bus,
    BusError,
    ErrorReply,
    JobCreated,
    NoResponders,
    PausedSchedules,
    RequestTimeout,
    SchedulesReply,
    ScheduleView,
    StatusReply,
    Tick,
    Unreachable,
    connect,
    describe,
    shown_url,
    subjects,
)
from shared.names import clipped, folder_name_max, shown
from shared.queue import RESULT_SUFFIX, JobResult, ResultFileError, job_id_problem
from shared.safe_yaml import YamlRefused, read_text
from shared.scoring import SCORERS, configured_catalog, parse_response, render_breakdown, score_response
from syntx import exits
from syntx.embedded_nats import EmbeddedNatsError
from syntx.holders import InUse, check_port, data_dir_claimed
from syntx.requeue import requeue
from syntx.suggest import unknown
from syntx.supervisor import Supervisor

log = logging.getLogger(__name__)

SCHEDULE_NAME = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*")  # one subject token or several, no wildcard
CONNECT_ATTEMPTS = 1  # one retry, then "cannot reach NATS" instead of waiting forever
Reply = TypeVar("Reply", bound=BaseModel)


def out(text: str = "") -> None:
    sys.stdout.write(text + "\n")


async def up(settings: Settings, paths: list[str], cluster_size: int = 1) -> int:
    try:
        with data_dir_claimed(settings.data_dir):
            _check_ports(settings, cluster_size)
            return await Supervisor(settings, paths, cluster_size).run()
    except InUse as exc:
        return _fail(str(exc), exits.IN_USE)
    except (EmbeddedNatsError, TimeoutError) as exc:
        return _fail(
            f"syntx up: the embedded nats-server did not start ({exc or 'not ready in time'}); "
            "its last lines are above — free its port or its store directory and start again"
        )


def _check_ports(settings: Settings, cluster_size: int = 1) -> None:
    """Refuse to start beside a process on a port ``syntx up`` would listen on, naming that process."""
    if settings.nats.url is None and not settings.nats.servers:
        for index in range(cluster_size):
            port = settings.nats.embedded_port + index
            check_port("127.0.0.1", port, "embedded NATS", "SYNTX_NATS__EMBEDDED_PORT")
        for index in range(cluster_size if cluster_size > 1 else 0):
            port = settings.up.cluster_route_port + index
            check_port("127.0.0.1", port, "embedded NATS routes", "SYNTX_UP__CLUSTER_ROUTE_PORT")
    check_port(settings.monitor.host, settings.monitor.port, "monitor metrics", "SYNTX_MONITOR__PORT")


def _connect(settings: Settings) -> AbstractAsyncContextManager[Bus]:
    return connect(settings.nats, name="syntx-cli", max_reconnect_attempts=CONNECT_ATTEMPTS, quiet=True)


def _unreachable(settings: Settings, command: str, exc: BaseException | None = None) -> int:
    url = shown_url(settings.nats.effective_url)
    if isinstance(exc, Unreachable) and exc.silent:
        sys.stderr.write(
            f"syntx {command}: NATS at {url} accepts connections but does not answer (a stopped or "
            "overloaded nats-server?); the services reconnect by themselves once it answers\n"
        )
    else:
        sys.stderr.write(f"syntx {command}: cannot reach NATS at {url}: is `syntx up` running?\n")
    return exits.NOT_REACHABLE


def _tick_or_refusal(settings: Settings, schedule: str, batch: int | None, force: bool) -> Tick | str:
    """The tick to publish, or why it is refused (nothing is published then)."""
    known = sorted(settings.schedules)
    if not SCHEDULE_NAME.fullmatch(schedule):
        return f"syntx trigger: {schedule!r} is not a schedule name; name one of: {', '.join(known)}"
    if schedule not in settings.schedules and not force:
        return (
            f"syntx trigger: {unknown('schedule', schedule, known)} "
            "(or add --force for a schedule configured elsewhere)"
        )
    try:
        return Tick(schedule=schedule, batch=batch, source="operator")
    except ValidationError:
        low, high = batch_bounds()
        return (
            f"syntx trigger: --batch {batch} is out of range; give a number from {low} to {high}, "
            "or leave --batch out for the configured size"
        )


def batch_bounds() -> tuple[int, int]:
    """The smallest and largest batch a tick may carry (the Tick model's bounds)."""
    metadata = Tick.model_fields["batch"].metadata
    low = next(cast(int, m.ge) for m in metadata if isinstance(m, annotated_types.Ge))
    high = next(cast(int, m.le) for m in metadata if isinstance(m, annotated_types.Le))
    return low, high


async def trigger(settings: Settings, schedule: str, batch: int | None, force: bool = False) -> int:
    tick = _tick_or_refusal(settings, schedule, batch, force)
    if isinstance(tick, str):
        return _usage(tick)
    try:
        async with _connect(settings) as bus:
            await bus.publish(subjects.tick(schedule), tick)
    except Unreachable as exc:
        return _unreachable(settings, "trigger", exc)
    except (TimeoutError, BusError) as exc:
        return _fail(f"syntx trigger: the tick was not stored: {exc or type(exc).__name__}")
    out(f"tick sent: {subjects.tick(schedule)}" + (f" (batch {batch})" if batch else ""))
    return 0


async def _ask(
    settings: Settings, command: str, subject: str, who: str, answer: type[Reply], body: bytes = b""
) -> Reply | int:
    """The service's reply as the model it sends, or the exit code after one line on stderr saying why
    there is none."""
    said = f"syntx {command}: "
    try:
        async with _connect(settings) as bus:
            data = await bus.request(subject, body, wait_s=settings.nats.request_timeout_s)
    except Unreachable as exc:
        return _unreachable(settings, command, exc)
    except (NoResponders, RequestTimeout):
        sys.stderr.write(f"{said}no answer from the {who} on {subject}: is `syntx up` running?\n")
        return exits.NOT_REACHABLE
    try:
        reply = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        reply = None
    if not isinstance(reply, dict):
        sys.stderr.write(f"{said}the {who} answered on {subject} with something that is not JSON\n")
        return exits.NOT_REACHABLE
    try:
        refusal = ErrorReply.model_validate(reply)
    except ValidationError:
        return _read(reply, answer, said + f"the {who} answered on {subject} with")  # not an error
    return _fail(f"{said}the {who} could not answer on {subject}: {shown(refusal.error)}")


def _read(reply: dict[str, object], answer: type[Reply], said: str) -> Reply | int:
    """``reply`` as ``answer``, or the exit code after one line saying it is not one."""
    try:
        return answer.model_validate(reply)
    except ValidationError as exc:
        sys.stderr.write(f"{said} a reply this version does not read ({describe(exc)})\n")
        return exits.NOT_REACHABLE


async def status(settings: Settings, as_json: bool, exact: bool = False, check: bool = False) -> int:
    """Exit 0 once the monitor answered; with ``check``, one line and the health as the exit status by
    the Nagios plugin convention (:data:`exits.CHECK`): 0 OK, 1 WARNING, 2 CRITICAL, 3 no answer."""
    body = json.dumps({"reconcile": exact}).encode()
    reply = await _ask(settings, "status", subjects.STATUS, "monitor", StatusReply, body)
    if isinstance(reply, int):
        return exits.CHECK_UNKNOWN if check else reply
    if check:
        return _check_line(reply)
    if as_json:
        _out_json(reply)
        return 0
    out(
        f"queue state {reply.queue_state}, health {reply.health}, "
        f"oldest waiting job {reply.oldest_incoming_age_s:.0f}s"
    )
    for reason in reply.health_reasons:
        out(f"  {reason.severity:<8} {reason.text}")
    out()
    out(_table(["folder", "files"], [[folder, str(count)] for folder, count in reply.counts.items()]))
    out()
    services = [[name, str(count)] for name, count in sorted(reply.services.items())]
    out(_table(["service", "live"], services or [["(none seen yet)", "0"]]))
    scored = [
        [w, str(c.get("passed", 0)), str(c.get("rejected", 0))] for w, c in sorted(reply.scored.items())
    ]
    if scored:
        out()
        out(_table(["wrapper", "passed", "rejected"], scored))
    runs = [
        [name, _short_time(run.at, settings), run.summary] for name, run in sorted(reply.last_runs.items())
    ]
    if runs:
        out()
        out(_table(["last run", "at", "what"], runs))
    return 0


def _out_json(reply: BaseModel) -> None:
    """A reply as the service sent it, indented."""
    out(json.dumps(reply.model_dump(mode="json"), indent=2, ensure_ascii=False))


def _check_line(reply: StatusReply) -> int:
    """``syntx OK - …`` / ``syntx CRITICAL - reason: text; …`` with the queue's counts as performance data."""
    health = reply.health
    reasons = "; ".join(f"{r.code}: {r.text}" for r in reply.health_reasons)
    said = reasons or f"queue {reply.queue_state}, oldest waiting job {reply.oldest_incoming_age_s:.0f}s"
    counts = " ".join(f"{folder}={count}" for folder, count in reply.counts.items())
    out(f"syntx {health} - {said} | {counts}")
    return exits.CHECK.get(health, exits.CHECK_UNKNOWN)


async def schedules(settings: Settings, as_json: bool) -> int:
    reply = await _ask(settings, "schedules", subjects.SCHEDULES, "scheduler", SchedulesReply)
    if isinstance(reply, int):
        return reply
    if as_json:
        _out_json(reply)
        return 0
    rows = [
        [
            s.name,
            s.cron,
            "paused" if s.paused else "yes" if s.enabled else "disabled",
            _short_time(s.last_fired, settings) if s.last_fired else "-",
            _upcoming(s, settings),
        ]
        for s in reply.schedules
    ]
    out(f"time zone {reply.timezone}")
    out(_table(["schedule", "cron", "enabled", "last fired", "next"], rows))
    return 0


def _upcoming(schedule: ScheduleView, settings: Settings) -> str:
    """The next fire times; for a paused schedule, since when it is paused and how to resume it."""
    if schedule.paused:
        since = schedule.paused_since
        when = f" since {_short_time(since, settings)}" if since else ""
        return f"none: paused{when} (`syntx schedules resume {schedule.name}`)"
    return ", ".join(_short_time(t, settings) for t in schedule.next) or "-"


async def pause_schedule(settings: Settings, name: str, pause: bool) -> int:
    """``syntx schedules pause|resume NAME``: the state lives in JetStream, every replica follows it.
    Idempotent: pausing a paused schedule (or resuming a running one) says so and exits 0."""
    if name not in settings.schedules:
        return _usage(f"syntx schedules: {unknown('schedule', name, sorted(settings.schedules))}")
    try:
        async with _connect(settings) as bus:
            pauses = PausedSchedules(await bus.key_value(settings.scheduler.state_bucket))
            if pause:
                if await pauses.pause(name, datetime.now(settings.zone)):
                    out(f"schedule {name} paused; `syntx schedules resume {name}` resumes it")
                else:
                    out(f"schedule {name} was already paused; `syntx schedules resume {name}` resumes it")
            elif await pauses.resume(name):
                out(f"schedule {name} resumed")
            else:
                out(f"schedule {name} was not paused; nothing to resume")
            return exits.OK
    except (OSError, TimeoutError, BusError) as exc:
        return _unreachable(settings, "schedules", exc)


async def retry(settings: Settings, job_ids: list[str], include_rejected: bool) -> int:
    name_max = folder_name_max(settings.queue_dir)
    for job_id in job_ids:
        if problem := job_id_problem(job_id, name_max):
            return _usage(
                f"syntx retry: {clipped(job_id)!r} is not a job id ({problem}); "
                "use the name of error/<job_id>.json"
            )
    created: list[JobCreated] = []
    moved = requeue(
        settings.queue_dir,
        job_ids,
        include_rejected,
        progress=out,
        max_result_bytes=settings.queue.max_result_bytes,
        on_requeued=created.append,
    )
    if job_ids and not moved:
        return _fail(
            "syntx retry: none of the named jobs could be re-queued; "
            "`syntx results --status failed` lists the failed ones"
        )
    if created:
        await _announce(settings, created)
    out(f"{moved} job(s) back in incoming/")
    return 0


async def _announce(settings: Settings, created: list[JobCreated]) -> None:
    """Each re-queued job as a ``job.created`` event, as the producer announces its own. Without NATS the
    files are enough: consumers here see them in ``incoming/``, the monitor counts them at its recount."""
    try:
        async with _connect(settings) as bus:
            for event in created:
                await bus.emit(subjects.JOB_CREATED, event)
            await bus.flush()
    except (OSError, TimeoutError, BusError):
        url = shown_url(settings.nats.effective_url)
        sys.stderr.write(
            f"syntx retry: NATS at {url} cannot be reached: the {len(created)} re-queued job(s) are in "
            "incoming/ but not announced (the monitor counts them at its next recount)\n"
        )


def score(
    settings: Settings, path: Path, format_name: str | None, prompt: str, scorer: str, as_json: bool
) -> int:
    catalog = configured_catalog(settings.catalog_dirs)
    known = ", ".join(catalog.formats)
    if scorer not in SCORERS:
        return _usage(f"syntx score: {unknown('scorer', scorer, SCORERS)}")
    if format_name is not None and format_name not in catalog.formats:
        return _usage(f"syntx score: {unknown('format', format_name, catalog.formats)}")
    try:
        if path.suffix == RESULT_SUFFIX:
            record = JobResult.load_copy(path, max_bytes=settings.queue.max_result_bytes)
            text = record.response or ""
            format_name = format_name or record.format
            prompt = prompt or record.prompt or ""
        else:
            text = read_text(path, settings.queue.max_result_bytes)
    except ResultFileError as exc:
        return _usage(
            f"syntx score: {path} is not a result JSON: {exc.detail}; name a response text or a result"
        )
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        return _usage(f"syntx score: cannot read {path}: {reason}; name a response text or a result JSON")
    except YamlRefused as exc:  # too large, not UTF-8, not a regular file
        return _usage(f"syntx score: {path} {exc.reason}; name a response text or a result JSON")
    parsed = parse_response(text, catalog.formats, expected=format_name)
    chosen = format_name or parsed.format
    if chosen is None or chosen not in catalog.formats:
        return _fail(f"syntx score: no known format in {path}; name one with --format ({known})")
    result = score_response(text, parsed, catalog.formats[chosen], prompt, scorer=scorer)
    out(result.model_dump_json(indent=2) if as_json else render_breakdown(result))
    return 0


def _usage(message: str) -> int:
    sys.stderr.write(message + "\n")
    return exits.USAGE


def _fail(message: str, code: int = exits.NOTHING_DONE) -> int:
    sys.stderr.write(message + "\n")
    return code


def _short_time(value: datetime, settings: Settings) -> str:
    """A timestamp in the configured time zone, with its offset."""
    return value.astimezone(settings.zone).strftime("%Y-%m-%d %H:%M:%S %z")


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in [header, *rows]
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(line.rstrip() for line in lines)

"""``syntx schedules``: every schedule with its next fire times, as the scheduler answers them;
``syntx schedules pause|resume NAME`` for every replica at once."""

from __future__ import annotations

import asyncio
import sys
from datetime import datetime

from shared.config import Settings
from shared.messaging import BusError, PausedSchedules, SchedulesReply, ScheduleView, subjects
from syntx import exits
from syntx.cli.asking import ask, connect, unreachable
from syntx.cli.output import out, out_json, short_time, table, usage
from syntx.cli.parser import Invocation, Subparsers, runs
from syntx.suggest import unknown


def register(commands: Subparsers) -> None:
    parser = commands.add_parser(
        "schedules", help="every schedule with its next fire times (asks the scheduler)"
    )
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "action", nargs="?", choices=("pause", "resume"), help="pause or resume a schedule (every replica)"
    )
    parser.add_argument("name", nargs="?", help="the schedule to pause or resume")
    runs(parser, run)


def run(call: Invocation) -> int:
    return asyncio.run(_schedules(call.settings, call.args.action, call.args.name, call.args.json))


async def _schedules(settings: Settings, action: str | None, name: str | None, as_json: bool) -> int:
    if action is None:
        return await schedules(settings, as_json)
    if name is None:
        sys.stderr.write(
            f"syntx schedules {action}: name a schedule, e.g. `syntx schedules {action} producer`\n"
        )
        return exits.USAGE
    return await pause_schedule(settings, name, action == "pause")


async def schedules(settings: Settings, as_json: bool) -> int:
    reply = await ask(settings, "schedules", subjects.SCHEDULES, "scheduler", SchedulesReply)
    if isinstance(reply, int):
        return reply
    if as_json:
        out_json(reply)
        return 0
    rows = [
        [
            s.name,
            s.cron,
            "paused" if s.paused else "yes" if s.enabled else "disabled",
            short_time(s.last_fired, settings) if s.last_fired else "-",
            _upcoming(s, settings),
        ]
        for s in reply.schedules
    ]
    out(f"time zone {reply.timezone}")
    out(table(["schedule", "cron", "enabled", "last fired", "next"], rows))
    return 0


def _upcoming(schedule: ScheduleView, settings: Settings) -> str:
    """The next fire times; for a paused schedule, since when it is paused and how to resume it."""
    if schedule.paused:
        since = schedule.paused_since
        when = f" since {short_time(since, settings)}" if since else ""
        return f"none: paused{when} (`syntx schedules resume {schedule.name}`)"
    return ", ".join(short_time(t, settings) for t in schedule.next) or "-"


async def pause_schedule(settings: Settings, name: str, pause: bool) -> int:
    """``syntx schedules pause|resume NAME``: the state lives in JetStream, every replica follows it.
    Idempotent: pausing a paused schedule (or resuming a running one) says so and exits 0."""
    if name not in settings.schedules:
        return usage(f"syntx schedules: {unknown('schedule', name, sorted(settings.schedules))}")
    try:
        async with connect(settings) as bus:
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
        return unreachable(settings, "schedules", exc)

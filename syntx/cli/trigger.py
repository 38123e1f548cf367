"""``syntx trigger SCHEDULE``: publish a tick now, as the scheduler would."""

from __future__ import annotations

import asyncio
import re
from typing import cast

import annotated_types
from pydantic import ValidationError

from shared.config import Settings
from shared.messaging import BusError, Tick, Unreachable, subjects
from syntx.cli.asking import connect, unreachable
from syntx.cli.output import fail, out, usage
from syntx.cli.parser import Invocation, Subparsers, runs
from syntx.suggest import unknown

SCHEDULE_NAME = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*")  # one subject token or several, no wildcard


def register(commands: Subparsers) -> None:
    trigger_tick = commands.add_parser("trigger", help="publish a tick now, e.g. `syntx trigger producer`")
    trigger_tick.add_argument(
        "schedule", help="producer, consumer.sigma, consumer.syntex_system, monitor, cleanup"
    )
    trigger_tick.add_argument("--batch", type=int, help="override the batch size for this run")
    trigger_tick.add_argument(
        "--force", action="store_true", help="publish for a schedule configured elsewhere"
    )
    runs(trigger_tick, run)


def run(call: Invocation) -> int:
    return asyncio.run(trigger(call.settings, call.args.schedule, call.args.batch, call.args.force))


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
        return usage(tick)
    try:
        async with connect(settings) as bus:
            await bus.publish(subjects.tick(schedule), tick)
    except Unreachable as exc:
        return unreachable(settings, "trigger", exc)
    except (TimeoutError, BusError) as exc:
        return fail(f"syntx trigger: the tick was not stored: {exc or type(exc).__name__}")
    out(f"tick sent: {subjects.tick(schedule)}" + (f" (batch {batch})" if batch else ""))
    return 0

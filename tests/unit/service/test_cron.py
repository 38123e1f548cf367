"""Schedule parsing and slot arithmetic (``shared.cron``): spellings, errors, DST, ``@every``."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from shared.cron import Schedule, ScheduleError, parse_schedule

BERLIN = ZoneInfo("Europe/Berlin")
SPRING_FORWARD = date(2025, 3, 30)  # 02:00 CET -> 03:00 CEST
FALL_BACK = date(2025, 10, 26)  # 03:00 CEST -> 02:00 CET


def slots(schedule: Schedule, start: datetime, end: datetime) -> list[datetime]:
    """Every slot in (start, end)."""
    found: list[datetime] = []
    moment = schedule.next_after(start)
    while moment < end:
        found.append(moment)
        moment = schedule.next_after(moment)
    return found


def day_bounds(day: date, zone: ZoneInfo = BERLIN) -> tuple[datetime, datetime]:
    start = datetime(day.year, day.month, day.day, tzinfo=zone)
    return start - timedelta(microseconds=1), start + timedelta(days=1)


# -- parsing -----------------------------------------------------------------------------------------


def test_five_fields_is_plain_cron() -> None:
    schedule = parse_schedule("0 3 * * *")
    assert (schedule.cron, schedule.interval_s) == ("0 3 * * *", None)
    moment = datetime(2025, 6, 1, 12, tzinfo=BERLIN)
    assert schedule.next_after(moment) == datetime(2025, 6, 2, 3, tzinfo=BERLIN)


def test_extra_whitespace_is_ignored() -> None:
    assert parse_schedule("  0   4,10,16,22 *  * * ").cron == "0 4,10,16,22 * * *"


def test_six_fields_have_seconds_first() -> None:
    schedule = parse_schedule("*/10 * * * * *")
    start = datetime(2025, 6, 1, 3, 0, 5, tzinfo=BERLIN)
    assert [slot.second for slot in slots(schedule, start, start + timedelta(seconds=30))] == [10, 20, 30]
    fixed = parse_schedule("30 15 3 * * *")  # 03:15:30 every day
    assert fixed.next_after(datetime(2025, 6, 1, tzinfo=BERLIN)) == datetime(
        2025, 6, 1, 3, 15, 30, tzinfo=BERLIN
    )


@pytest.mark.parametrize(
    ("alias", "expected"),
    [
        ("@hourly", datetime(2025, 6, 1, 13, tzinfo=BERLIN)),
        ("@daily", datetime(2025, 6, 2, tzinfo=BERLIN)),
        ("@midnight", datetime(2025, 6, 2, tzinfo=BERLIN)),
        ("@weekly", datetime(2025, 6, 8, tzinfo=BERLIN)),  # 2025-06-01 is a Sunday: the next one
        ("@monthly", datetime(2025, 7, 1, tzinfo=BERLIN)),
        ("@yearly", datetime(2026, 1, 1, tzinfo=BERLIN)),
        ("@annually", datetime(2026, 1, 1, tzinfo=BERLIN)),
    ],
)
def test_aliases(alias: str, expected: datetime) -> None:
    assert parse_schedule(alias).next_after(datetime(2025, 6, 1, 12, 30, tzinfo=BERLIN)) == expected


@pytest.mark.parametrize(
    ("expression", "seconds"),
    [
        ("@every 30s", 30.0),
        ("@every 5m", 300.0),
        ("@every 1h", 3600.0),
        ("@every 1.5s", 1.5),
        ("@every 2d", 172800.0),
    ],
)
def test_every_intervals(expression: str, seconds: float) -> None:
    schedule = parse_schedule(expression)
    assert (schedule.cron, schedule.interval_s) == (None, seconds)
    start = datetime(2025, 6, 1, 12, 0, 7, 250000, tzinfo=BERLIN)
    first = schedule.next_after(start)
    assert timedelta(0) < first - start <= timedelta(seconds=seconds)
    assert schedule.next_after(first) - first == timedelta(seconds=seconds)


def test_next_after_is_strictly_after() -> None:
    on_slot = datetime(2025, 6, 1, 3, tzinfo=BERLIN)
    assert parse_schedule("0 3 * * *").next_after(on_slot) == on_slot + timedelta(days=1)
    assert parse_schedule("0 3 * * *").next_after(on_slot - timedelta(microseconds=1)) == on_slot
    every = parse_schedule("@every 30s")
    aligned = datetime(2025, 6, 1, 12, 0, 30, tzinfo=UTC)
    assert every.next_after(aligned) == aligned + timedelta(seconds=30)


def test_next_after_needs_an_aware_moment() -> None:
    with pytest.raises(ValueError, match="aware"):
        parse_schedule("0 3 * * *").next_after(datetime(2025, 6, 1, 12))


@pytest.mark.parametrize(
    ("expression", "reason"),
    [
        ("* * *", "5 fields"),
        ("0 0 1 1 * 2030 *", "5 fields"),
        ("61 * * * *", "not a valid cron"),
        ("0 25 * * *", "not a valid cron"),
        ("0 3 * * funday", "not a valid cron"),
        ("@every 0s", "at least 100ms"),
        ("@every 50ms", "at least 100ms"),
        ("@every 5x", "unknown alias"),
        ("@every", "unknown alias"),
        ("@fortnightly", "unknown alias"),
    ],
)
def test_errors_say_what_is_wrong(expression: str, reason: str) -> None:
    with pytest.raises(ScheduleError, match=reason) as caught:
        parse_schedule(expression)
    assert repr(expression) in str(caught.value)


# -- daylight saving time in Europe/Berlin ---------------------------------------------------------------


def test_spring_forward_daily_slot_in_the_missing_hour_fires_once_at_three() -> None:
    schedule = parse_schedule("30 2 * * *")
    fired = slots(schedule, *day_bounds(SPRING_FORWARD))
    assert fired == [datetime(2025, 3, 30, 3, 0, tzinfo=BERLIN)]  # croniter moves it to the first valid time
    assert fired[0].utcoffset() == timedelta(hours=2)
    assert fired[0].astimezone(UTC) == datetime(2025, 3, 30, 1, 0, tzinfo=UTC)


def test_spring_forward_hourly_has_23_slots() -> None:
    fired = slots(parse_schedule("0 * * * *"), *day_bounds(SPRING_FORWARD))
    assert len(fired) == 23
    assert 2 not in {slot.hour for slot in fired}
    gaps = {b.astimezone(UTC) - a.astimezone(UTC) for a, b in zip(fired, fired[1:], strict=False)}
    assert gaps == {timedelta(hours=1)}


def test_fall_back_hourly_fires_once_per_real_hour() -> None:
    fired = slots(parse_schedule("0 * * * *"), *day_bounds(FALL_BACK))
    instants = [slot.astimezone(UTC) for slot in fired]
    assert len(fired) == 25
    assert len(set(instants)) == 25
    gaps = {b - a for a, b in zip(instants, instants[1:], strict=False)}
    assert gaps == {timedelta(hours=1)}
    twos = [slot for slot in fired if slot.hour == 2]
    assert [slot.utcoffset() for slot in twos] == [timedelta(hours=2), timedelta(hours=1)]


@pytest.mark.parametrize(
    "cron", ["30 2 * * *", "0 2 * * *", "0 3 * * *", "15 1 * * *", "0 0 * * *", "@daily"]
)
def test_a_daily_schedule_fires_once_every_day_across_both_changes(cron: str) -> None:
    schedule = parse_schedule(cron)
    start = datetime(2025, 3, 25, tzinfo=BERLIN)
    fired = slots(schedule, start, datetime(2025, 11, 1, tzinfo=BERLIN))
    per_day = Counter(slot.date() for slot in fired)
    assert set(per_day.values()) == {1}, [day for day, count in per_day.items() if count != 1]
    assert len(per_day) == (date(2025, 11, 1) - date(2025, 3, 25)).days - (cron in ("0 0 * * *", "@daily"))


def test_fall_back_fixed_hour_inside_the_repeated_hour_fires_on_its_first_pass() -> None:
    fired = slots(parse_schedule("30 2 * * *"), *day_bounds(FALL_BACK))
    assert fired == [datetime(2025, 10, 26, 2, 30, tzinfo=BERLIN)]
    assert fired[0].utcoffset() == timedelta(hours=2)


def test_fall_back_from_inside_the_repeated_hour() -> None:
    hourly = parse_schedule("0 * * * *")
    first_pass = datetime(2025, 10, 26, 2, 15, fold=0, tzinfo=BERLIN)
    second_pass = datetime(2025, 10, 26, 2, 15, fold=1, tzinfo=BERLIN)
    assert hourly.next_after(first_pass).astimezone(UTC) == datetime(2025, 10, 26, 1, 0, tzinfo=UTC)
    assert hourly.next_after(second_pass).astimezone(UTC) == datetime(2025, 10, 26, 2, 0, tzinfo=UTC)
    daily = parse_schedule("30 2 * * *")
    assert daily.next_after(second_pass) == datetime(2025, 10, 27, 2, 30, tzinfo=BERLIN)


# -- @every is aligned to the Unix epoch ---------------------------------------------------------------


def test_every_slots_are_the_same_whoever_computes_them() -> None:
    schedule = parse_schedule("@every 5m")
    moment = datetime(2025, 6, 1, 12, 7, 13, tzinfo=BERLIN)
    first = slots(schedule, moment, moment + timedelta(minutes=20))
    again = slots(
        parse_schedule("@every 5m"), moment.astimezone(UTC), moment.astimezone(UTC) + timedelta(minutes=20)
    )
    assert [slot.astimezone(UTC) for slot in first] == again
    assert all(slot.timestamp() % 300 == 0 for slot in first)
    assert first[0] == datetime(2025, 6, 1, 12, 10, tzinfo=BERLIN)
    assert all(slot.tzinfo is BERLIN for slot in first)


def test_every_slots_do_not_depend_on_the_hosts_local_time_zone() -> None:
    """Replicas on hosts with different TZ settings must compute the same slots (same message ids)."""
    code = (
        "from datetime import datetime, UTC\n"
        "from shared.cron import parse_schedule\n"
        "moment = datetime(2025, 6, 1, 12, 10, tzinfo=UTC)\n"
        "print(parse_schedule('@every 1h').next_after(moment).timestamp())\n"
    )
    seen = set()
    for zone in ("UTC", "Asia/Kolkata", "America/St_Johns"):
        done = subprocess.run(
            [sys.executable, "-c", code], env={"TZ": zone}, capture_output=True, text=True, check=True
        )
        seen.add(float(done.stdout))
    assert seen == {datetime(2025, 6, 1, 13, tzinfo=UTC).timestamp()}


def test_fall_back_wildcard_hours_run_in_both_passes_like_cron() -> None:
    fired = slots(parse_schedule("0 */2 * * *"), *day_bounds(FALL_BACK))
    assert len(fired) == 13
    assert [slot.utcoffset() for slot in fired if slot.hour == 2] == [timedelta(hours=2), timedelta(hours=1)]

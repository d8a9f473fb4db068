"""Calendars for `nanny seed-demo`: the demo sitters' weekly schedules and some time off, and a
schedule for every bulk sitter of `--scale N` (nanny/bulk_seed.py)."""

from __future__ import annotations

import random
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import asyncpg

from nanny.db import availability as db_availability

ZONE = "Asia/Almaty"
WEEKDAYS = range(5)
EVERY_DAY = range(7)


def _hours(days, start: int, end: int) -> list[db_availability.Interval]:
    return [db_availability.Interval(d, start * 60, end * 60) for d in days]


# sitter key -> weekly intervals (local hours); time off as (days from today, length in days)
DEMO_WEEKLY = {
    "aigerim": _hours(WEEKDAYS, 8, 20) + _hours([5], 10, 16),
    "dmitry": _hours(EVERY_DAY, 7, 10) + _hours(EVERY_DAY, 17, 22),
    "aliya": _hours(range(6), 9, 21),
    "yerlan": _hours(EVERY_DAY, 6, 21),
    "olga": _hours(WEEKDAYS, 9, 19) + _hours([5, 6], 10, 14),
}
DEMO_TIME_OFF = {"aigerim": (10, 4), "olga": (20, 1), "yerlan": (30, 7)}


def _local_midnight(day: date) -> datetime:
    return datetime.combine(day, time(), ZoneInfo(ZONE))


async def write_demo_calendars(conn: asyncpg.Connection, sitters: dict[str, int]) -> None:
    """Through the API's statements (inside the seed's transaction)."""
    today = datetime.now(ZoneInfo(ZONE)).date()
    for key, weekly in DEMO_WEEKLY.items():
        await db_availability.set_schedule(conn, sitters[key], ZONE, weekly)
    for key, (days, length) in DEMO_TIME_OFF.items():
        first = today + timedelta(days=days)
        await db_availability.add_time_off(
            conn,
            sitters[key],
            _local_midnight(first),
            _local_midnight(first + timedelta(days=length)),
        )


def bulk_schedule(
    sitter_id: int, rng: random.Random, today: date
) -> tuple[list[tuple], int, list[tuple]]:
    """One bulk sitter's sitter_schedule rows, its schedule_days and its time_off rows. Every
    weekday has hours (so a boarding of any dates fits the schedule, and the benchmark's
    bookings far ahead keep working); one sitter in ten is off for a week in the next two
    months, which the search by dates then has to leave out."""
    opens = rng.choice((7, 8, 9))
    closes = rng.choice((18, 20, 21))
    weekly = _hours(WEEKDAYS, opens, closes) + _hours([5, 6], 10, rng.choice((14, 16, 18)))
    if rng.random() < 0.3:  # a lunch break: two intervals a weekday
        weekly = [i for i in weekly if i.weekday >= 5]
        weekly += _hours(WEEKDAYS, opens, 13) + _hours(WEEKDAYS, 14, closes)
    rows = [(sitter_id, i.weekday, i.start_minute, i.end_minute) for i in weekly]
    off = []
    if rng.random() < 0.1:
        first = today + timedelta(days=rng.randrange(7, 60))
        off.append((sitter_id, _local_midnight(first), _local_midnight(first + timedelta(days=7))))
    return rows, db_availability.days_mask(weekly), off

"""A sitter's days as the availability calendar shows them, computed from its schedule, time
off and open bookings (nanny.db.availability.Calendar) in the sitter's time zone.

A day's working hours are its weekly intervals, or the whole day when the sitter keeps no
weekly schedule. The day is `off` when time off leaves none of them, `booked` when bookings
fill what is left, `partly_booked` when bookings take some of it, else `free`; it is available
unless off or booked."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from nanny.db.availability import Calendar, Interval


class DayState(StrEnum):
    FREE = "free"
    PARTLY_BOOKED = "partly_booked"
    BOOKED = "booked"
    OFF = "off"


Spans = list[tuple[datetime, datetime]]


def local_instant(day: date, minute: int, zone: ZoneInfo) -> datetime:
    """The instant at `minute` of the local `day` (1440 is the next day's midnight)."""
    return datetime.combine(day + timedelta(days=minute // 1440), time(), zone) + timedelta(
        minutes=minute % 1440
    )


def _subtract(spans: Spans, cuts: Spans) -> Spans:
    for cut_start, cut_end in cuts:
        left: Spans = []
        for start, end in spans:
            if cut_end <= start or cut_start >= end:
                left.append((start, end))
                continue
            if start < cut_start:
                left.append((start, cut_start))
            if cut_end < end:
                left.append((cut_end, end))
        spans = left
    return spans


def working_spans(day: date, weekly: list[Interval], zone: ZoneInfo) -> Spans:
    if not weekly:
        return [(local_instant(day, 0, zone), local_instant(day, 1440, zone))]
    return [
        (local_instant(day, i.start_minute, zone), local_instant(day, i.end_minute, zone))
        for i in weekly
        if i.weekday == day.weekday()
    ]


def day_state(day: date, calendar: Calendar, zone: ZoneInfo) -> DayState:
    hours = working_spans(day, calendar.weekly, zone)
    open_hours = _subtract(hours, [(t.start_time, t.end_time) for t in calendar.time_off])
    if not open_hours:
        return DayState.OFF
    free = _subtract(open_hours, [(b.start_time, b.end_time) for b in calendar.bookings])
    if not free:
        return DayState.BOOKED
    return DayState.FREE if free == open_hours else DayState.PARTLY_BOOKED


def days(calendar: Calendar, first: date, last: date) -> list[dict]:
    """[{date, available, state}] for each local day from `first` to `last` (inclusive)."""
    zone = ZoneInfo(calendar.timezone)
    out = []
    day = first
    while day <= last:
        state = day_state(day, calendar, zone)
        out.append(
            {
                "date": day.isoformat(),
                "available": state in (DayState.FREE, DayState.PARTLY_BOOKED),
                "state": state,
            }
        )
        day += timedelta(days=1)
    return out


def busy(calendar: Calendar) -> list[dict]:
    """Bookings and time off merged into disjoint spans, whose they are left out."""
    spans = sorted(
        [(b.start_time, b.end_time) for b in calendar.bookings]
        + [(t.start_time, t.end_time) for t in calendar.time_off]
    )
    merged: Spans = []
    for start, end in spans:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return [{"start_time": s, "end_time": e} for s, e in merged]

"""A sitter's availability: time zone, weekly schedule (sitter_schedule, mirrored as
sitters.schedule_days) and time off. The rules that use them live in the database
(migrations/functions/nanny_outside_schedule.sql, nanny_add_time_off.sql, nanny_create_booking.sql);
writes take the sitter's calendar lock, so they take turns with bookings being created."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from nanny.db import bookings as db_bookings


@dataclass(frozen=True, slots=True)
class Interval:
    weekday: int  # Monday = 0
    start_minute: int  # minutes of the local day, [start, end)
    end_minute: int


@dataclass(frozen=True, slots=True)
class TimeOff:
    time_off_id: int
    start_time: datetime
    end_time: datetime


@dataclass(frozen=True, slots=True)
class Span:
    start_time: datetime
    end_time: datetime


@dataclass(frozen=True, slots=True)
class Calendar:
    sitter_id: int
    timezone: str
    weekly: list[Interval]
    time_off: list[TimeOff]
    bookings: list[Span]  # pending and confirmed, overlapping the window


@dataclass(frozen=True, slots=True)
class TimeOffAdded:
    """nanny_add_time_off's answer: the entry, or the confirmed booking that refused it; the
    pending requests it declined."""

    time_off: TimeOff | None
    clash_booking_id: int | None
    cancelled: list[int]


def days_mask(weekly: list[Interval]) -> int:
    """sitters.schedule_days for this schedule: bit w set when weekday w has an interval."""
    mask = 0
    for interval in weekly:
        mask |= 1 << interval.weekday
    return mask


async def sitter_zone(conn: asyncpg.Connection, sitter_id: int) -> str | None:
    return await conn.fetchval("SELECT timezone FROM sitters WHERE user_id = $1", sitter_id)


async def get_calendar(
    conn: asyncpg.Connection, sitter_id: int, zone: str, start: datetime, end: datetime
) -> Calendar:
    """The schedule of the sitter (whose time zone is `zone`) and whatever of its time off and
    open bookings overlaps [start, end)."""
    weekly = await conn.fetch(
        "SELECT weekday, start_minute, end_minute FROM sitter_schedule WHERE sitter_id = $1"
        " ORDER BY weekday, start_minute",
        sitter_id,
    )
    off = await conn.fetch(
        """
        SELECT time_off_id, start_time, end_time FROM time_off
        WHERE sitter_id = $1 AND end_time > $2 AND start_time < $3
        ORDER BY start_time, time_off_id
        """,
        sitter_id,
        start,
        end,
    )
    booked = await conn.fetch(
        """
        SELECT start_time, end_time FROM bookings
        WHERE sitter_id = $1 AND status IN ('pending', 'confirmed')
          AND tstzrange(start_time, end_time, '[)') && tstzrange($2, $3, '[)')
        ORDER BY start_time
        """,
        sitter_id,
        start,
        end,
    )
    return Calendar(
        sitter_id,
        zone,
        [Interval(**r) for r in weekly],
        [TimeOff(**r) for r in off],
        [Span(**r) for r in booked],
    )


async def set_schedule(
    conn: asyncpg.Connection, sitter_id: int, zone: str, weekly: list[Interval]
) -> list[int]:
    """Replace the sitter's time zone and weekly schedule; the ids of its pending and confirmed
    bookings not yet over that the new schedule leaves outside (accepted: the sitter decides).
    Run inside a transaction."""
    await db_bookings.lock_sitter_calendar(conn, sitter_id)
    await conn.execute("DELETE FROM sitter_schedule WHERE sitter_id = $1", sitter_id)
    await conn.copy_records_to_table(
        "sitter_schedule",
        columns=("sitter_id", "weekday", "start_minute", "end_minute"),
        records=[(sitter_id, i.weekday, i.start_minute, i.end_minute) for i in weekly],
    )
    await conn.execute(
        "UPDATE sitters SET timezone = $2, schedule_days = $3, updated_at = now()"
        " WHERE user_id = $1",
        sitter_id,
        zone,
        days_mask(weekly),
    )
    rows = await conn.fetch(
        """
        SELECT b.booking_id FROM bookings b
        JOIN services v ON v.service_id = b.service_id
        JOIN sitters s ON s.user_id = b.sitter_id
        WHERE b.sitter_id = $1 AND b.status IN ('pending', 'confirmed') AND b.end_time > now()
          AND nanny_outside_schedule(b.sitter_id, s.timezone, s.schedule_days, v.type,
                                     b.start_time, b.end_time)
        ORDER BY b.start_time, b.booking_id
        """,
        sitter_id,
    )
    return [r["booking_id"] for r in rows]


async def add_time_off(
    conn: asyncpg.Connection, sitter_id: int, start: datetime, end: datetime
) -> TimeOffAdded:
    """Take [start, end) off (nanny_add_time_off), refunding the payments of the pending
    requests it declined. Run inside a transaction."""
    row = await conn.fetchrow(
        "SELECT outcome, time_off_id, clash_booking_id, cancelled"
        " FROM nanny_add_time_off($1, $2, $3, $4)",
        sitter_id,
        start,
        end,
        db_bookings.SITTER_CALENDAR_LOCK,
    )
    if row["outcome"] != "created":
        return TimeOffAdded(None, row["clash_booking_id"], [])
    cancelled = list(row["cancelled"])
    await db_bookings.refund_payments(conn, cancelled)
    return TimeOffAdded(TimeOff(row["time_off_id"], start, end), None, cancelled)


async def delete_time_off(conn: asyncpg.Connection, sitter_id: int, time_off_id: int) -> bool:
    deleted = await conn.fetchval(
        "DELETE FROM time_off WHERE time_off_id = $1 AND sitter_id = $2 RETURNING 1",
        time_off_id,
        sitter_id,
    )
    return deleted is not None
